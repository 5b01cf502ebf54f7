"""`interop suite` end to end on the numpy-mlp example model (no framework: about a second per entry)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, npmlp: Path) -> Path:
    shutil.copytree(npmlp, tmp_path / "models" / "iris.npmlp")
    shutil.copytree(npmlp, tmp_path / "models" / "other.npmlp")
    return tmp_path


def _write(project: Path, text: str) -> Path:
    (project / "interop.toml").write_text(text)
    return project / "interop.toml"


def test_passes_writes_reports_and_reuses_the_cache(project: Path, cli, valid_suite_document):
    _write(project, 'to = ["onnx"]\ndataset = "iris"\n\n[[models]]\npath = "models/*.npmlp"\n'
                    'golden = "golden/{stem}.npz"\n')
    first = cli("suite", "--update-golden", "--jobs", "2", "--json-file", "out/suite.json", "--junit",
                "out/junit.xml", cwd=project)
    assert first.returncode == 0, first.stderr
    assert (project / "golden" / "iris.npz").is_file() and (project / "golden" / "other.npz").is_file()
    document = valid_suite_document(json.loads((project / "out" / "suite.json").read_text()))
    assert document["passed"] and document["summary"]["entries"] == 4
    assert [e["id"] for e in document["entries"]] == [
        "models/iris.npmlp[onnx]", "models/iris.npmlp[golden]", "models/other.npmlp[onnx]",
        "models/other.npmlp[golden]"]
    converted = document["entries"][0]
    assert converted["route"] == ["numpy-mlp", "onnx"] and converted["status"] == "passed"
    assert (project / converted["artifact"]).is_file() and converted["artifact"].endswith("iris.onnx")
    pair = converted["check"]["pairs"][0]
    assert pair["engine"].startswith("onnxruntime") and pair["reference"]["engine"] == "numpy-mlp (NumPy)"
    cases = ET.parse(project / "out" / "junit.xml").getroot().iter("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("interop.suite.models/iris.npmlp", "onnx: logits"), ("interop.suite.models/iris.npmlp", "golden"),
        ("interop.suite.models/other.npmlp", "onnx: logits"), ("interop.suite.models/other.npmlp", "golden")]

    again = cli("suite", "--json", cwd=project)
    assert again.returncode == 0, again.stderr
    document = valid_suite_document(json.loads(again.stdout))
    assert [e["cached"] for e in document["entries"]] == [True, False, True, False]  # golden files now exist
    assert document["entries"][1]["check"]["pairs"][0]["reference"]["label"].startswith("golden")
    third = json.loads(cli("suite", "--json", "-k", "iris and not onnx", cwd=project).stdout)
    assert [(e["id"], e["cached"]) for e in third["entries"]] == [("models/iris.npmlp[golden]", True)]
    fresh = json.loads(cli("suite", "--json", "--no-cache", "-k", "other", cwd=project).stdout)
    assert [e["cached"] for e in fresh["entries"]] == [False, False]
    listed = cli("suite", "--list", cwd=project)
    assert listed.returncode == 0 and "models/other.npmlp[onnx]  numpy-mlp -> onnx" in listed.stdout


def test_a_changed_model_is_run_again(project: Path, cli):
    _write(project, 'to = ["onnx"]\n[[models]]\npath = "models/iris.npmlp"\n')
    assert cli("suite", cwd=project).returncode == 0
    mlp = project / "models" / "iris.npmlp" / "mlp.json"
    mlp.write_text(mlp.read_text() + "\n")
    document = json.loads(cli("suite", "--json", cwd=project).stdout)
    assert document["entries"][0]["cached"] is False


def test_per_input_ranges_and_shapes_reach_the_check(project: Path, cli):
    _write(project, 'to = ["onnx"]\n[[models]]\npath = "models/iris.npmlp"\nrange = { petal = [5, 6] }\n'
                    'input_shapes = { petal = [3, 2] }\n')
    result = cli("suite", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    inputs = json.loads(result.stdout)["entries"][0]["check"]["inputs"]
    assert inputs["inputs"]["petal"]["range"] == [5.0, 6.0] and inputs["inputs"]["petal"]["shape"] == [3, 2]


def test_mismatch_is_exit_1_with_a_junit_failure(project: Path, cli, valid_suite_document):
    # numpy and onnxruntime differ by about 1e-6 on this model: a zero tolerance must fail.
    _write(project, 'to = ["onnx", "strict"]\ndataset = "iris"\n[targets.strict]\nformat = "onnx"\n'
                    'atol = 0.0\nrtol = 0.0\n[[models]]\npath = "models/iris.npmlp"\n')
    result = cli("suite", "--junit", "junit.xml", "--json-file", "suite.json", cwd=project)
    assert result.returncode == 1, result.stderr
    assert "FAILED: 2 entries, 1 passed, 1 failed" in result.stdout
    assert "models/iris.npmlp[strict]: output logits:" in result.stdout
    document = valid_suite_document(json.loads((project / "suite.json").read_text()))
    assert [e["status"] for e in document["entries"]] == ["passed", "failed"]
    assert document["entries"][1]["artifact"].endswith("iris.strict.onnx")
    failures = [c for c in ET.parse(project / "junit.xml").getroot().iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["strict: logits"]


def test_a_crash_and_a_timeout_fail_only_their_entries(project: Path, cli, faults_site: Path,
                                                       valid_suite_document):
    _write(project, 'to = ["onnx"]\n[[models]]\npath = "models/iris.npmlp"\nto = ["onnx", "crashing"]\n'
                    '[[models]]\npath = "models/other.npmlp"\nto = ["hanging", "onnx"]\ntimeout = 4\n')
    result = cli("suite", "--jobs", "2", "--junit", "junit.xml", "--json", cwd=project,
                 env={"PYTHONPATH": str(faults_site)})
    assert result.returncode == 1, result.stderr
    document = valid_suite_document(json.loads(result.stdout))
    statuses = {e["id"]: e["status"] for e in document["entries"]}
    assert statuses == {"models/iris.npmlp[onnx]": "passed", "models/iris.npmlp[crashing]": "crashed",
                        "models/other.npmlp[hanging]": "timeout", "models/other.npmlp[onnx]": "passed"}
    crashed = document["entries"][1]["error"]
    assert "SIGSEGV" in crashed["message"]
    assert "timed out after 4 s" in document["entries"][2]["error"]["message"]
    assert 4 <= document["entries"][2]["seconds"] < 30
    errors = {c.get("name"): c.find("error").get("type") for c in ET.parse(project / "junit.xml").getroot()
              .iter("testcase") if c.find("error") is not None}
    assert errors == {"crashing": "crashed", "hanging": "timeout"}
    assert not list((project / ".interop-cache" / "entries").glob(".*interop-tmp"))


def test_bad_manifest_is_exit_2_naming_the_line(project: Path, cli):
    _write(project, 'to = ["onnx"]\n[[models]]\npath = "models/iris.npmlp"\nbatch_size = 3\n')
    result = cli("suite", "--json-file", "suite.json", cwd=project)
    assert result.returncode == 2
    assert f"error: {project / 'interop.toml'}:4: models[0]: unknown key batch_size" in result.stderr
    assert "Traceback" not in result.stderr and not (project / "suite.json").exists()
    assert cli("suite", "-k", "(iris", cwd=project).returncode == 2
    assert cli("suite", cwd=project / "models").returncode == 2  # interop.toml is found from below... with a bad key
    (project / "interop.toml").unlink()
    missing = cli("suite", cwd=project)
    assert missing.returncode == 2 and "no interop.toml" in missing.stderr


_PROBE = """
import runpy, sys
sys.argv = ["interop", *sys.argv[1:]]
try:
    runpy.run_module("interop", run_name="__main__")
