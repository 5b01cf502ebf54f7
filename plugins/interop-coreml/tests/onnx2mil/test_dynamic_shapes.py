"""Shapes computed at run time: graphs with a dynamic batch N and sequence S, as exporters write them.

Each graph is held against onnxruntime at two batch sizes and two sequence lengths, and
the converted program is checked to carry the input dims through (the output's MIL type
names the input's own symbols, not fresh ones), which is what lets converters downstream
see that two dims are equal.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy
from onnx import TensorProto, helper, numpy_helper

from interop_coreml.onnx2mil import symbolic
from interop_coreml.onnx2mil.inputs import narrowed_types, parse_input_shape, resolve_input_ranges

from .conftest import interpret, make_model, ort_run, save

SIZES = [(1, 3), (4, 9)]
INT64_MAX = np.iinfo(np.int64).max


def _const(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _info(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def _shape_nodes(source="x"):
    """n and s (rank 0) and n1, s1 (rank 1) read from Shape(source)."""
    return [
        helper.make_node("Shape", [source], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Gather", ["shape", "one"], ["s"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
        helper.make_node("Unsqueeze", ["s", "axes0"], ["s1"]),
    ]


_SHAPE_INITS = [_const("zero", 0), _const("one", 1), _const("axes0", [0])]


def _feeds(model, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    feeds = []
    for n, s in sizes:
        feed = {}
        for value in model.graph.input:
            elem = value.type.tensor_type.elem_type
            dims = [n if d.dim_param == "N" else s if d.dim_param == "S" else d.dim_value
                    for d in value.type.tensor_type.shape.dim]
            if elem == TensorProto.INT64:
                feed[value.name] = rng.integers(0, 2, dims).astype(np.int64)
            else:
                feed[value.name] = rng.standard_normal(dims).astype(np.float32)
        feeds.append(feed)
    return feeds


def _check(model, tmp_path, sizes=SIZES, **options):
    """Convert, run at every size in the interpreter and in onnxruntime, compare; return the MIL program."""
    path = save(model, tmp_path / "m.mlpackage", **options)
    for feeds in _feeds(model, sizes):
        ours, reference = interpret(path, feeds), ort_run(model, feeds)
        for name, expected in reference.items():
            assert ours[name].shape == expected.shape, name
            np.testing.assert_allclose(ours[name].astype(np.float64), expected.astype(np.float64),
                                       rtol=1e-5, atol=1e-5, err_msg=name)
    return _program(model, **options)


def _program(model, **options):
    """The MIL program the translator builds (types as the converters left them)."""
    from interop_coreml.onnx2mil.driver import _build_program, default_opset
    from interop_coreml.onnx2mil.inputs import parse_input_shape
    from interop_coreml.onnx2mil.prepass import prepare
    import coremltools as ct

    prog, *_ = _build_program(prepare(model), default_opset(model), ct.target.iOS15,
                              options.get("max_dynamic_dim", 1024), parse_input_shape(options.get("input_shape")))
    return prog.functions["main"]


def _output_dims(function, index=0):
    return list(function.outputs[index].shape)


def _input_dims(function, name):
    return list(function.inputs[name].shape)


def test_causal_mask_expanded_to_a_shape_read_at_run_time(tmp_path):
    """Range(0, S) -> LessOrEqual -> Expand to Concat(N, 1, S, S) -> Where(scores): HF's mask building."""
    nodes = _shape_nodes() + [
        helper.make_node("Range", ["zero", "s", "one"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "axes1"], ["rows"]),
        helper.make_node("Unsqueeze", ["r", "axes0"], ["cols"]),
        helper.make_node("LessOrEqual", ["cols", "rows"], ["causal"]),
        helper.make_node("Concat", ["n1", "ones1", "s1", "s1"], ["target"], axis=0),
        helper.make_node("Expand", ["causal", "target"], ["mask"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["scores3"]),
        helper.make_node("Unsqueeze", ["scores3", "axes1"], ["scores"]),
        helper.make_node("Where", ["mask", "scores", "low"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["y"], axis=-1),
    ]
    inits = _SHAPE_INITS + [_const("axes1", [1]), _const("ones1", [1]), _const("low", -1e9, np.float32)]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", "S", 8])],
                       [_info("y", TensorProto.FLOAT, ["N", 1, "S", "S"])], inits)
    function = _check(model, tmp_path)
    n, s, _ = _input_dims(function, "x")
    assert _output_dims(function) == [n, 1, s, s]


def test_reshape_to_shapes_computed_from_the_input(tmp_path):
    """Merge N*S, split the features, copy dims with 0: every reshape target comes from Shape(x)."""
    nodes = _shape_nodes() + [
        helper.make_node("Mul", ["n1", "s1"], ["ns"]),
        helper.make_node("Concat", ["ns", "eight"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("Relu", ["flat"], ["act"]),
        helper.make_node("Concat", ["n1", "s1", "two", "minus1"], ["split_shape"], axis=0),
        helper.make_node("Reshape", ["act", "split_shape"], ["split"]),
        helper.make_node("Transpose", ["split"], ["t"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["zero1", "minus1", "four"], ["merge_shape"], axis=0),
        helper.make_node("Reshape", ["t", "merge_shape"], ["y"]),
    ]
    inits = _SHAPE_INITS + [_const("eight", [8]), _const("two", [2]), _const("minus1", [-1]), _const("four", [4]),
                            _const("zero1", [0])]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", "S", 8])],
                       [_info("y", TensorProto.FLOAT, ["N", None, 4])], inits)
    function = _check(model, tmp_path)
    n, s, _ = _input_dims(function, "x")
    dims = _output_dims(function)
    assert dims[0] == n and dims[2] == 4
    # The middle dim is 2*S: one symbol, and the same one MIL would get for 2*S anywhere else.
    assert not isinstance(dims[1], int)


def test_constant_of_shape_tile_and_where_on_shape_values(tmp_path):
    """ConstantOfShape(Shape(x)), Tile by a computed count, and torch's expand(-1) (Where on the shape)."""
    nodes = _shape_nodes() + [
        helper.make_node("ConstantOfShape", ["shape"], ["twos"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [2.0])),
        helper.make_node("Add", ["x", "twos"], ["a"]),
        helper.make_node("Concat", ["ones1", "ones1", "n1"], ["reps"], axis=0),
        helper.make_node("Tile", ["a", "reps"], ["tiled"]),
        helper.make_node("ReduceSum", ["tiled", "axes_last"], ["summed"], keepdims=1),
        helper.make_node("Concat", ["minus1", "s1", "minus1"], ["wanted"], axis=0),
        helper.make_node("Equal", ["wanted", "minus1"], ["keep"]),
        helper.make_node("Where", ["keep", "shape3", "wanted"], ["expand_to"]),
        helper.make_node("Expand", ["summed", "expand_to"], ["y"]),
    ]
    nodes.insert(1, helper.make_node("Slice", ["shape", "zero1", "three1"], ["shape3"]))
    inits = _SHAPE_INITS + [_const("ones1", [1]), _const("minus1", [-1]), _const("axes_last", [-1]),
                            _const("zero1", [0]), _const("three1", [3])]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", "S", 8])],
                       [_info("y", TensorProto.FLOAT, ["N", "S", 8])], inits)
    function = _check(model, tmp_path)
    n, s, _ = _input_dims(function, "x")
    assert _output_dims(function) == [n, s, 8]


def test_slice_with_bounds_read_from_the_shape(tmp_path):
    """Position embeddings cut to S (bounded by input_shape) and the last two tokens (start S - 2)."""
    nodes = _shape_nodes() + [
        helper.make_node("Slice", ["pos", "zero1", "s1", "one1"], ["pos_s"]),
        helper.make_node("Add", ["x", "pos_s"], ["with_pos"]),
        helper.make_node("Sub", ["s1", "two1"], ["start"]),
        helper.make_node("Slice", ["with_pos", "start", "end", "one1"], ["y"]),
    ]
    pos = np.random.default_rng(1).standard_normal((1, 16, 8)).astype(np.float32)
    inits = _SHAPE_INITS + [_const("zero1", [0]), _const("one1", [1]), _const("two1", [2]), _const("end", [INT64_MAX]),
                            numpy_helper.from_array(pos, "pos")]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", "S", 8])],
                       [_info("y", TensorProto.FLOAT, ["N", 2, 8])], inits)
    function = _check(model, tmp_path, sizes=[(1, 3), (4, 16)], input_shape="x=1..4,2..16,8")
    n, _, _ = _input_dims(function, "x")
    assert _output_dims(function) == [n, 2, 8]


def test_squeeze_of_a_tensor_with_dynamic_dims_is_a_reshape_to_the_other_dims(tmp_path):
    """x[:, -1:] squeezed to [N, 8], and v[-1:] of a dynamic [S] squeezed to a scalar: a Squeeze of a
    tensor with dynamic dims becomes a reshape to the dims that remain (test_control_flow.py has the
    package that coremltools' loader refused before)."""
    nodes = [
        helper.make_node("Slice", ["x", "minus1", "big", "axes1"], ["last"]),
        helper.make_node("Squeeze", ["last", "axes1"], ["step"]),
        helper.make_node("MatMul", ["step", "w"], ["y"]),
        helper.make_node("Slice", ["v", "minus1", "big"], ["v_last"]),
        helper.make_node("Squeeze", ["v_last", "axes0"], ["scalar"]),
    ]
    inits = [_const("minus1", [-1]), _const("big", [INT64_MAX]), _const("axes1", [1]), _const("axes0", [0]),
             numpy_helper.from_array(np.linspace(-1, 1, 32, dtype=np.float32).reshape(8, 4), "w")]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", "S", 8]), _info("v", TensorProto.FLOAT, ["S"])],
                       [_info("y", TensorProto.FLOAT, ["N", 4]), _info("scalar", TensorProto.FLOAT, [])], inits)
    function = _check(model, tmp_path)
    n, _, _ = _input_dims(function, "x")
    assert _output_dims(function) == [n, 4]


