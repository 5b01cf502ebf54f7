"""The fp64 oracle: each copy's error against the model computed in float64, and what it may decide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import interop
from interop.checker import oracle as oracle_module


def _onnx(path: Path, nodes, inputs, outputs, initializers) -> Path:  # type: ignore[no-untyped-def]
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _cancellation(path: Path, split: bool) -> Path:
    """y = (x @ W + 1e4) - (x @ W' + 1e4): a small difference of two large float32 numbers.

    ``split`` computes x @ W as two half-length products added: the same function, other rounding.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.uniform(-300, 300, (64, 4)).astype(np.float32)
    other = (weight + rng.uniform(-1, 1, (64, 4))).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(other, "V"),
             numpy_helper.from_array(np.array(1e4, dtype=np.float32), "big"),
             numpy_helper.from_array(weight[:32], "W1"), numpy_helper.from_array(weight[32:], "W2"),
             numpy_helper.from_array(np.array([0, 32], dtype=np.int64), "s0"),
             numpy_helper.from_array(np.array([32, 64], dtype=np.int64), "s1"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axis")]
    if split:
        first = [helper.make_node("Slice", ["x", "s0_b", "s0_e", "axis"], ["x1"]),
                 helper.make_node("Slice", ["x", "s1_b", "s1_e", "axis"], ["x2"]),
                 helper.make_node("MatMul", ["x1", "W1"], ["p1"]), helper.make_node("MatMul", ["x2", "W2"], ["p2"]),
                 helper.make_node("Add", ["p2", "p1"], ["p"])]
        inits += [numpy_helper.from_array(np.array([0], dtype=np.int64), "s0_b"),
                  numpy_helper.from_array(np.array([32], dtype=np.int64), "s0_e"),
                  numpy_helper.from_array(np.array([32], dtype=np.int64), "s1_b"),
                  numpy_helper.from_array(np.array([64], dtype=np.int64), "s1_e")]
    else:
        first = [helper.make_node("MatMul", ["x", "W"], ["p"])]
    nodes = [*first, helper.make_node("Add", ["p", "big"], ["a"]), helper.make_node("MatMul", ["x", "V"], ["q"]),
             helper.make_node("Add", ["q", "big"], ["b"]), helper.make_node("Sub", ["a", "b"], ["y"])]
    return _onnx(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], inits)


def test_oracle_reports_each_copys_error_and_engine(linear_onnx) -> None:
    quiet = interop.check(linear_onnx("ref0.onnx"), [linear_onnx("copy0.onnx")], project_config=False)
    assert quiet.pairs[0].oracle is None  # by default, only a failing output asks the oracle
    report = interop.check(linear_onnx("ref.onnx"), [linear_onnx("copy.onnx")], oracle="fp64", project_config=False)
    pair = report.pairs[0]
    assert pair.oracle["model"].endswith("ref.onnx") and pair.oracle["from_reference"] is True
    assert "onnxruntime" in pair.oracle["engine"] and "float64" in pair.oracle["engine"]
    assert pair.oracle["samples"] == list(range(16))
    y = next(o for o in pair.outputs if o.name == "y")
    assert y.oracle.reference_error < 1e-6 and y.oracle.as_accurate and y.oracle.samples == 16
    assert "fp64 oracle" in report.format_table()
    document = report.to_dict()
    assert document["pairs"][0]["outputs"][0]["oracle"]["verdict"].startswith("candidate as accurate")
    none = interop.check(linear_onnx("ref2.onnx"), [linear_onnx("copy2.onnx")], oracle="none", project_config=False)
    assert none.pairs[0].oracle is None


def test_a_noise_only_failure_passes_when_the_candidate_is_as_accurate_as_the_reference(tmp_path) -> None:
    reference = _cancellation(tmp_path / "ref.onnx", split=False)
    candidate = _cancellation(tmp_path / "split.onnx", split=True)
    without = interop.check(reference, [candidate], oracle="none", project_config=False)
    assert not without.passed  # float32 cancellation: far beyond the tolerance of the small result
    report = interop.check(reference, [candidate], project_config=False)
    y = report.pairs[0].outputs[0]
    assert report.passed and y.message.startswith("passes against the fp64 oracle"), y.message
    assert y.oracle.covers_failures and y.oracle.reference_error > 1e-4
    # a tolerance the user chose is not overridden
    explicit = interop.check(reference, [candidate], atol=1e-5, rtol=1e-4, project_config=False)
    assert not explicit.passed


def test_a_real_error_still_fails_and_the_oracle_says_which_copy_is_off(linear_onnx, tmp_path) -> None:
    import xml.etree.ElementTree as ET

    from interop.checker import junit

    report = interop.check(linear_onnx("ref.onnx"), [linear_onnx("bad.onnx", weight_delta=1e-3)],
                           project_config=False)
    junit.write(report, tmp_path / "junit.xml")
    failure = ET.parse(tmp_path / "junit.xml").getroot().find(".//failure")
    assert "fp64 oracle: reference error" in failure.text and "candidate is off" in failure.text
    y = next(o for o in report.pairs[0].outputs if o.name == "y")
    assert not y.passed and not y.oracle.as_accurate and y.oracle.ratio > 1000
    assert y.oracle.verdict.startswith("candidate is off")
    # the other way round, the reference is the one off
    swapped = interop.check(linear_onnx("bad2.onnx", weight_delta=1e-3), [linear_onnx("good.onnx")],
                            project_config=False)
    judged = next(o for o in swapped.pairs[0].outputs if o.name == "y").oracle
    assert judged.verdict.startswith("candidate is off")  # the oracle is the (bad) reference's own function


def _conv_resize(path: Path, delta: float = 0.0) -> Path:
    """Conv -> Resize (float-only scales) -> Mul by a Constant(value_float): ops float64 needs care with."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(1).standard_normal((2, 3, 3, 3)).astype(np.float32)
    weight[0, 0, 0, 0] += delta
    return _onnx(path,
                 [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                  helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest"),
                  helper.make_node("Constant", [], ["k"], value_float=0.5),
                  helper.make_node("Mul", ["r", "k"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 5, 5])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 10, 10])],
                 [numpy_helper.from_array(weight, "w"),
                  numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")])


def test_float64_copy_keeps_float_only_inputs_and_runs_in_the_reference_evaluator(tmp_path, monkeypatch) -> None:
    path, changed = _conv_resize(tmp_path / "conv.onnx"), _conv_resize(tmp_path / "changed.onnx", 1e-2)
    report = interop.check(path, [changed], project_config=False)
    assert "reference evaluator" in report.pairs[0].oracle["engine"]  # onnxruntime has no float64 Conv
    judged = report.pairs[0].outputs[0].oracle
    assert judged.reference_error < 1e-6 and judged.verdict.startswith("candidate is off")
    monkeypatch.setattr(oracle_module, "CHEAP_MACS", 1.0)
    report = interop.check(path, [changed], project_config=False)
    assert report.pairs[0].oracle is None
    assert any("fp64 oracle skipped" in w and "--oracle fp64" in w for w in report.warnings)
    forced = interop.check(path, [path], oracle="fp64", oracle_samples=2, project_config=False)
    assert forced.pairs[0].oracle["samples"] == [0, 1]


def test_explicit_fp64_oracle_converts_a_pytorch_reference(torch_mlp: Path, run_cli, tmp_path) -> None:
    code, out, err = run_cli("check", torch_mlp, f"{torch_mlp}@torch", "--oracle", "fp64", "--json")
    assert code == 0, err
    oracle = json.loads(out)["pairs"][0]["oracle"]
    assert oracle["model"] == f"{torch_mlp} converted to ONNX" and oracle["from_reference"] is True
    code, _, err = run_cli("check", torch_mlp, torch_mlp, "--oracle", "fp32")
    assert code == 2


def test_an_oracle_both_copies_miss_alike_is_not_credible_and_decides_nothing() -> None:
    exact = [np.linspace(-1.0, 1.0, 50)]
    copy = [exact[0] + 0.3]  # both copies agree with each other, and both are 0.3 away from the oracle
    judged = oracle_module.judge(copy, [copy[0] + 1e-6], exact, "fp32", True)
    assert not judged.credible and not judged.as_accurate and judged.verdict.startswith("not credible")
    # one copy near the oracle: credible, and the other copy is off
    judged = oracle_module.judge([exact[0] + 1e-7], copy, exact, "fp32", True)
    assert judged.credible and judged.verdict.startswith("candidate is off")


def _conv_batchnorm_opset9(path: Path, delta: float = 0.0) -> Path:
    """Conv -> BatchNormalization at opset 9 (its momentum attribute defaults to 0.9), stored statistics."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    weight[0, 0, 0, 0] += delta
    stats = {"scale": rng.uniform(0.5, 1.5, 4), "bias": rng.uniform(-1, 1, 4), "mean": rng.uniform(-1, 1, 4),
             "var": rng.uniform(0.5, 1.5, 4)}
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"])],
        "bn9", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
        [numpy_helper.from_array(weight, "w")]
        + [numpy_helper.from_array(v.astype(np.float32), k) for k, v in stats.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_batch_normalization_before_opset_14_uses_the_stored_statistics(tmp_path) -> None:
    """onnx's reference evaluator normalises an opset-9 BatchNormalization by the batch's statistics."""
    path = _conv_batchnorm_opset9(tmp_path / "bn.onnx")
    report = interop.check(path, [_conv_batchnorm_opset9(tmp_path / "bad.onnx", 1e-2)], project_config=False)
    assert "reference evaluator" in report.pairs[0].oracle["engine"]
    judged = report.pairs[0].outputs[0].oracle
    assert judged.credible and judged.reference_error < 1e-6, judged
    assert judged.verdict.startswith("candidate is off")
