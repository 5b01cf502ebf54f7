"""The MXNet plugin, run in its own environment (.venv-mxnet, made by `make mxnet-env`).

Everything that needs MXNet skips, naming the make target, when the environment is
absent; `make test` creates it first.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interop.testing.conformance import assert_plugin_conforms

REPO = Path(__file__).resolve().parents[3]
MXNET_PYTHON = REPO / ".venv-mxnet" / "bin" / "python"
needs_mxnet_env = pytest.mark.skipif(
    not MXNET_PYTHON.exists(),
    reason=f"{MXNET_PYTHON} does not exist; create it with `make mxnet-env`",
)


@pytest.fixture
def mxnet_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point interop at the repository's .venv-mxnet whatever the working directory."""
    monkeypatch.setenv("INTEROP_ENV_MXNET", str(REPO))
    return {**os.environ, "INTEROP_ENV_MXNET": str(REPO)}


def interop_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interop", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@needs_mxnet_env
def test_mxnet_plugin_passes_the_conformance_kit(tmp_path: Path, mxnet_env: dict[str, str]) -> None:
    report = assert_plugin_conforms("mxnet", tmp_path=tmp_path)
    assert "converter mxnet -> onnx" in report.passed
    assert "trainer mxnet" in report.passed


@needs_mxnet_env
@pytest.mark.slow
def test_mxnet_mlp_to_onnx_to_coreml_passes_check_against_mxnet(
    tmp_path: Path, mxnet_env: dict[str, str]
) -> None:
    if importlib.util.find_spec("interop_coreml.converter") is None:
        pytest.skip("the ONNX -> Core ML converter (interop_coreml.converter) is not installed yet")
    steps = [
        ("train", "--framework", "mxnet", "-o", "iris.mxnet"),
        ("convert", "iris.mxnet", "-o", "iris.onnx"),
        ("convert", "iris.onnx", "-o", "iris.mlpackage"),
    ]
    outputs = []
    for step in steps:
        done = interop_cli(*step, cwd=tmp_path, env=mxnet_env)
        assert done.returncode == 0, f"interop {' '.join(step)}: {done.stderr}"
        outputs.append(done)
    assert "epoch  10/10" in outputs[0].stderr  # epochs streamed back from the environment (progress: stderr)
    assert "saved iris.mxnet" in outputs[0].stdout
    checked = interop_cli("check", "iris.mxnet", "iris.onnx", "iris.mlpackage", "--dataset", "iris",
                          cwd=tmp_path, env=mxnet_env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "mxnet (CPU)" in checked.stdout
    assert "0 failure(s)" in checked.stdout


#: A valid .params file holding no arrays (MXNet's list magic, a reserved word, 0 arrays, 0 names).
_EMPTY_PARAMS = (0x112).to_bytes(8, "little") + bytes(24)


def _symbol(op: str | None) -> str:
    """A symbol JSON: ``petal -> op`` when ``op`` is given, else a graph with no output at all."""
    if op is None:
        return '{"nodes": [], "arg_nodes": [], "heads": []}'
    return json.dumps({"nodes": [{"op": "null", "name": "petal", "inputs": []},
                                 {"op": op, "name": "y", "attrs": {"a": "1.0"}, "inputs": [[0, 0, 0]]}],
                       "arg_nodes": [0], "node_row_ptr": [0, 1, 2], "heads": [[1, 0, 0]],
                       "attrs": {"mxnet_version": ["int", 10901]}})


@needs_mxnet_env
@pytest.mark.parametrize("params,op,code,first_line", [
    # a corrupt file is bad input
    (b"not mxnet params", None, 2, "error: {model}: MXNet cannot load it: "),
    # an op MXNet's exporter has no translation for: nothing here can convert it
    (_EMPTY_PARAMS, "_contrib_quadratic", 3, "error: {model}: MXNet's ONNX exporter cannot convert the op "
                                             "_contrib_quadratic"),
    # the exporter itself fails (a graph with no output): a converter failure
    (_EMPTY_PARAMS, None, 4, "error: convert with interop_mxnet.convert:mxnet_to_onnx in environment "
                             "'mxnet' failed"),
], ids=["corrupt-params", "unsupported-op", "exporter-crash"])
def test_a_failure_inside_the_environment_is_one_line_with_its_exit_code(
    tmp_path: Path, mxnet_env: dict[str, str], params: bytes, op: str | None, code: int, first_line: str
) -> None:
    model = tmp_path / "bad.mxnet"
    model.mkdir()
    (model / "model-symbol.json").write_text(_symbol(op))
    (model / "model-0000.params").write_bytes(params)
    (model / "interop-io.json").write_text(
        '{"inputs": [{"name": "petal", "dtype": "float32", "shape": [null, 2]}], "outputs": []}')
    done = interop_cli("convert", "bad.mxnet", "-o", "bad.onnx", cwd=tmp_path, env=mxnet_env)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith(first_line.format(model=model)), lines[0]
    assert len(lines) == 2 and lines[1].startswith("hint: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bad.onnx").exists()


def test_missing_environment_is_reported_with_how_to_create_it(tmp_path: Path) -> None:
    env = {**os.environ, "INTEROP_ENV_MXNET": str(tmp_path / "nowhere")}
    listed = interop_cli("plugins", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if "converter  mxnet -> onnx" in l)
    assert "unavailable: environment 'mxnet': no interpreter .venv-mxnet/bin/python" in line
    assert "make mxnet-env" in line
    model = tmp_path / "m.mxnet"
    model.mkdir()
    (model / "model-symbol.json").write_text('{"nodes": []}')
    (model / "model-0000.params").write_bytes(b"x")
    (model / "interop-io.json").write_text("{}")
    done = interop_cli("convert", "m.mxnet", "-o", "m.onnx", cwd=tmp_path, env=env)
    assert done.returncode == 3
    assert "make mxnet-env" in done.stderr


@needs_mxnet_env
def test_train_force_replaces_an_mxnet_model_folder_but_not_a_foreign_one(tmp_path: Path, mxnet_env: dict[str, str]) -> None:
    """MXNet models are folders: --force may replace one interop wrote, never another folder."""
    first = interop_cli("train", "--framework", "mxnet", "-o", "m.mxnet", "--seed", "1", cwd=tmp_path, env=mxnet_env)
    assert first.returncode == 0, first.stderr
    again = interop_cli("train", "--framework", "mxnet", "-o", "m.mxnet", "--force", cwd=tmp_path, env=mxnet_env)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "m.mxnet" / "model-symbol.json").is_file()

    foreign = tmp_path / "notes.mxnet"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine\n")
    refused = interop_cli("train", "--framework", "mxnet", "-o", str(foreign), "--force", cwd=tmp_path, env=mxnet_env)
    assert refused.returncode == 2, refused.stderr
    assert "did not write" in refused.stderr
    assert (foreign / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in foreign.iterdir()) == ["keep.txt"]