def test_position_ids_from_cumsum_with_a_rank0_int64_axis(tmp_path):
    """RoBERTa's positions: CumSum(mask, axis) * mask + padding index, then an embedding Gather."""
    nodes = [
        helper.make_node("Cast", ["mask"], ["mask32"], to=TensorProto.INT32),
        helper.make_node("CumSum", ["mask32", "axis"], ["running"]),
        helper.make_node("Mul", ["running", "mask32"], ["kept"]),
        helper.make_node("Cast", ["kept"], ["kept64"], to=TensorProto.INT64),
        helper.make_node("Add", ["kept64", "one"], ["positions"]),
        helper.make_node("Gather", ["table", "positions"], ["y"], axis=0),
    ]
    table = np.random.default_rng(2).standard_normal((32, 4)).astype(np.float32)
    inits = [_const("axis", 1), _const("one", 1), numpy_helper.from_array(table, "table")]
    model = make_model(nodes, [_info("mask", TensorProto.INT64, ["N", "S"])],
                       [_info("y", TensorProto.FLOAT, ["N", "S", 4])], inits)
    function = _check(model, tmp_path)
    n, s = _input_dims(function, "mask")
    assert _output_dims(function) == [n, s, 4]


def test_padding_mask_looked_up_with_gather_nd(tmp_path):
    """HF's sdpa mask: a bool padding mask indexed by [batch, kv] coordinates built with Expand."""
    nodes = _shape_nodes("mask") + [
        helper.make_node("Cast", ["mask"], ["keep"], to=TensorProto.BOOL),
        helper.make_node("Range", ["zero", "n", "one"], ["batch"]),
        helper.make_node("Range", ["zero", "s", "one"], ["kv"]),
        helper.make_node("Unsqueeze", ["batch", "axes1"], ["b2"]),
        helper.make_node("Unsqueeze", ["kv", "axes0"], ["k2"]),
        helper.make_node("Concat", ["n1", "s1"], ["grid"], axis=0),
        helper.make_node("Expand", ["b2", "grid"], ["bb"]),
        helper.make_node("Expand", ["k2", "grid"], ["kk"]),
        helper.make_node("Unsqueeze", ["bb", "axes_last"], ["b3"]),
        helper.make_node("Unsqueeze", ["kk", "axes_last"], ["k3"]),
        helper.make_node("Concat", ["b3", "k3"], ["coords"], axis=-1),
        helper.make_node("GatherND", ["keep", "coords"], ["picked"]),
        helper.make_node("Where", ["picked", "x", "zero_f"], ["y"]),
    ]
    inits = _SHAPE_INITS + [_const("axes1", [1]), _const("axes_last", [-1]), _const("zero_f", 0.0, np.float32)]
    model = make_model(nodes, [_info("mask", TensorProto.INT64, ["N", "S"]), _info("x", TensorProto.FLOAT, ["N", "S"])],
                       [_info("y", TensorProto.FLOAT, ["N", "S"])], inits)
    function = _check(model, tmp_path)
    assert _output_dims(function) == _input_dims(function, "x")


