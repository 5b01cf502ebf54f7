"""`interop check` end to end on hand-built ONNX files run by onnxruntime (fast, exact control)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import interop
from interop.checker import golden
from interop.plugin_api import InteropError


def test_same_model_passes_with_exit_0(linear_onnx, run_cli) -> None:
    ref = linear_onnx("ref.onnx")
    code, out, err = run_cli("check", ref, linear_onnx("copy.onnx"))
    assert code == 0, out + err
    assert "PASSED" in out and "onnxruntime (CPUExecutionProvider)" in out


def test_one_weight_changed_by_1e_3_fails_with_exit_1_naming_the_output(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    code, out, err = run_cli("check", ref, changed, "--json-file", tmp_path / "report.json")
    assert code == 1, out + err
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["passed"] is False
    by_name = {o["name"]: o for o in document["pairs"][0]["outputs"]}
    assert by_name["y"]["passed"] is False
    assert by_name["y"]["max_abs"] == pytest.approx(1e-3, rel=0.05)  # x is within [-1, 1]
    assert "y:" in out and "beyond atol" in out


def test_swapped_output_order_is_matched_by_name(linear_onnx, run_cli) -> None:
    code, out, err = run_cli("check", linear_onnx("ref.onnx"), linear_onnx("swapped.onnx", swap_outputs=True))
    assert code == 0, out + err


def test_wrongly_named_inputs_file_is_exit_2(linear_onnx, run_cli, tmp_path) -> None:
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, petal=np.zeros((3, 4), dtype=np.float32))
    code, out, err = run_cli("check", linear_onnx("ref.onnx"), linear_onnx("copy.onnx"), "--inputs", inputs)
    assert code == 2
    assert "missing x; unexpected petal" in err
    assert "Traceback" not in err


def test_nan_in_the_candidate_fails(linear_onnx, run_cli, tmp_path) -> None:
    code, out, err = run_cli("check", linear_onnx("ref.onnx"), linear_onnx("nan.onnx", nan_bias=True),
                             "--json")
    assert code == 1
    document = json.loads(out)
    y = {o["name"]: o for o in document["pairs"][0]["outputs"]}["y"]
    assert y["passed"] is False and "NaN or Inf" in y["message"]


def test_junit_parses_and_counts_failures(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    junit_path = tmp_path / "out" / "junit.xml"
    junit_path.parent.mkdir()
    code, _, _ = run_cli("check", ref, linear_onnx("copy.onnx"), linear_onnx("changed.onnx", weight_delta=1e-3),
                         "--junit", junit_path)
    assert code == 1
    root = ET.parse(junit_path).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(cases) == 4  # two pairs, outputs y and z each
    assert int(suite.get("failures")) == len(failed) >= 1
    assert {c.get("name") for c in failed} <= {"y", "z"}
    assert all("changed.onnx" in c.get("classname") for c in failed)
    assert "max_abs=" in failed[0].find("failure").text
    # the failures folder defaults to one next to the report
    assert list((junit_path.parent / "interop-check-failures").glob("*.npz"))


def test_failure_file_holds_the_worst_sample_and_reproduces_it(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    code, out, _ = run_cli("check", ref, changed, "--json", "--save-failures", tmp_path / "fails")
    assert code == 1
    y = {o["name"]: o for o in json.loads(out)["pairs"][0]["outputs"]}["y"]
    saved = golden.read(Path(y["failure_file"]))
    assert saved.inputs["x"].shape == (1, 4)
    assert set(saved.outputs) == set(saved.candidate) == {"y", "z"}
    assert y["reproduce"].startswith("interop check ")
    args = y["reproduce"].split()[2:]
    assert "--inputs" in args
    code, again, _ = run_cli("check", *args, "--json", "--save-failures", tmp_path / "fails2")
    assert code == 1
    assert json.loads(again)["inputs"]["samples"] == 1


def test_golden_round_trip(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    gold = tmp_path / "golden.npz"
    code, _, err = run_cli("check", ref, "--save-golden", gold, "--seed", 7, "--samples", 20)
    assert code == 0 and gold.exists(), err
    code, out, err = run_cli("check", "--golden", gold, linear_onnx("copy.onnx"), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["inputs"]["samples"] == 20
    assert document["reference"]["format"] == "golden"
    code, _, _ = run_cli("check", "--golden", gold, linear_onnx("changed.onnx", weight_delta=1e-3))
    assert code == 1
    # a golden file given as REFERENCE works the same
    code, out, _ = run_cli("check", gold, linear_onnx("copy2.onnx"), "--json")
    assert code == 0 and json.loads(out)["reference"]["format"] == "golden"


def test_fp16_model_gets_wider_tolerances_said_in_the_report(linear_onnx, run_cli) -> None:
    ref = linear_onnx("ref16.onnx", fp16=True)
    near = linear_onnx("near16.onnx", fp16=True, weight_delta=1e-3)
    code, out, err = run_cli("check", ref, near)
    assert code == 0, out + err
    assert "[fp16]" in out and "float16 outputs" in out
    code, _, _ = run_cli("check", ref, near, "--atol", "1e-6", "--rtol", "1e-6")
    assert code == 1


def test_tolerance_override_per_output(linear_onnx, run_cli) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    code, out, err = run_cli("check", ref, changed, "--tolerance", "y=2e-3,0", "--tolerance", "z=2e-3,0")
    assert code == 0, out + err


def test_floats_of_two_widths_compare_by_value_and_renamed_inputs_fail(linear_onnx) -> None:
    ref = linear_onnx("ref.onnx")
    report = interop.check(ref, [linear_onnx("half.onnx", fp16=True)], project_config=False)
    assert report.passed and report.pairs[0].precision == "fp16"
    assert [o.message for o in report.pairs[0].outputs] == [
        "compared by value: reference float32, candidate float16"] * 2
    # ... by value: a float16 copy with a wrong weight still fails, and the message says both
    report = interop.check(ref, [linear_onnx("half_bad.onnx", fp16=True, weight_delta=0.5)], project_config=False)
    assert not report.passed
    message = report.pairs[0].outputs[0].message
    assert "beyond atol 0.01" in message and message.endswith("compared by value: reference float32, candidate float16")
    renamed = linear_onnx("renamed.onnx", input_name="features")
    report = interop.check(ref, renamed, project_config=False)
    assert not report.passed and "inputs differ" in report.pairs[0].problems[0]


def test_missing_and_extra_outputs_fail_with_their_own_message(linear_onnx) -> None:
    both = linear_onnx("both.onnx")
    only_y = linear_onnx("only_y.onnx", output_names=("y",))
    missing = interop.check(both, only_y, project_config=False).pairs[0]
    assert {o.name: o.passed for o in missing.outputs} == {"y": True, "z": False}
    assert missing.outputs[1].message.startswith("missing: the candidate has no output named z")
    extra = interop.check(only_y, both, project_config=False).pairs[0]
    assert [o.message.split(":")[0] for o in extra.outputs if not o.passed] == ["extra"]


def test_same_model_on_two_runtimes_by_name_and_unknown_runtime(linear_onnx, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    report = interop.check((ref, "onnxruntime"), [f"{ref}@onnxruntime"], project_config=False)
    assert report.passed and report.pairs[0].candidate.runtime == "onnxruntime"
    with pytest.raises(InteropError, match="unknown runtime"):
        interop.check(ref, [(ref, "no-such-runtime")], project_config=False)


def test_api_report_dict_has_the_documented_fields(linear_onnx) -> None:
    report = interop.check(linear_onnx("ref.onnx"), linear_onnx("copy.onnx"), dataset=None, seed=1,
                           batch_sizes="2,3", project_config=False)
    document = report.to_dict()
    assert document["passed"] is True and report.passed
    assert "onnxruntime" in document["versions"] and "interop" in document["versions"]
    assert document["tolerances"]["defaults"]["fp32"] == {"atol": 1e-5, "rtol": 2e-4}
    pair = document["pairs"][0]
    assert {"reference", "candidate", "runtime", "outputs"} <= set(pair)
    for key in ("name", "max_abs", "max_rel", "mean_abs", "p99_abs", "cosine", "argmax_agreement", "passed"):
        assert key in pair["outputs"][0]
    assert document["inputs"]["runs"] == [2, 3]
    json.dumps(document)  # serialisable as is


def test_assert_equivalent(linear_onnx) -> None:
    from interop.testing import assert_equivalent

    ref = linear_onnx("ref.onnx")
    assert_equivalent(ref, linear_onnx("swapped.onnx", swap_outputs=True))
    with pytest.raises(AssertionError, match="not equivalent"):
        assert_equivalent(ref, linear_onnx("changed.onnx", weight_delta=1e-3), atol=1e-5, rtol=1e-5)
    assert_equivalent(ref, linear_onnx("changed2.onnx", weight_delta=1e-3), atol=2e-3, rtol=0)


def test_usage_errors_are_exit_2(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    assert run_cli("check")[0] == 2
    assert run_cli("check", ref, ref, "--batch-sizes", "0")[0] == 2
    assert run_cli("check", ref, ref, "--range", "1,0")[0] == 2
    assert run_cli("check", ref, tmp_path / "missing.onnx")[0] == 2
    code, _, err = run_cli("check", ref, ref, "--dataset", "iris")
    assert code == 2 and "shape (?, 2)" in err


def _reshape_onnx(path: Path, shape: list[int]) -> Path:
    """y = reshape(x, shape) for x of shape (N, 4): [-1, 4] works at any batch, [1, 4] only at batch 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_candidate_that_breaks_at_another_batch_size_fails_the_pair(run_cli, tmp_path) -> None:
    ref = _reshape_onnx(tmp_path / "any_batch.onnx", [-1, 4])
    only_one = _reshape_onnx(tmp_path / "batch_one.onnx", [1, 4])
    code, out, err = run_cli("check", ref, only_one, ref, "--json")
    assert code == 1, err
    pairs = json.loads(out)["pairs"]
    assert pairs[0]["passed"] is False and "on a batch of 7" in pairs[0]["problems"][0]
    assert pairs[1]["passed"] is True  # the other candidate is still checked
    # a reference that crashes leaves nothing to compare: exit 4
    code, _, err = run_cli("check", only_one, ref)
    assert code == 4 and "batch_one.onnx failed on a batch of 7" in err


def test_onnxruntime_sessions_do_not_spin_when_idle(linear_onnx) -> None:
    """A check runs onnxruntime beside other runtimes and numpy: its idle threads must block, not spin."""
    from interop.checker.models import open_model, parse_model_arg
    from interop.plugin_registry import get_registry

    registry = get_registry()
    model = open_model(parse_model_arg(str(linear_onnx("ref.onnx")), registry), {}, registry)
    options = model.session._options
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.log_severity_level == 3
