"""The oracle against real engines: agreement, the known onnxruntime deviations, crash keys."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from interop_coreml.fuzz.oracle import (
    compare_output,
    evaluate,
    explicit_convtranspose_pads,
    normalize_error,
    run_onnxruntime,
    signature,
)


def _model(nodes, inputs, outputs, inits=(), opset=19) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "t", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def test_a_graph_both_engines_agree_on_is_ok() -> None:
    model = _model([helper.make_node("Tanh", ["x"], ["y"]), helper.make_node("ArgMax", ["y"], ["i"], axis=1)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
                    helper.make_tensor_value_info("i", TensorProto.INT64, [2, 1])])
    x = np.array([[0.1, 0.7, -0.2], [1.5, -1.0, 0.3]], dtype=np.float32)
    outcome = evaluate(model, {"x": x})
    assert outcome.status == "ok", outcome.message  # int64 vs Core ML's int32 compares by value


def test_onnxruntimes_optimizer_rewrite_of_transpose_matmul_1d_is_explained() -> None:
    # onnxruntime 1.32 folds the Transpose into the MatMul wrongly when the other operand is 1-D.
    model = _model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
                    helper.make_node("MatMul", ["t", "w"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
                   [numpy_helper.from_array(np.array([-1.68, 0.5], np.float32), "w")])
    x = np.random.default_rng(0).standard_normal((2, 2, 5)).astype(np.float32)
    outcome = evaluate(model, {"x": x})
    assert outcome.status == "mismatch" and outcome.kind == "value"
    assert outcome.explained == "ort-graph-optimizer"
    assert outcome.reference_evaluator == {"y": "reference agrees with coreml-interpreter"}
    assert signature(outcome, model) == ("mismatch[value] MatMul+Transpose "
                                         "[explained: ort-graph-optimizer]")


def test_mean_variance_normalization_of_one_element_is_onnxruntimes_nan() -> None:
    model = _model([helper.make_node("MeanVarianceNormalization", ["x"], ["y"], axes=[0])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    outcome = evaluate(model, {"x": np.array([0.3], np.float32)})
    assert (outcome.status, outcome.kind, outcome.explained) == ("mismatch", "nonfinite", "ort-mvn-zero-variance")


def test_convtranspose_same_with_a_negative_total_pad_is_onnxruntimes_short_output() -> None:
    # kernel 1 < stride 2 along W: SAME needs total padding -1 to give input * stride = 2 columns.
    weight = numpy_helper.from_array(np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1), "w")
    model = _model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, 1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 1])], [weight])  # what ORT says
    outcome = evaluate(model, {"x": np.ones((1, 1, 1, 1), np.float32)})
    assert outcome.status == "mismatch" and outcome.kind == "shape", outcome.message
    assert outcome.explained == "ort-convtranspose-same-negative-pad"


def _grouped_convtranspose(auto_pad: str, bias: bool, upstream_pool: bool = False) -> tuple[onnx.ModelProto, dict]:
    # 4 channels in 2 groups, kernel 1 < stride 2 along H: SAME needs a negative total padding.
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 1, 2)).astype(np.float32), "w")]
    inputs = ["p" if upstream_pool else "x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"))
        inputs.append("b")
    nodes = [helper.make_node("ConvTranspose", inputs, ["y"], auto_pad=auto_pad, strides=[2, 1], group=2)]
    if upstream_pool:  # the reference evaluator asserts on auto_pad VALID with ceil_mode
        nodes.insert(0, helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[1, 1], strides=[1, 1],
                                         auto_pad="VALID", ceil_mode=1))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 3])
    graph = helper.make_graph(nodes, "t", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    inferred = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]))
    model = _model(nodes, [x], [*inferred.graph.output], inits)  # onnx's shape: the padding clamped at 0
    return model, {"x": rng.standard_normal((1, 4, 2, 3)).astype(np.float32)}


def test_grouped_convtranspose_same_with_a_negative_pad_is_verified_by_onnxruntime_on_the_spec_pads() -> None:
    """The reference evaluator cannot run grouped ConvTranspose: the rule rewrites the spec's padding for onnxruntime."""
    for auto_pad, bias, pool in [("SAME_UPPER", True, False), ("SAME_LOWER", False, False), ("SAME_UPPER", True, True)]:
        model, feeds = _grouped_convtranspose(auto_pad, bias, pool)
        rewritten = explicit_convtranspose_pads(model, feeds)
        y = run_onnxruntime(rewritten, feeds)["y"]
        assert y.shape == (1, 6, 4, 3)  # input * stride along H
        # the spec from scratch: the full transposed convolution (H 3 long here, W 4), then the SAME window
        x, w = (feeds["x"] if not pool else feeds["x"]), numpy_helper.to_array(model.graph.initializer[0])
        full = np.zeros((1, 6, 3, 4), np.float64)
        for g in range(2):
            for c in range(2 * g, 2 * g + 2):
                for m in range(3):
                    for h in range(2):
                        for i in range(3):
                            full[0, 3 * g + m, 2 * h, i:i + 2] += x[0, c, h, i] * w[c, m, 0, :]
        # H: total = 2*(2-1) + 0 + 1 - 4 = -1; W: total = 1*(3-1) + 2 - 3 = 1
        grown = np.pad(full, [(0, 0), (0, 0), (1, 0) if auto_pad == "SAME_UPPER" else (0, 1), (0, 0)])
        expected = grown[..., 0:3] if auto_pad == "SAME_UPPER" else grown[..., 1:4]
        if bias:
            expected = expected + numpy_helper.to_array(model.graph.initializer[1]).reshape(1, 6, 1, 1)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
        outcome = evaluate(model, feeds)
        assert (outcome.status, outcome.kind) == ("mismatch", "shape"), outcome.message
        assert outcome.explained == "ort-convtranspose-same-negative-pad", (auto_pad, bias, pool)


