"""Comparisons, logic, IsNaN, Where and casts to and from bool against onnxruntime; symbolic shape arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from .helpers import assert_matches_onnxruntime, keras_run, make_model, ort_run

COMPARISONS = ["Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal"]


def _floored(name: str, out: str) -> list:
    """Floor(2 * x): small integers in float32, so Equal and the OrEqual comparisons meet ties."""
    return [helper.make_node("Add", [name, name], [f"{out}2"]), helper.make_node("Floor", [f"{out}2"], [out])]


@pytest.mark.parametrize("op", COMPARISONS)
def test_comparison_of_two_float_tensors_with_ties_and_broadcasting(op):
    nodes = _floored("a", "fa") + _floored("b", "fb") + [
        helper.make_node(op, ["fa", "fb"], ["c"]), helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)]
    result = assert_matches_onnxruntime(make_model(nodes, {"a": ["N", 3, 4], "b": ["N", 1, 4]}, ["y"]))
    assert result.trainable_weight_count == 0


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("first", [False, True])
def test_comparison_with_an_integer_constant_keeps_the_integers(op, first):
    """Integer tensors (token ids) against fixed integers: a one-element constant and a vector."""
    inits = {"k": np.array(2, np.int64), "v": np.array([0, 1, 2, 3, 4, 2], np.int64)}
    pair = ["k", "t"] if first else ["t", "k"]
    vector = ["v", "t"] if first else ["t", "v"]
    nodes = [helper.make_node(op, pair, ["c1"]), helper.make_node(op, vector, ["c2"]),
             helper.make_node("Xor", ["c1", "c2"], ["y"])]
    model = make_model(nodes, {"t": ["N", 6]}, ["y"], inits, input_types={"t": TensorProto.INT64})
    result = assert_matches_onnxruntime(model, batches=(1, 5))
    assert result.trainable_weight_count == 0


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic_between_masks_and_boolean_inputs(op):
    inits = {"zero": np.float32(0.0), "row": np.array([True, False, True, False]), "one": np.array(True)}
    nodes = [helper.make_node("Greater", ["x", "zero"], ["m"]), helper.make_node(op, ["m", "b"], ["p"]),
             helper.make_node(op, ["p", "row"], ["q"]), helper.make_node(op, ["one", "q"], ["r"]),
             helper.make_node("Not", ["r"], ["y"])]
    model = make_model(nodes, {"x": ["N", 3, 4], "b": ["N", 1, 4]}, ["y"], inits,
                       input_types={"b": TensorProto.BOOL})
    assert_matches_onnxruntime(model, batches=(1, 4))


def test_is_nan_and_casts_to_and_from_bool():
    """Log of negative numbers is NaN; Cast to bool is "nonzero" (Relu makes zeros), back to float 0/1."""
    nodes = [helper.make_node("Log", ["x"], ["l"]), helper.make_node("IsNaN", ["l"], ["n"]),
             helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Cast", ["r"], ["nz"], to=TensorProto.BOOL),
             helper.make_node("Or", ["n", "nz"], ["o"]), helper.make_node("Cast", ["o"], ["y"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["n"], ["z"], to=TensorProto.INT32)]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 5]}, ["y", "z"]))


def test_where_between_computed_tensors_keeps_a_channels_last_layout():
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "zero": np.float32(0.0)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Greater", ["a", "zero"], ["m"]), helper.make_node("Neg", ["a"], ["n"]),
             helper.make_node("Where", ["m", "a", "n"], ["w2"]),
             helper.make_node("Conv", ["w2", "w2k"], ["y"], pads=[1, 1, 1, 1])]
    inits["w2k"] = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y"], inits))
    assert result.transposes == 2  # into channels-last once, out once: Where works in the convs' layout
    assert result.trainable_weight_count == 108 + 72


def test_where_with_a_fixed_causal_mask_and_a_fill_value():
    """Attention masking as exporters write it: Where(fixed lower-triangular mask, scores, -1e9), softmax."""
    mask = np.tril(np.ones((6, 6), bool))
    nodes = [helper.make_node("MatMul", ["q", "qt"], ["s"]), helper.make_node("Where", ["mask", "s", "fill"], ["m"]),
             helper.make_node("Softmax", ["m"], ["y"], axis=-1)]
    inits = {"mask": mask, "fill": np.float32(-1e9), "perm": np.zeros(1, np.int64)}
    nodes.insert(0, helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1]))
    del inits["perm"]
    model = make_model(nodes, {"q": ["N", 6, 3]}, ["y"], inits)
    result = assert_matches_onnxruntime(model, batches=(1, 3))
    where = [layer for layer in result.model.layers if type(layer).__name__ == "Where"]
    assert len(where) == 1 and where[0].constant_shapes[0] == [6, 6] and where[0].scalars[2] == -1e9


@pytest.mark.parametrize("fixed", ["x", "y", "both"])
def test_where_with_integer_branches_and_fixed_operands(fixed):
    inits = {"three": np.array([3, -3, 7], np.int64), "minus": np.array(-1, np.int64)}
    x = "three" if fixed in ("x", "both") else "t"
    y = "minus" if fixed in ("y", "both") else "t"
    nodes = [helper.make_node("Greater", ["t", "two"], ["c"]), helper.make_node("Where", ["c", x, y], ["y"])]
    inits["two"] = np.array(2, np.int64)
    model = make_model(nodes, {"t": ["N", 3]}, ["y"], inits, input_types={"t": TensorProto.INT64})
    assert_matches_onnxruntime(model, batches=(1, 6))


def test_keras_embedding_negative_index_handling_as_tf2onnx_writes_it():
    """Cast/Less/Not/Cast/Mul/Add selects ``i + vocabulary`` for negative ids, then the embedding lookup."""
    rng = np.random.default_rng(0)
    inits = {"table": rng.standard_normal((10, 4)).astype(np.float32), "zero": np.float32(0.0),
             "vocabulary": np.array(10, np.int32)}
    nodes = [helper.make_node("Add", ["t", "vocabulary"], ["wrapped"]),
             helper.make_node("Cast", ["t"], ["tf"], to=TensorProto.FLOAT),
             helper.make_node("Less", ["tf", "zero"], ["negative"]),
             helper.make_node("Cast", ["negative"], ["neg_i"], to=TensorProto.INT32),
             helper.make_node("Mul", ["neg_i", "wrapped"], ["a"]),
             helper.make_node("Not", ["negative"], ["positive"]),
             helper.make_node("Cast", ["positive"], ["pos_i"], to=TensorProto.INT32),
             helper.make_node("Mul", ["t", "pos_i"], ["b"]), helper.make_node("Add", ["a", "b"], ["index"]),
             helper.make_node("Gather", ["table", "index"], ["y"], axis=0)]
    model = make_model(nodes, {"t": ["N", 5]}, ["y"], inits, input_types={"t": TensorProto.INT32})
    from interop_keras.onnx_import import import_onnx

    result = import_onnx(model)
    assert result.trainable_weight_count == 40
    feeds = {"t": np.array([[0, 3, -1, -10, 9], [-4, 2, 5, -7, 1]], np.int32)}
    np.testing.assert_allclose(keras_run(result.model, model, feeds)["y"], ort_run(model, feeds)["y"], rtol=1e-6)


def test_einsum_batch_times_heads_reshape_from_shape_arithmetic():
    """tf2onnx's einsum: Shape/Gather/ReduceProd merges batch and heads, Max/Concat splits them again."""
    inits = {"first2": np.array([0, 1], np.int64), "last": np.array([3], np.int64), "minus": np.array([-1], np.int64),
             "two": np.array([2], np.int64), "one": np.array([1], np.int64)}
    nodes = [helper.make_node("Shape", ["q"], ["sq"]), helper.make_node("Shape", ["k"], ["sk"]),
             helper.make_node("Gather", ["sq", "first2"], ["bq"]), helper.make_node("Gather", ["sk", "first2"], ["bk"]),
             helper.make_node("ReduceProd", ["bq"], ["nq"], keepdims=1),
             helper.make_node("ReduceProd", ["bk"], ["nk"], keepdims=1),
             helper.make_node("Gather", ["sq", "last"], ["dq"]), helper.make_node("Gather", ["sq", "two"], ["lq"]),
             helper.make_node("Gather", ["sk", "two"], ["lk"]),
             helper.make_node("Concat", ["nq", "minus", "dq"], ["shape_q"], axis=0),
             helper.make_node("Concat", ["nk", "minus", "dq"], ["shape_k"], axis=0),
             helper.make_node("Reshape", ["q", "shape_q"], ["q3"]), helper.make_node("Reshape", ["k", "shape_k"], ["k3"]),
             helper.make_node("Transpose", ["k3"], ["k3t"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q3", "k3t"], ["s3"]),
             helper.make_node("Max", ["bq", "bk"], ["b"]),
             helper.make_node("Concat", ["b", "lq", "lk", "one"], ["shape_s"], axis=0),
             helper.make_node("Reshape", ["s3", "shape_s"], ["y"])]
    model = make_model(nodes, {"q": ["N", 4, 6, 8], "k": ["N", 4, 5, 8]}, ["y"], inits)
    assert_matches_onnxruntime(model, batches=(1, 3))


def test_ones_like_as_expand_of_a_constant_to_a_computed_shape():
    """Keras' ones_like(scores) exports as Expand(True, Shape(scores)), then And with a fixed causal mask."""
    inits = {"true": np.array(True), "mask": np.tril(np.ones((4, 4), bool)), "zero": np.float32(0.0),
             "fill": np.float32(-1e9), "row": np.array([1.0, 2.0, 3.0, 4.0], np.float32)}
    nodes = [helper.make_node("Shape", ["s"], ["shape"]), helper.make_node("Cast", ["shape"], ["shape32"], to=6),
             helper.make_node("Cast", ["shape32"], ["shape64"], to=7),
             helper.make_node("Expand", ["true", "shape64"], ["ones"]),
             helper.make_node("Expand", ["row", "shape"], ["rows"]),
             helper.make_node("And", ["ones", "mask"], ["keep"]), helper.make_node("Where", ["keep", "s", "fill"], ["m"]),
             helper.make_node("Add", ["m", "rows"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"s": ["N", 2, 4, 4]}, ["y"], inits), batches=(1, 3))


@pytest.mark.parametrize("shape", [[1, 3, 4], [2, 1, 3, 4], [3, 1]])
def test_expand_a_computed_tensor_to_fixed_sizes(shape):
    nodes = [helper.make_node("Expand", ["x", "shape"], ["y"])]
    model = make_model(nodes, {"x": ["N", 3, 1] if len(shape) == 2 else [1, 3, 1]}, ["y"],
                       {"shape": np.array(shape, np.int64)})
    assert_matches_onnxruntime(model, batches=(1,) if len(shape) != 2 else (1, 3))


def test_expand_keeps_the_batch_from_the_shape_of_the_input_itself():
    """Expand(x, Shape(y)) where the batch entry is the input's own: it broadcasts only the fixed axes."""
    nodes = [helper.make_node("Shape", ["y0"], ["shape"]), helper.make_node("Expand", ["x", "shape"], ["e"]),
             helper.make_node("Add", ["e", "y0"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 1, 5], "y0": ["N", 3, 5]}, ["y"]), batches=(1, 4))
