"""Float16 ONNX graphs: every float constant the translator adds must be float16 too.

MIL rejects an op whose float operands differ in type, so an epsilon, alpha, divisor or pad
value written as float32 beside a float16 tensor made the whole graph unconvertible (found by
the fuzzer's float16 graphs, docs/fuzzing.md). Each case converts, runs in the interpreter and
is compared with onnxruntime at float16 precision.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from .conftest import make_model, tensor_info

H = TensorProto.FLOAT16


def _h(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float16)


def _case(op, shape, attrs=None, inits=(), opset=18, extra_inputs=()):
    names = ["x"] + [name for name, _ in inits] + list(extra_inputs)
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    initializers = [numpy_helper.from_array(value, name) for name, value in inits]
    return make_model([node], [tensor_info("x", shape, H)], [tensor_info("y", None, H)], initializers, opset=opset)


_C = [1, 3, 4, 5]
CASES = {
    "Log": lambda: _case("Log", [2, 3]),
    "Reciprocal": lambda: _case("Reciprocal", [2, 3]),
    "Mean": lambda: _case("Mean", [2, 3], inits=[("b", _h([1.5, -2, 0.25]))]),
    "Shrink": lambda: _case("Shrink", [2, 3], {"lambd": 0.3, "bias": 0.2}),
    "LRN": lambda: _case("LRN", _C, {"size": 3, "alpha": 0.01, "beta": 0.7, "bias": 1.2}),
    "LayerNormalization": lambda: _case("LayerNormalization", [2, 3, 4], {"axis": -1, "epsilon": 1e-3},
                                        inits=[("s", _h(np.linspace(0.5, 1.5, 4))), ("b", _h([0.1, -0.2, 0.3, 0]))]),
    "InstanceNormalization": lambda: _case("InstanceNormalization", _C, {"epsilon": 1e-3},
                                           inits=[("s", _h([0.5, 1.0, 2.0])), ("b", _h([0.1, -0.2, 0.3]))]),
    "GroupNormalization": lambda: _case("GroupNormalization", [1, 4, 3, 2], {"num_groups": 2, "epsilon": 1e-3},
                                        inits=[("s", _h([0.5, 1.0, 2.0, 1.5])), ("b", _h([0.1, -0.2, 0.3, 0]))],
                                        opset=21),
    "ReduceLogSum": lambda: _case("ReduceLogSum", [2, 3], {"keepdims": 1}),
    "Pad-edge": lambda: _case("Pad", [4], {"mode": "edge"}, inits=[("p", np.array([0, 3], np.int64))]),
    "Pad-reflect-first-axis": lambda: _case("Pad", [3, 2, 2], {"mode": "reflect"},
                                            inits=[("p", np.array([2, 0, 0, 1, 0, 0], np.int64))]),
    "ConvTranspose-negative-pads": lambda: _case(
        "ConvTranspose", [1, 3, 1, 5], {"auto_pad": "SAME_UPPER", "strides": [2, 2], "output_padding": [0, 1]},
        inits=[("w", _h(np.linspace(-1, 1, 6).reshape(3, 2, 1, 1)))]),
    "BatchNormalization-run-time-stats": lambda: _case("BatchNormalization", [2, 3], {"epsilon": 1e-3},
                                                       inits=[("s", _h([0.5, 1.0, 2.0])), ("b", _h([0.1, -0.2, 0.3]))],
                                                       extra_inputs=["m", "v"]),
    "LpNormalization": lambda: _case("LpNormalization", [2, 3], {"p": 2, "axis": -1}),
    "Elu+Selu+HardSigmoid": lambda: make_model(
        [helper.make_node("Elu", ["x"], ["e"], alpha=0.7), helper.make_node("Selu", ["e"], ["s"]),
         helper.make_node("HardSigmoid", ["s"], ["y"], alpha=0.3, beta=0.4)],
        [tensor_info("x", [2, 3], H)], [tensor_info("y", None, H)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float16_graph_converts_and_matches_onnxruntime(name, roundtrip):
    model = CASES[name]()
    rng = np.random.default_rng(0)
    feeds = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.uniform(0.2, 2.0, shape).astype(np.float16)
    if name.startswith("BatchNormalization"):  # mean and variance are run-time inputs here
        model.graph.input.extend([tensor_info("m", [3], H), tensor_info("v", [3], H)])
        feeds.update(m=_h([0.1, 0.5, -0.3]), v=_h([0.5, 1.5, 0.25]))
    [(ours, reference)] = roundtrip(model, [feeds])
    got, expected = np.asarray(ours["y"]), reference["y"]
    if name.startswith("ConvTranspose"):
        # onnxruntime clamps SAME's negative padding (docs/fuzzing.md, ort-convtranspose-same-negative-pad):
        # it runs the spec's explicit-pads rewrite instead
        from interop_coreml.fuzz.oracle import run_onnxruntime
        from interop_coreml.fuzz.rewrites import explicit_convtranspose_pads

        expected = run_onnxruntime(explicit_convtranspose_pads(model, feeds), feeds)["y"]
    assert expected.dtype == np.float16
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=1e-2,
                               atol=1e-3 + 5e-3 * float(np.abs(expected.astype(np.float64)).max()))


def test_float16_shrink_compares_with_the_float32_lambd_as_onnxruntime_does(roundtrip):
    # fuzz seed 0 trial 682 (float16): 0.4622 in float16 is above lambd 0.46213853, which float16 rounds to 0.4622
    model = _case("Shrink", [1, 4], {"lambd": 0.46213853, "bias": 0.009470098})
    feeds = {"x": np.array([[0.4622, -0.4622, 0.4807, -0.4348]], np.float16)}
    [(ours, reference)] = roundtrip(model, [feeds])
    assert reference["y"][0, 0] != 0 and reference["y"][0, 1] != 0
    np.testing.assert_allclose(np.asarray(ours["y"], np.float64), reference["y"].astype(np.float64), atol=2e-3)


def test_float16_thresholded_relu_compares_with_the_float32_alpha_as_onnxruntime_does(roundtrip):
    # fuzz seed 9 trial 5089 (float16): 1.0 is above alpha 0.99977708, which float16 rounds to 1.0
    model = _case("ThresholdedRelu", [1, 4], {"alpha": 0.99977707862854})
    feeds = {"x": np.array([[1.0, 0.9995, -1.0, 2.0]], np.float16)}
    [(ours, reference)] = roundtrip(model, [feeds])
    assert reference["y"].tolist() == [[1.0, 0.0, 0.0, 2.0]]
    np.testing.assert_array_equal(np.asarray(ours["y"], np.float64), reference["y"].astype(np.float64))


@pytest.mark.parametrize("p", [1, 2])
def test_float16_lp_normalization_of_values_whose_squares_overflow_float16(p, roundtrip):
    # fuzz seed 0 trial 462 (float16): a column [1479, 16.7, 299] normalised to 0 (1479² > 65504)
    model = _case("LpNormalization", [3, 4], {"p": p, "axis": 0})
    x = np.array([[3e-4, 0.27, 1479, 0.35], [1.3e-4, 16.7, 6.6e-4, 102.8], [4.5e-4, 299, 0.011, 0.13]], np.float16)
    x[:, 0] = 0  # an all-zero slice stays zeros
    [(ours, reference)] = roundtrip(model, [{"x": x}])
    assert reference["y"][0, 2] > 0.9
    np.testing.assert_allclose(np.asarray(ours["y"], np.float64), reference["y"].astype(np.float64),
                               rtol=1e-2, atol=2e-3)


@pytest.mark.parametrize("p", [1, 2])
def test_float32_lp_normalization_of_tiny_and_zero_slices_is_onnxruntimes(p, roundtrip):
    # fuzz seed 78 trial 3806: an L1 norm of 4.3e-42 (a subnormal) was floored to 1e-30, so the
    # slice came out -4.3e-12 where x / |x| is -1; squares of 1e-30 underflow, and onnxruntime's
    # zero L2 norm gives zeros where the floor gave x / 1e-30 = 1 and -2
    node = helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=1)
    f32 = onnx.TensorProto.FLOAT
    model = make_model([node], [tensor_info("x", [4, 2], f32)], [tensor_info("y", None, f32)], opset=18)
    x = np.array([[1e-30, -2e-30], [-4.3e-42, 0], [0, 0], [3, -4]], np.float32)
    [(ours, reference)] = roundtrip(model, [{"x": x}])
    expected = ([[1 / 3, -2 / 3], [-1, 0], [0, 0], [3 / 7, -4 / 7]] if p == 1 else [[0, 0], [0, 0], [0, 0], [0.6, -0.8]])
    np.testing.assert_allclose(reference["y"], expected, rtol=1e-6)
    np.testing.assert_allclose(ours["y"], reference["y"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_dilated_max_pool_window_wholly_in_the_padding_is_onnxruntimes_lowest_float(dtype, roundtrip):
    # fuzz seed 78 trial 676: taps at -1 and +1 of a width-1 row see only padding; the interpreter
    # gave -inf, onnxruntime float32's lowest finite value (-inf in float16, where it computes in
    # float32 and rounds). A window holding -inf stays -inf in both.
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[1, 2], dilations=[1, 2], pads=[0, 1, 0, 1])
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else H
    for width, row in ((1, [-0.3]), (3, [-np.inf, 2, -np.inf])):
        model = make_model([node], [tensor_info("x", [1, 1, 1, width], elem)], [tensor_info("y", None, elem)], opset=18)
        [(ours, reference)] = roundtrip(model, [{"x": np.array(row, dtype).reshape(1, 1, 1, width)}])
        lowest = float(np.finfo(np.float32).min) if dtype == np.float32 else -np.inf
        expected = [lowest] if width == 1 else [2, -np.inf, 2]
        assert reference["y"].ravel().tolist() == expected
        assert np.asarray(ours["y"]).ravel().tolist() == expected


@pytest.mark.parametrize("op", ["Round", "Floor", "Exp", "Sqrt"])
def test_float16_scalar_folded_by_core_ml_stays_float16(op, roundtrip):
    # fuzz seed 0 trial 1878 (float16): EyeLike of a static input is a constant, so MIL folds
    # Round(ReduceSum(.)) itself; its rank-0 value became a float32 const and the program was rejected
    nodes = [helper.make_node("EyeLike", ["x"], ["e"]), helper.make_node("ReduceSum", ["e"], ["r"], keepdims=0),
             helper.make_node(op, ["r"], ["s"]), helper.make_node("Add", ["x", "s"], ["y"])]
    model = make_model(nodes, [tensor_info("x", [2, 2], H)], [tensor_info("y", [2, 2], H)], opset=13)
    feeds = {"x": np.array([[0.5, -1.0], [2.0, 0.25]], np.float16)}
    [(ours, reference)] = roundtrip(model, [feeds])
    np.testing.assert_allclose(np.asarray(ours["y"], np.float64), reference["y"].astype(np.float64), rtol=1e-2, atol=1e-3)
