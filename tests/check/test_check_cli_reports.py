"""The check command's reporting contract: usage errors, -q, --json/--json-file, failure files and replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_a_reference_without_candidates_is_a_usage_error(linear_onnx, run_cli, tmp_path) -> None:
    code, out, err = run_cli("check", linear_onnx("ref.onnx"))
    assert code == 2 and "no candidate" in err and "Traceback" not in err
    # saving a golden file needs no candidate
    code, _, err = run_cli("check", linear_onnx("ref.onnx"), "--save-golden", tmp_path / "g.npz")
    assert code == 0, err


def test_quiet_failure_names_the_pair_and_the_output_in_one_line(linear_onnx, run_cli) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    code, out, err = run_cli("check", ref, linear_onnx("copy.onnx"), changed, "-q")
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[-1].startswith("FAILED")
    failing = [line for line in lines if line.startswith("FAIL ")]
    assert failing and all("changed.onnx" in line for line in failing)
    assert any(line.startswith(f"FAIL {ref} vs {changed}: y: ") and "beyond atol" in line for line in failing)
    assert err == ""  # no progress lines either


def test_json_goes_to_stdout_and_the_table_to_stderr(linear_onnx, run_cli, tmp_path) -> None:
    code, out, err = run_cli("check", linear_onnx("ref.onnx"), linear_onnx("copy.onnx"), "--json")
    assert code == 0
    assert json.loads(out)["passed"] is True
    assert "PASSED" in err
    report = tmp_path / "reports" / "check.json"
    code, out, err = run_cli("check", linear_onnx("ref.onnx"), linear_onnx("copy.onnx"), "--json-file", report)
    assert code == 0 and "PASSED" in out
    assert json.loads(report.read_text())["passed"] is True


def test_no_failure_files_in_the_working_folder_unless_asked(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    code, out, _ = run_cli("check", ref, changed)
    assert code == 1
    assert not (tmp_path / "interop-check-failures").exists()
    assert not list(tmp_path.rglob("*--*.npz"))
    assert "--save-failures" in out  # says how to get them
    report = tmp_path / "ci" / "check.json"
    code, out, _ = run_cli("check", ref, changed, "--json-file", report)
    saved = sorted((tmp_path / "ci" / "interop-check-failures").glob("*.npz"))
    assert code == 1 and saved
    assert f"in {saved[0]}" in out or any(f"in {path}" in out for path in saved)


def test_reproduce_replays_the_reported_sample_with_the_reported_error(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    code, out, _ = run_cli("check", ref, changed, "--json", "--save-failures", tmp_path / "fails")
    assert code == 1
    y = {o["name"]: o for o in json.loads(out)["pairs"][0]["outputs"]}["y"]
    reported = y["worst_sample_max_abs"]
    assert f"worst sample {y['worst_sample']}: max abs error {reported:.3g}" in y["message"]
    code, again, _ = run_cli("check", *y["reproduce"].split()[2:], "--json")
    replay = {o["name"]: o for o in json.loads(again)["pairs"][0]["outputs"]}["y"]
    assert code == 1
    assert replay["max_abs"] == pytest.approx(reported, rel=1e-6)


def test_error_statistic_options(linear_onnx, run_cli, tmp_path) -> None:
    ref = linear_onnx("ref.onnx")
    changed = linear_onnx("changed.onnx", weight_delta=1e-3)
    # the mean error of y over every element is far below the max: the 'mean' statistic passes y at atol 5e-4
    code, out, err = run_cli("check", ref, changed, "--check-error-stat", "mean", "--atol", "5e-4", "--json")
    document = json.loads(out)
    y = {o["name"]: o for o in document["pairs"][0]["outputs"]}["y"]
    assert y["stat"] == "mean" and y["passed"] is True, y
    assert document["tolerances"]["error_stat"] == "mean"
    code, out, _ = run_cli("check", ref, changed, "--check-error-stat", "y=max", "--atol", "5e-4", "--json")
    outputs = {o["name"]: o for o in json.loads(out)["pairs"][0]["outputs"]}
    assert outputs["y"]["stat"] == "max" and outputs["y"]["passed"] is False
    assert outputs["z"]["stat"] == "scaled"
    code, _, err = run_cli("check", ref, changed, "--check-error-stat", "p50")
    assert code == 2 and "must be one of scaled, elementwise, max, mean, median, p99" in err
    (tmp_path / "pyproject.toml").write_text('[tool.interop.check]\nerror_stat = "median"\n')
    code, out, _ = run_cli("check", ref, changed, "--json")
    assert json.loads(out)["pairs"][0]["outputs"][0]["stat"] == "median"
    (tmp_path / "pyproject.toml").write_text('[tool.interop.check]\nerror_stat = "average"\n')
    code, _, err = run_cli("check", ref, changed)
    assert code == 2 and "tool.interop.check.error_stat" in err


def test_convert_check_names_the_hops_by_role(tmp_path: Path, run_cli, torch_mlp: Path) -> None:
    dst = tmp_path / "model.mlpackage"
    code, out, err = run_cli("convert", torch_mlp, "-o", dst, "--check")
    assert code == 0, out + err
    # The table is the result, on stdout like `interop check`'s; progress is on stderr.
    assert f"candidate  {dst}  on coreml" in out and "PASSED" in out
    assert "candidate  intermediate onnx (hop 1 of 2: torch -> onnx, not kept)  on onnxruntime" in out
    assert "torch -> onnx with plugin torch" in err and "candidate  " not in err
    assert "interop-tmp" not in out + err



def test_the_precision_line_says_which_tolerances_apply(linear_onnx, run_cli) -> None:
    # An fp16 pair names the fp16 defaults only while they judge it; tolerances the user set are named instead.
    ref, copy = linear_onnx("ref.onnx"), linear_onnx("half.onnx", fp16=True)
    code, out, _ = run_cli("check", ref, copy)
    assert code == 0 and "(float16 outputs): fp16 default tolerances apply" in out
    code, out, _ = run_cli("check", ref, copy, "--atol", "0.05")
    assert code == 0 and "(float16 outputs): tolerances atol from --atol, rtol from the fp16 default" in out
    assert "default tolerances apply" not in out
    code, out, _ = run_cli("check", ref, copy, "--atol", "0.05", "--rtol", "0.01")
    assert code == 0 and "tolerances atol from --atol, rtol from --rtol (not the fp16 defaults)" in out
    code, out, _ = run_cli("check", ref, copy, "--tolerance", "y=0.05,0.01")
    assert code == 0 and "tolerances y: from --tolerance y; z: from the fp16 default" in out