except SystemExit as exc:
    print("EXIT:", exc.code, file=sys.stderr)
heavy = ("tensorflow", "keras", "torch", "coremltools", "onnxruntime", "tf2onnx", "distributed", "dask")
print("HEAVY:" + ",".join(m for m in heavy if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["suite", "--help"], ["suite", "--list"], ["suite"]])
def test_listing_and_cached_runs_import_no_framework(project: Path, args: list[str]):
    import subprocess
    import sys

    _write(project, 'to = ["onnx"]\n[[models]]\npath = "models/iris.npmlp"\n')
    assert subprocess.run([sys.executable, "-m", "interop", "suite"], cwd=project, capture_output=True).returncode == 0
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=project, capture_output=True, text=True,
                            timeout=120)
    assert "EXIT: 0" in result.stderr and "HEAVY:\n" in result.stderr, result.stderr


def test_keyword_expressions():
    from interop.plugin_api import InteropError
    from interop.suite.runner import keyword_matches

    name = "models/resnet50.onnx[coreml-fp16]"
    assert keyword_matches("resnet", name) and keyword_matches("RESNET and fp16", name)
    assert not keyword_matches("resnet and not fp16", name)
    assert keyword_matches("(mobilenet or resnet) and coreml", name)
    assert not keyword_matches("not (onnx)", name)
    for bad in ("(resnet", "resnet and", "and x", "a )"):
        with pytest.raises(InteropError):
            keyword_matches(bad, name)


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_interrupted_suite_kills_its_workers_and_leaves_no_scratch(project: Path, faults_site: Path, signum: str):
    import os
    import signal
    import subprocess
    import sys
    import time

    _write(project, '[[models]]\npath = "models/iris.npmlp"\nto = ["hanging"]\n')
    hanging = project / "models" / "iris.npmlp"
    env = {**os.environ, "PYTHONPATH": str(faults_site)}
    env.pop("INTEROP_DEBUG", None)

    def default_signals() -> None:  # as typed at a terminal (a background job inherits SIGINT ignored)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "interop", "suite", "--json-file", "suite.json"], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    entries = project / ".interop-cache" / "entries"
    deadline = time.monotonic() + 120
    while not any(entries.glob(".*interop-tmp/worker.log")):  # the worker process has started
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(getattr(signal, signum))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == (130 if signum == "SIGINT" else 143), stderr
    assert not list(entries.glob(".*interop-tmp")) and not (project / "suite.json").exists()
    workers = subprocess.run(["pgrep", "-f", f"interop.suite.worker {entries}"], capture_output=True, text=True)
    assert workers.stdout.strip() == "", "a worker process outlived the suite"
    assert hanging.exists()
