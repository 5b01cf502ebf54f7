"""The reference MLP: trained in Keras and PyTorch, converted to ONNX, same outputs in onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interop.datasets import load_iris, stratified_split
from interop.implementations import open_session
from interop.plugin_registry import get_registry


def _session(path: Path, runtime: str):
    registry = get_registry()
    return open_session(registry.runtimes[runtime], registry, path)


def test_iris_fixture_is_the_standard_data_set():
    x, y = load_iris()
    assert x.shape == (150, 2) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [50, 50, 50]
    # Fisher's data: petal length spans 1.0-6.9 cm, petal width 0.1-2.5 cm.
    assert x.min(axis=0).tolist() == pytest.approx([1.0, 0.1])
    assert x.max(axis=0).tolist() == pytest.approx([6.9, 2.5])


def test_split_is_stratified_and_disjoint():
    _, y = load_iris()
    train, test = stratified_split(y)
    assert len(test) == 30 and len(train) == 120
    assert not set(train) & set(test)
    assert np.bincount(y[test]).tolist() == [10, 10, 10]


@pytest.mark.parametrize(
    ("framework", "onnx_fixture", "model_fixture"),
    [("keras", "keras_onnx", "keras_model"), ("torch", "torch_onnx", "torch_model")],
)
def test_onnx_copy_matches_framework(framework, onnx_fixture, model_fixture, request, sample_batches):
    model = request.getfixturevalue(model_fixture)
    onnx_path = request.getfixturevalue(onnx_fixture)
    source = _session(model, framework)
    copy = _session(onnx_path, "onnxruntime")
    assert [s.name for s in copy.inputs] == ["petal"]
    assert [s.name for s in copy.outputs] == ["logits"]
    assert not copy.inputs[0].is_dynamic(1) and copy.inputs[0].is_dynamic(0)
    for batch in sample_batches:
        expected = source.run({"petal": batch})["logits"]
        got = copy.run({"petal": batch})["logits"]
        assert got.shape == (len(batch), 3)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_onnx_copies_pass_the_checker(keras_onnx, torch_onnx):
    import onnx

    for path in (keras_onnx, torch_onnx):
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)


@pytest.mark.parametrize(
    ("framework", "suffix", "model_fixture"),
    [("keras", ".keras", "keras_model"), ("torch", ".pt2", "torch_model")],
)
def test_train_cli_reports_accuracy_and_is_deterministic(framework, suffix, model_fixture, request, tmp_path, cli):
    out = tmp_path / f"again{suffix}"
    result = cli("train", "--framework", framework, "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert {"framework", "train_accuracy", "test_accuracy", "final_loss", "path"} <= set(summary)
    assert summary["framework"] == framework and Path(summary["path"]) == out
    assert summary["train_accuracy"] >= 0.93 and summary["test_accuracy"] >= 0.90
    assert "epoch  10/10" in result.stderr  # progress streamed per epoch
    # Same defaults and seed as the session fixture, in another process: the same model.
    first = _session(request.getfixturevalue(model_fixture), framework)
    x = load_iris()[0]
    np.testing.assert_array_equal(
        _session(out, framework).run({"petal": x})["logits"], first.run({"petal": x})["logits"]
    )


def test_keras_training_does_not_depend_on_who_loaded_tensorflow(keras_model, tmp_path):
    # The flake behind this test: TensorFlow fixes its kernels (oneDNN or not) when it is first
    # loaded. A process where another library imported TensorFlow before interop (coremltools does)
    # trained with oneDNN and got logits 7e-7 away. Same seed, same machine: the same weights.
    import os
    import subprocess
    import sys

    out = tmp_path / "after_tf.keras"
    # oneDNN is TensorFlow's default only on CPUs with AVX-512 VNNI, BF16 or AMX: the script asks for
    # it explicitly, then leaves the variable unset as a library that imported TensorFlow would.
    script = (
        "import os\n"
        "os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1'\n"
        "import tensorflow as tf\n"
        "del os.environ['TF_ENABLE_ONEDNN_OPTS']\n"
        "import interop\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "assert _pywrap_util_port.IsMklEnabled()\n"  # the hostile state: oneDNN on
        f"interop.train('keras', {str(out)!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    x = load_iris()[0]
    np.testing.assert_array_equal(
        _session(out, "keras").run({"petal": x})["logits"], _session(keras_model, "keras").run({"petal": x})["logits"]
    )


def test_normalisation_is_inside_the_model(torch_model):
    # Raw centimetres in: a setosa-sized petal must be classed as setosa without any scaling.
    logits = _session(torch_model, "torch").run({"petal": np.array([[1.4, 0.2]], np.float32)})["logits"]
    assert int(logits.argmax()) == 0
