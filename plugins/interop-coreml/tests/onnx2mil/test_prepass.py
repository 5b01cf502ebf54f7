"""The pre-pass: constant folding of shape arithmetic, Dropout/Identity removal."""

from __future__ import annotations

import numpy as np
import pytest
import onnx
from onnx import numpy_helper

from interop_coreml.onnx2mil.prepass import prepare

from .conftest import assert_close, interpret, make_model, ort_run, save, tensor_info


def _shape_chain_model() -> onnx.ModelProto:
    """x.view(x.size(0), -1) as exporters write it: Shape → Gather → Unsqueeze → Concat → Reshape."""
    i64 = lambda name, values: numpy_helper.from_array(np.array(values, dtype=np.int64), name)  # noqa: E731
    nodes = [
        onnx.helper.make_node("Identity", ["x"], ["x_id"]),
        onnx.helper.make_node("Shape", ["x_id"], ["shape"]),
        onnx.helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        onnx.helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch_1d"]),
        onnx.helper.make_node("Concat", ["batch_1d", "minus_one"], ["target"], axis=0),
        onnx.helper.make_node("Reshape", ["x_id", "target"], ["flat"]),
        onnx.helper.make_node("Dropout", ["flat"], ["dropped", "mask"]),
        onnx.helper.make_node("Relu", ["dropped"], ["y"]),
    ]
    inits = [i64("zero", 0), i64("axes0", [0]), i64("minus_one", [-1])]
    return make_model(nodes, [tensor_info("x", ["N", 2, 3])], [tensor_info("y", ["N", 6])], inits)


def test_shape_chain_folds_into_constant_reshape():
    prepared = prepare(_shape_chain_model())
    ops = [node.op_type for node in prepared.model.graph.node]
    assert ops == ["Reshape", "Relu"]
    target = prepared.constants[prepared.model.graph.node[0].input[1]]
    assert list(target) == [0, -1]


def test_folded_chain_runs_at_any_batch(tmp_path):
    model = _shape_chain_model()
    path = save(model, tmp_path / "chain.mlpackage")
    for batch in (1, 5):
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 2, 3)).astype(np.float32)}
        assert_close(interpret(path, feeds), ort_run(model, feeds))


def test_constant_subgraph_is_evaluated():
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    nodes = [
        onnx.helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
        onnx.helper.make_node("Mul", ["wt", "two"], ["w2"]),
        onnx.helper.make_node("MatMul", ["x", "w2"], ["y"]),
    ]
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    prepared = prepare(make_model(nodes, [tensor_info("x", [1, 3])], [tensor_info("y", [1, 2])], [w, two]))
    assert [n.op_type for n in prepared.model.graph.node] == ["MatMul"]
    np.testing.assert_array_equal(prepared.constants["w2"], np.arange(6, dtype=np.float32).reshape(2, 3).T * 2)


def test_identity_on_graph_output_is_kept():
    nodes = [onnx.helper.make_node("Identity", ["x"], ["y"])]
    prepared = prepare(make_model(nodes, [tensor_info("x", [2])], [tensor_info("y", [2])]))
    assert [n.op_type for n in prepared.model.graph.node] == ["Identity"]


def test_size_of_a_ceil_mode_pool_is_not_taken_from_shape_inference(tmp_path):
    """ONNX shape inference says MaxPool(ceil_mode) gives width 2 here; the spec (and onnxruntime) say 1."""
    nodes = [
        onnx.helper.make_node("MaxPool", ["x"], ["p"], ceil_mode=1, kernel_shape=[1, 1], strides=[1, 3]),
        onnx.helper.make_node("Size", ["p"], ["n"]),
        onnx.helper.make_node("Cast", ["n"], ["nf"], to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("Mul", ["p", "nf"], ["y"]),
    ]
    model = make_model(nodes, [tensor_info("x", [1, 3, 6, 3])], [tensor_info("y", None)], opset=16)
    assert "n" not in prepare(model).constants
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 6, 3)).astype(np.float32)}
    assert_close(interpret(save(model, tmp_path / "m.mlpackage"), feeds), ort_run(model, feeds))