def test_argmax_over_a_nan_is_explained_only_when_a_nan_reaches_it() -> None:
    model = _model([helper.make_node("Log", ["x"], ["l"]), helper.make_node("ArgMax", ["l"], ["i"], axis=1)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                   [helper.make_tensor_value_info("i", TensorProto.INT64, [2, 1])])
    with_nan = evaluate(model, {"x": np.array([[2.0, -1.0, 0.5], [1.0, 3.0, 2.0]], np.float32)})  # log(-1) is NaN
    assert (with_nan.status, with_nan.explained) == ("mismatch", "ort-argminmax-nan"), with_nan.message
    assert evaluate(model, {"x": np.array([[1.0, 2.0, 0.5], [1.0, 3.0, 2.0]], np.float32)}).status == "ok"


def test_instance_normalization_of_one_large_element_is_onnxruntimes_cancellation() -> None:
    model = _model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=2.4e-4)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1])],
                   [numpy_helper.from_array(np.array([-1.9], np.float32), "s"),
                    numpy_helper.from_array(np.array([-0.0192], np.float32), "b")], opset=13)
    outcome = evaluate(model, {"x": np.array([[[29.93]]], np.float32)})  # the spec gives exactly b
    assert (outcome.status, outcome.explained) == ("mismatch", "ort-instancenorm-cancellation"), outcome.message


def test_comparison_rules() -> None:
    ref = np.array([1.0, 2.0, 1000.0], np.float32)
    assert compare_output("y", ref, ref + np.float32(0.05)) is None  # within 1e-4 of max|ref|
    kind, message, numbers = compare_output("y", ref, ref + np.array([0.0, 0.5, 0.0], np.float32))
    assert kind == "value" and numbers["n_bad"] == 1 and "1/3 beyond tol" in message
    assert compare_output("y", ref, np.array([1.0, np.nan, 1000.0], np.float32))[0] == "nonfinite"
    assert compare_output("y", ref, ref.reshape(1, 3))[0] == "shape"
    assert compare_output("y", ref, ref.astype(np.int32))[0] == "dtype"
    assert compare_output("i", np.array([3, 4], np.int64), np.array([3, 4], np.int32)) is None
    assert compare_output("b", np.array([True, False]), np.array([1, 0], np.int32)) is None
    assert compare_output("i", np.array(7, np.int64), np.array([7], np.int32)) is None  # rank 0 comes back as [1]


def test_crash_keys_are_stable_across_names_and_numbers() -> None:
    a = normalize_error("ConversionError: Trilu node 'n_14' failed to convert: AttributeError: "
                        "'numpy.int32' object has no attribute 'rank'")
    b = normalize_error("ConversionError: Trilu node 'n_3' failed to convert: AttributeError: "
                        "'numpy.int64' object has no attribute 'rank'")
    assert a == b == "AttributeError: '_' object has no attribute '_'"
    assert normalize_error("ValueError: shapes (3, 4) and [5] differ at 2") == "ValueError: shapes [_] and [_] differ at N"


def test_onnxruntimes_mvn_nan_counted_by_nonzero_is_explained_as_a_shape() -> None:
    """Mixed seed 3, trial 5842: NonZero(Round(MVN(one element))): onnxruntime's NaN is non-zero."""
    graph = helper.make_graph(
        [helper.make_node("MeanVarianceNormalization", ["x"], ["m"], axes=[1, 2]), helper.make_node("Round", ["m"], ["r"]),
         helper.make_node("NonZero", ["r"], ["y"])], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [4, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    outcome = evaluate(model, {"x": np.full((1, 1, 1, 1), 0.7, np.float32)})
    assert (outcome.status, outcome.kind, outcome.explained) == ("mismatch", "shape", "ort-mvn-zero-variance")