def test_shape_arithmetic_that_turns_out_static_becomes_a_constant(tmp_path):
    """Shape(x)[2] * 2 is 16 whatever N and S are: the reshape target folds, no shape op is left."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "two"], ["features"], axis=0),
        helper.make_node("Mul", ["features", "two"], ["double"]),
        helper.make_node("Unsqueeze", ["double", "axes0"], ["double1"]),
        helper.make_node("Concat", ["minus1", "double1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [_const("two", 2), _const("axes0", [0]), _const("minus1", [-1])]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", 2, 8])], [_info("y", TensorProto.FLOAT, ["N", 16])],
                       inits)
    function = _check(model, tmp_path, sizes=[(1, 0), (3, 0)])
    assert "shape" not in {op.op_type for op in function.operations}
    assert _output_dims(function)[1] == 16


def test_shape_values_combined_with_a_tensor_read_at_run_time(tmp_path):
    """Concat and Min of Shape(x) with an int64 graph input: the input is no shape value, so the
    arithmetic must not fold without it (found by the fuzzer, seed 0 trial 18264: Concat dropped
    the graph input, and LessOrEqual of the result with itself folded to 6 Trues instead of 7)."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Concat", ["shape", "fours", "k"], ["joined"], axis=0),
        helper.make_node("LessOrEqual", ["joined", "joined"], ["same"]),
        helper.make_node("Min", ["shape", "pair"], ["smaller"]),
    ]
    inits = [_const("fours", [-4, 4])]
    model = make_model(nodes, [_info("x", TensorProto.FLOAT, ["N", "S"]), _info("k", TensorProto.INT64, ["S"]),
                               _info("pair", TensorProto.INT64, [2])],
                       [_info("same", TensorProto.BOOL, None), _info("smaller", TensorProto.INT64, [2])], inits)
    _check(model, tmp_path)


