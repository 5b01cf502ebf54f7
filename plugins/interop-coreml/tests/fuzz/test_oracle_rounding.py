"""Ulp-level rounding differences: selecting ops compared through values, and verified rounding cascades.

Every case starts from one real 1-ulp difference between the engines: numpy's float32
``tanh(9.82)`` is 0.99999994, onnxruntime's is 1.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from interop_coreml.fuzz import cascade, oracle
from interop_coreml.fuzz.shrink import intermediate_values
from interop_coreml.fuzz.ties import index_ties

#: tanh of the first two is 1.0 in onnxruntime and 0.99999994 / 1.0 in numpy.
NEAR_TIE = np.array([[9.82, 20.0, 0.1, -2.0]], np.float32)


def _model(nodes, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def test_the_engines_really_differ_by_one_ulp_here() -> None:
    model = _model([helper.make_node("Tanh", ["x"], ["t"])], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
    ort = oracle.run_onnxruntime(model, {"x": NEAR_TIE})["t"]
    ours = oracle.run_coreml(model, {"x": NEAR_TIE})["t"]
    assert ort[0, 0] == 1.0 and ours[0, 0] == np.float32(0.99999994)
    assert cascade.ulps(ort, ours).max() == 1.0


def _selecting(op_type: str, **attrs) -> onnx.ModelProto:
    nodes = [helper.make_node("Tanh", ["x"], ["t"])]
    if op_type == "ArgMin":
        nodes.append(helper.make_node("Neg", ["t"], ["n"]))
    source = "n" if op_type == "ArgMin" else "t"
    nodes.append(helper.make_node(op_type, [source], ["y"], axis=1, **attrs))
    elem = TensorProto.FLOAT if op_type == "Hardmax" else TensorProto.INT64
    return _model(nodes, [helper.make_tensor_value_info("y", elem, [1, 4] if op_type == "Hardmax" else [1, 1])])


@pytest.mark.parametrize("op_type,attrs", [("ArgMax", {}), ("ArgMin", {}), ("Hardmax", {}),
                                           ("ArgMax", {"select_last_index": 1})])
def test_argmax_argmin_hardmax_choose_between_near_equal_values_without_a_mismatch(op_type, attrs) -> None:
    model = _selecting(op_type, **attrs)
    ort = oracle.run_onnxruntime(model, {"x": NEAR_TIE})["y"]
    got = oracle.run_coreml(model, {"x": NEAR_TIE})
    diffs = oracle._differences({"y": ort}, got)
    if attrs.get("select_last_index"):
        assert not diffs  # both engines pick index 1: the last of onnxruntime's tie, numpy's maximum
        return
    assert diffs and diffs[0][1] == "value"  # onnxruntime picks index 0 of its tie, numpy the larger index 1
    notes: list[str] = []
    assert index_ties(model, {"x": NEAR_TIE}, got, diffs, notes) == [] and notes
    assert oracle.evaluate(model, {"x": NEAR_TIE}).status == "ok"


@pytest.mark.parametrize("op_type", ["ArgMax", "Hardmax"])
def test_an_exact_tie_or_a_far_choice_stays_a_mismatch(op_type) -> None:
    model = _selecting(op_type)
    exact = {"x": np.array([[0.5, 0.5, 0.1, -2.0]], np.float32)}
    ort = oracle.run_onnxruntime(model, exact)["y"]
    wrong_order = np.array([[0, 1, 0, 0]], np.float32) if op_type == "Hardmax" else np.array([[1]], np.int32)
    diffs = oracle._differences({"y": ort}, {"y": wrong_order})
    assert diffs and index_ties(model, exact, {"y": wrong_order}, diffs, []) == diffs  # spec: the first index
    far = np.array([[0, 0, 1, 0]], np.float32) if op_type == "Hardmax" else np.array([[2]], np.int32)
    diffs = oracle._differences({"y": oracle.run_onnxruntime(model, {"x": NEAR_TIE})["y"]}, {"y": far})
    assert index_ties(model, {"x": NEAR_TIE}, {"y": far}, diffs, []) == diffs  # tanh(0.1) is not near 1
    not_one_hot = np.array([[0.5, 0.5, 0, 0]], np.float32)
    if op_type == "Hardmax":
        diffs = oracle._differences({"y": ort}, {"y": not_one_hot})
        assert index_ties(model, exact, {"y": not_one_hot}, diffs, []) == diffs


def _cascade(op_type: str) -> onnx.ModelProto:
    """Tanh, then an op that turns the ulp into a different result, then more graph after it."""
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    tail = [helper.make_node("Cast", ["c"], ["f"], to=TensorProto.FLOAT), helper.make_node("Add", ["f", "x"], ["y"])]
    if op_type == "GreaterOrEqual":
        nodes = [helper.make_node("GreaterOrEqual", ["t", "one"], ["c"])]
    elif op_type == "Floor":  # floor(tanh(x) * 1) is 0 in numpy, 1 in onnxruntime
        nodes = [helper.make_node("Mul", ["t", "one"], ["s"]), helper.make_node("Floor", ["s"], ["c"])]
    else:  # ArgMin over -tanh: a choice, then used as an index
        nodes = [helper.make_node("Neg", ["t"], ["n"]), helper.make_node("ArgMin", ["n"], ["c"], axis=1)]
    return _model([helper.make_node("Tanh", ["x"], ["t"]), *nodes, *tail],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [one])


@pytest.mark.parametrize("op_type", ["GreaterOrEqual", "Floor", "ArgMin"])
def test_a_rounding_cascade_is_explained_only_when_feeding_the_interpreters_value_reproduces_it(op_type) -> None:
    model = _cascade(op_type)
    feeds = {"x": NEAR_TIE}
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.kind) == ("mismatch", "value"), outcome.message
    assert outcome.explained == "float-rounding-cascade"
    got = oracle.run_coreml(model, feeds)
    notes: list[str] = []
    assert cascade.verify_rounding_cascade(model, feeds, got, ["y"], notes)
    assert "at most 1 ulps apart" in notes[0]
    # what a downstream translator bug would look like: the same ulp upstream, a wrong value after it
    wrong = {"y": got["y"] + np.float32(0.5)}
    assert not cascade.verify_rounding_cascade(model, feeds, wrong, ["y"])


def test_no_cascade_without_a_difference_at_a_discontinuous_op() -> None:
    same = {"x": np.array([[0.5, -1.0, 0.1, -2.0]], np.float32)}  # no tie anywhere: the engines agree
    model = _cascade("GreaterOrEqual")
    got = oracle.run_coreml(model, same)
    got["y"] = got["y"] + np.float32(1.0)
    assert not cascade.verify_rounding_cascade(model, same, got, ["y"])
    plain = _model([helper.make_node("Tanh", ["x"], ["y"])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    assert cascade.rounding_tensors(plain, intermediate_values(plain, same)) == []


def test_ulps() -> None:
    one = np.float32(1.0)
    below = np.nextafter(one, np.float32(0))
    assert cascade.ulps(np.array([one, 2.0, np.nan]), np.array([below, 2.0, np.nan])).tolist() == [1.0, 0.0, 0.0]
    assert cascade.ulps(np.array([1.0]), np.array([np.inf]))[0] == np.inf
    assert cascade.ulps(np.array([1.0]), np.array([1.001]))[0] > cascade.MAX_ULPS


def test_a_sum_in_another_order_kept_by_fmod_is_a_tolerance_cascade_not_an_ulp_one() -> None:
    """ReduceL1 over 50,000 terms of magnitudes 1e-3 to 1e3, then Mod(fmod=1) by 1.3.

    The engines add the terms in different orders: the sums (about 4e6) agree within tolerance but
    more than MAX_ULPS apart, and fmod keeps that absolute error on a result under 1.3. (The
    make-test slice's case, seed 20260 trial 17, was InstanceNormalization -> ReduceL1 -> Mod; most
    of its error was coremltools' fused batch_norm, exact since fuzz seed 78, and it now agrees.)
    """
    rng = np.random.default_rng(7)
    graph = helper.make_graph(
        [helper.make_node("ReduceL1", ["x"], ["s"], keepdims=0), helper.make_node("Mod", ["s", "d"], ["y"], fmod=1)],
        "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 50_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [onnx.numpy_helper.from_array(np.array(1.3, np.float32), "d")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    feeds = {"x": (rng.standard_normal((4, 50_000)) * 10 ** rng.uniform(-3, 3, (4, 50_000))).astype(np.float32)}
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.explained) == ("mismatch", "float-tolerance-cascade"), outcome.key
    got = oracle.run_coreml(model, feeds)
    differing = [name for name, *_ in oracle._differences(oracle.run_onnxruntime(model, feeds), got)]
    assert not cascade.verify_rounding_cascade(model, feeds, got, differing, within="ulps")
    assert cascade.verify_rounding_cascade(model, feeds, got, differing, within="tolerance")


def test_the_make_test_slices_instance_norm_fmod_case_now_agrees() -> None:
    """Seed 20260 trial 17 (InstanceNormalization -> ReduceL1 -> Mod, fmod=1) was explained as a
    tolerance cascade; its error came mostly from coremltools' fused batch_norm scaling x * gamma by
    1 / sqrt(1 + 1e-5). With epsilon 0 the interpreter agrees with onnxruntime."""
    data = Path(__file__).parent / "data"
    model = onnx.load(str(data / "slice-20260-17.onnx"))
    feeds = dict(np.load(data / "slice-20260-17.npz"))
    assert oracle.evaluate(model, feeds).status == "ok"


def test_a_cascade_through_a_comparison_with_a_graph_input_is_verified() -> None:
    """Seed 0, trial 8098: Greater(Asin(constant), input). The input is the same in both engines, never fed."""
    graph = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("GreaterOrEqual", ["t", "y"], ["c"])], "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    feeds = {"x": NEAR_TIE, "y": np.ones((1, 1), np.float32)}
    assert cascade.rounding_tensors(model, {**feeds, **intermediate_values(model, feeds)}) == ["t"]
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.explained) == ("mismatch", "float-rounding-cascade"), outcome.key


def test_onnxruntime_keeping_float32_between_float16_ops_is_a_verified_cascade() -> None:
    """Fuzz seed 0 trial 590 (float16): AveragePool then Ceil. onnxruntime averages in float32 and
    hands Ceil −3.999 where the graph's float16 tensor is −4.0 (its own declared output too)."""
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["x"], ["a"], kernel_shape=[2, 1]), helper.make_node("Ceil", ["a"], ["y"])],
        "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 1, 2, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 1, 1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    feeds = {"x": np.array([-5.453125, -2.544921875], np.float16).reshape(1, 1, 2, 1)}
    values = intermediate_values(model, feeds)
    assert values["a"].item() == -4.0 and oracle.run_onnxruntime(model, feeds)["y"].item() == -3.0
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.explained) == ("mismatch", "float-rounding-cascade"), outcome.key
    got = oracle.run_coreml(model, feeds)
    assert np.asarray(got["y"]).item() == -4.0
    got["y"] = np.asarray(got["y"]) + 1  # the rest must still be reproduced
    assert not cascade.verify_rounding_cascade(model, feeds, got, ["y"])


