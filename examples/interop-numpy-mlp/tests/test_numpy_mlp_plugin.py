"""The example plugin, exercised the way its author would: conformance kit, then the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from interop.testing.conformance import assert_plugin_conforms


def interop_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interop", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_plugin_passes_the_conformance_kit(tmp_path: Path) -> None:
    report = assert_plugin_conforms("numpy-mlp", tmp_path=tmp_path)
    assert "converter numpy-mlp -> onnx" in report.passed
    assert "runtime numpy-mlp on numpy-mlp" in report.passed


def test_trained_model_learns_iris_and_its_onnx_copy_agrees(tmp_path: Path) -> None:
    trained = interop_cli("train", "--framework", "numpy-mlp", "-o", "iris.npmlp", "--json",
                          cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert result["test_accuracy"] >= 0.85
    assert len(result["history"]) == 10
    converted = interop_cli("convert", "iris.npmlp", "-o", "iris.onnx", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr

    import onnxruntime as ort

    from interop_numpy_mlp.runtime import load

    petals = np.array([[1.4, 0.2], [4.5, 1.5], [6.0, 2.5]], np.float32)
    ours = load(tmp_path / "iris.npmlp").run({"petal": petals})["logits"]
    session = ort.InferenceSession(str(tmp_path / "iris.onnx"), providers=["CPUExecutionProvider"])
    theirs = session.run(["logits"], {"petal": petals})[0]
    np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=1e-4)
    assert list(ours.argmax(axis=1)) == [0, 1, 2]  # setosa, versicolor, virginica


def test_sniff_names_what_is_wrong(tmp_path: Path) -> None:
    from interop_numpy_mlp.model import sniff

    folder = tmp_path / "broken.npmlp"
    folder.mkdir()
    (folder / "mlp.json").write_text('{"format": "numpy-mlp"}')
    assert sniff(folder) == "it has no weights.npz"
    (folder / "mlp.json").write_text("not json")
    assert sniff(folder) == "mlp.json is not JSON"