# ------------------------------------------------------------------------- the symbolic algebra


def _dims_with(*bounds):
    from coremltools.converters.mil.mil import get_new_symbol

    dims = symbolic.SymbolicDims()
    roots = [dims.declare(get_new_symbol(), low, high) for low, high in bounds]
    return dims, roots


def test_bounds_decide_min_max_and_comparisons():
    dims, (n, s) = _dims_with((1, 8), (2, 128))
    assert dims.simplify(sympy.Min(s, 128)) == s
    assert dims.simplify(sympy.Min(s, 64)) == sympy.Min(s, 64)
    assert dims.simplify(sympy.Max(s - 2, 0)) == s - 2
    assert dims.compare(">=", s, 2) is True
    assert dims.compare("==", s, 200) is False
    assert dims.compare("==", n, s) is None
    assert dims.compare("<", n * s, 1025) is True


def test_one_symbol_per_expression():
    dims, (n, s) = _dims_with((1, 8), (1, 64))
    a, b = dims.dim(2 * s), dims.dim(s * 2)
    assert a is b and not isinstance(a, int)
    assert dims.expr(a) == 2 * s
    assert dims.dim(sympy.floor(4 * s / 4)) == dims.dim(s)


def test_slice_and_range_lengths():
    dims, (s,) = _dims_with((2, 16))
    assert symbolic.slice_length(dims, s, s - 2, 2**31 - 1, 1) == 2
    assert symbolic.slice_length(dims, 16, 0, s, 1) == s
    assert symbolic.slice_length(dims, s, -1, 2**31 - 1, 1) == 1
    assert symbolic.range_length(dims, 0, s, 1) == s
    assert symbolic.range_length(dims, 0, s, 2) == sympy.ceiling(s / 2)


# --------------------------------------------------------------------------- declared input ranges


def _two_inputs():
    ids = _info("ids", TensorProto.INT64, ["N", "S"])
    mask = _info("mask", TensorProto.INT64, ["N", "S"])
    pixels = _info("pixels", TensorProto.FLOAT, [None, 3])
    return helper.make_graph([], "g", [ids, mask, pixels], [])


def test_input_shape_syntax_and_shared_dims():
    spec = parse_input_shape("ids=1..8, 1..512 ; pixels=2,3")
    assert spec == {"ids": [(1, 8), (1, 512)], "pixels": [(2, 2), (3, 3)]}
    ranges = resolve_input_ranges(_two_inputs(), spec, 1024)
    # mask shares N and S with ids, so it gets their bounds; pixels' anonymous dim is fixed at 2.
    assert ranges == {"ids": [(1, 8), (1, 512)], "mask": [(1, 8), (1, 512)], "pixels": [(2, 2), (3, 3)]}
    assert resolve_input_ranges(_two_inputs(), {}, 64)["mask"] == [(1, 64), (1, 64)]
    both = parse_input_shape("ids=1..8,1..512;mask=2..4,16..1024")
    assert resolve_input_ranges(_two_inputs(), both, 1024)["ids"] == [(2, 4), (16, 512)]