def test_a_layer_norm_amplifying_a_float16_ulp_is_verified_as_such() -> None:
    """Mixed seed 3, trial 5991 (float16): LogSoftmax's last ulp, through a LayerNormalization whose
    slices have variance ~6e-4 (1/std ~ 12), is 0.012 at its output and 0.02 after Tan. Fed the
    interpreter's LayerNorm input, onnxruntime reproduces the outputs."""
    data = Path(__file__).parent / "data"
    model = onnx.load(str(data / "half-3-5991.onnx"))
    feeds = dict(np.load(data / "half-3-5991.npz"))
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.explained) == ("mismatch", "float-amplified-by-normalization"), outcome.key
    got = oracle.run_coreml(model, feeds)
    differing = [name for name, *_ in oracle._differences(oracle.run_onnxruntime(model, feeds), got)]
    assert not cascade.verify_rounding_cascade(model, feeds, got, differing, within="tolerance")  # no discontinuity
    got[differing[0]] = np.asarray(got[differing[0]]) + np.float32(0.5)  # a real difference after the norm is not
    assert not cascade.verify_rounding_cascade(model, feeds, got, differing, within="tolerance", ops=cascade.AMPLIFYING)


def test_a_sum_of_cancelling_terms_added_in_another_order_is_within_the_summation_bound() -> None:
    """Fuzz seed 4 trial 17112: ReduceSum of sixty float32 terms up to 1.41 whose exact sum is 7.5e-7;
    onnxruntime gives -6.7e-7, numpy 1.95e-6: both within 60 ulps of Σ|x| = 54.5, not within 1e-6."""
    data = Path(__file__).parent / "data"
    model = onnx.load(str(data / "sum-4-17112.onnx"))
    feeds = dict(np.load(data / "sum-4-17112.npz"))
    ort_sum = oracle.run_onnxruntime(model, feeds)["red8"]
    got = oracle.run_coreml(model, feeds)
    assert oracle.compare_output("red8", ort_sum, got["red8"]) is not None  # they really differ
    values = {**feeds, **intermediate_values(model, feeds)}
    assert cascade.summation_tensors(model, values) == ["red8"]
    assert cascade.within_summation_bound(model, values, "red8", [ort_sum, got["red8"]])
    assert not cascade.within_summation_bound(model, values, "red8", [ort_sum + 1e-3])  # bound: 2e-4
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.explained) == ("mismatch", "float-summation-cancellation"), outcome.key
    got["red8"] = np.asarray(got["red8"]) + 1e-3  # a wrong sum is not explained
    assert not cascade.verify_rounding_cascade(model, feeds, got, ["red8"], within="summation")


def test_a_tensor_a_discontinuous_op_reads_twice_is_fed_once() -> None:
    """Seed 12 trial 770 (float16): Greater(neg, neg) named neg twice among the tensors to feed, the
    probe declared it twice as an output, the interpreter refused that graph and the cascade through
    LpNormalization's last ulp (0.57128906 against onnxruntime's 0.5718, then Greater with 0.5713)
    went unexplained."""
    data = Path(__file__).parent / "data"
    model = onnx.load(str(data / "half-12-770.onnx"))
    feeds = dict(np.load(data / "half-12-770.npz"))
    values = {**feeds, **intermediate_values(model, feeds)}
    assert cascade.rounding_tensors(model, values) == ["neg3", "lea7"]
    outcome = oracle.evaluate(model, feeds)
    assert (outcome.status, outcome.explained) == ("mismatch", "float-rounding-cascade"), outcome.key