def test_size_of_a_same_conv_transpose_with_output_padding_is_the_specs(tmp_path):
    """Fuzz seed 78 trial 5562: ONNX shape inference adds output_padding to SAME's input x stride
    (3 here); the spec, onnxruntime and the reference evaluator give 2."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((5, 1, 2)).astype(np.float32), "w")
    nodes = [
        onnx.helper.make_node("ConvTranspose", ["x", "w"], ["c"], auto_pad="SAME_UPPER", output_padding=[1], strides=[2]),
        onnx.helper.make_node("Size", ["c"], ["n"]),
    ]
    model = make_model(nodes, [tensor_info("x", [1, 5, 1])], [tensor_info("n", None, onnx.TensorProto.INT64)], [w])
    assert "n" not in prepare(model).constants
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 5, 1)).astype(np.float32)}
    assert ort_run(model, feeds)["n"] == 2
    assert_close(interpret(save(model, tmp_path / "m.mlpackage"), feeds), ort_run(model, feeds))


@pytest.mark.parametrize("attrs", [dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
                                   dict(strides=[2, 2], auto_pad="SAME_UPPER"), dict(output_shape=[9, 9], strides=[2, 2])])
def test_shape_of_a_conv_transpose_inference_gets_right_still_folds(attrs):
    w = numpy_helper.from_array(np.ones((3, 2, 3, 3), dtype=np.float32), "w")
    nodes = [onnx.helper.make_node("ConvTranspose", ["x", "w"], ["c"], **attrs),
             onnx.helper.make_node("Shape", ["c"], ["s"])]
    prepared = prepare(make_model(nodes, [tensor_info("x", [1, 3, 4, 4])], [tensor_info("s", None, onnx.TensorProto.INT64)], [w]))
    assert list(prepared.constants["s"])[2:] in ([8, 8], [9, 9])


def test_cast_of_a_partly_static_shape_folds_to_the_cast_type():
    nodes = [onnx.helper.make_node("Shape", ["x"], ["s"], start=1),
             onnx.helper.make_node("Cast", ["s"], ["f"], to=onnx.TensorProto.FLOAT),
             onnx.helper.make_node("Mul", ["x", "f"], ["y"])]
    prepared = prepare(make_model(nodes, [tensor_info("x", ["N", 2, 3])], [tensor_info("y", ["N", 2, 3])]))
    assert prepared.constants["f"].dtype == np.float32 and list(prepared.constants["f"]) == [2.0, 3.0]


def _recurrent_weights(rng, gates, hidden, size, lengths=None):
    init = onnx.numpy_helper.from_array
    weights = [init(2 * rng.standard_normal(shape).astype(np.float32), name) for name, shape in
               (("w", (1, gates * hidden, size)), ("r", (1, gates * hidden, hidden)), ("b", (1, 2 * gates * hidden)))]
    return weights + ([] if lengths is None else [init(np.array(lengths, dtype=np.int32), "len")])


def _constant_input_case(name, rng):
    """An op whose only data input is a constant, followed by an Add of a graph input (so the graph runs)."""
    init = onnx.numpy_helper.from_array
    make = onnx.helper.make_node
    cases = {  # onnx's reference evaluator (onnx 1.23) gets each of these wrong
        "lpnorm_p1": (make("LpNormalization", ["c"], ["t"], p=1, axis=1), (2, 3, 4), []),
        "global_max_pool_3d": (make("GlobalMaxPool", ["c"], ["t"]), (1, 3, 5), []),
        "max_pool_same_lower": (make("MaxPool", ["c"], ["t"], kernel_shape=[3, 2], strides=[2, 3], auto_pad="SAME_LOWER"),
                                (1, 2, 7, 5), []),
        "conv_transpose_grouped": (make("ConvTranspose", ["c", "w"], ["t"], group=2, strides=[2, 1], auto_pad="SAME_UPPER"),
                                   (1, 4, 3, 5), [init(rng.standard_normal((4, 1, 2, 2)).astype(np.float32), "w")]),
        # Recurrent ops: the evaluator ignores clip and sequence_lens.
        "rnn_clip": (make("RNN", ["c", "w", "r", "b", "len"], ["", "t"], hidden_size=4, clip=0.5),
                     (3, 2, 3), _recurrent_weights(rng, 1, 4, 3, lengths=[3, 3])),
        "gru_clip_reverse": (make("GRU", ["c", "w", "r", "b"], ["", "t"], hidden_size=3, clip=0.4, direction="reverse"),
                             (4, 2, 5), _recurrent_weights(rng, 3, 3, 5)),
        "lstm_sequence_lens": (make("LSTM", ["c", "w", "r", "b", "len"], ["t"], hidden_size=2),
                               (4, 3, 2), _recurrent_weights(rng, 4, 2, 2, lengths=[4, 1, 2])),
    }
    node, shape, extra = cases[name]
    return node, [init(rng.standard_normal(shape).astype(np.float32), "c"), *extra]


@pytest.mark.parametrize("name", ["lpnorm_p1", "global_max_pool_3d", "max_pool_same_lower", "conv_transpose_grouped",
                                  "rnn_clip", "gru_clip_reverse", "lstm_sequence_lens"])
def test_ops_the_reference_evaluator_gets_wrong_are_not_folded(name, tmp_path):
    rng = np.random.default_rng(0)
    node, inits = _constant_input_case(name, rng)
    probe = make_model([node], [], [onnx.helper.make_value_info("t", onnx.TypeProto())], inits)
    shape = ort_run(probe, {})["t"].shape
    model = make_model([node, onnx.helper.make_node("Add", ["t", "z"], ["y"])], [tensor_info("z", list(shape))],
                       [tensor_info("y", list(shape))], inits)
    assert node.op_type in [n.op_type for n in prepare(model).model.graph.node]
    feeds = {"z": rng.standard_normal(shape).astype(np.float32)}
    assert_close(interpret(save(model, tmp_path / "m.mlpackage"), feeds), ort_run(model, feeds))