@pytest.mark.parametrize("spec, message", [
    ("ids", "NAME=DIMS"),
    ("ids=1..8", "rank 2"),
    ("ids=0..8,1", ">= 1"),
    ("ids=8..1,1", "lo <= hi"),
    ("ids=1..x,1", "int or a range"),
    ("other=1", "does not take"),
    ("pixels=1,4", "is 3 in the model"),
    ("ids=1..2,1;mask=3..4,1", "do not overlap"),
    ("ids=1,1;ids=2,2", "twice"),
])
def test_bad_input_shape_is_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_input_ranges(_two_inputs(), parse_input_shape(spec), 1024)


def test_input_shape_bounds_the_core_ml_inputs(tmp_path):
    import coremltools as ct

    nodes = [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["f", "mask_f"], ["y"]),
             helper.make_node("Cast", ["mask"], ["mask_f"], to=TensorProto.FLOAT)]
    nodes = [nodes[2], nodes[0], nodes[1]]
    model = make_model(nodes, list(_two_inputs().input)[:2], [_info("y", TensorProto.FLOAT, ["N", "S"])])
    path = save(model, tmp_path / "m.mlpackage", input_shape="ids=1..8,4..512")
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    for feature in spec.description.input:
        ranges = [(r.lowerBound, r.upperBound) for r in feature.type.multiArrayType.shapeRange.sizeRanges]
        assert ranges == [(1, 8), (4, 512)], feature.name


# ------------------------------------------------------------------- int64 inputs carried as int32


def test_int64_and_bool_io_are_narrowed_and_restored(tmp_path):
    """Core ML has no int64 or bool inputs: the model takes int32, sessions show and accept the ONNX types.

    Bool outputs come back as bool; integer outputs stay Core ML's int32 (checks compare them by value).
    """
    from interop.plugin_api import InteropError

    from interop_coreml.runtime import load_interpreter

    nodes = [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ArgMax", ["f"], ["best"], axis=1, keepdims=0),
             helper.make_node("Greater", ["f", "half"], ["big"])]
    model = make_model(nodes, [_info("ids", TensorProto.INT64, ["N", 5])],
                       [_info("best", TensorProto.INT64, ["N"]), _info("big", TensorProto.BOOL, ["N", 5])],
                       [_const("half", 2.5, np.float32)])
    assert narrowed_types(model.graph) == {"inputs": {"ids": "int64"}, "outputs": {"best": "int64", "big": "bool"}}
    path = save(model, tmp_path / "m.mlpackage")
    session = load_interpreter(path)
    assert json.loads(session.program.metadata["interop.narrowed_io"])["inputs"] == {"ids": "int64"}
    assert [(s.name, s.dtype) for s in session.inputs] == [("ids", "int64")]
    assert {s.name: s.dtype for s in session.outputs} == {"best": "int32", "big": "bool"}
    ids = np.array([[1, 7, 3, 2, 0], [9, 1, 1, 1, 1]], dtype=np.int64)
    out = session.run({"ids": ids})
    assert out["best"].dtype == np.int32 and out["best"].tolist() == [1, 0]
    assert out["big"].dtype == np.bool_ and out["big"].tolist() == (ids > 2.5).tolist()
    with pytest.raises(InteropError, match="int32"):
        session.run({"ids": ids + 2**31})


def test_a_node_that_needs_static_dims_says_how_to_fix_them(tmp_path):
    # nn.AvgPool1d(3, 2, ceil_mode=True) on a dynamic length: the error's hint is the input_shape
    # option with the ranges used now, and fixing the length as it says converts the model.
    from interop_coreml.onnx2mil.errors import UnsupportedModelError

    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3], strides=[2], ceil_mode=1)
    model = make_model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, "S"])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [], 17)
    with pytest.raises(UnsupportedModelError, match="ceil_mode and strides > 1 needs static spatial dims") as error:
        save(model, tmp_path / "refused.mlpackage")
    assert error.value.hint.startswith("fix the dims it needs with -O input_shape")
    assert "-O input_shape='x=1..1024,4,1..1024'" in error.value.hint
    assert not (tmp_path / "refused.mlpackage").exists()
    _check(model, tmp_path, sizes=[(1, 20), (3, 20)], input_shape="x=1..1024,4,20")
