"""Opening an untrusted model or array file runs no code and reads nothing outside it.

One test per vector, each through the real CLI. A *marker* is a file a payload
would create if it ran (an unpickled object, a Lambda's bytecode, a graph op, an
imported module); a *watched path* is a named pipe outside the model, whose
opening by any reader is detected. Each crafted file is first shown to be live
where that is possible (the payload does create its marker when opened unsafely),
so a refusal is what keeps the marker away.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from security_helpers import refused

REPO = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling it creates ``marker`` (``open(marker, 'w')``)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):  # noqa: D105
        return (open, (self.marker, "w"))


def _pickled_object_npz(path: Path, marker: Path, **plain: np.ndarray) -> Path:
    """An .npz whose array ``evil`` is an object array that creates ``marker`` when unpickled."""
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    np.savez(path, evil=evil, **plain)
    with np.load(path, allow_pickle=True) as stored:  # live payload: unpickling creates the marker
        stored["evil"]
    assert marker.exists()
    marker.unlink()
    return path


# ------------------------------------------------------------------ numpy-mlp, --inputs, --golden


@pytest.fixture(scope="module")
def numpy_mlp_model(tmp_path_factory) -> Path:
    from interop_numpy_mlp.model import MLP

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("npmlp") / "m.npmlp"
    MLP("x", "y", np.zeros(2, np.float32), np.ones(2, np.float32),
        [rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)],
        [np.zeros(4, np.float32), np.zeros(3, np.float32)], ["relu", None]).save(path)
    return path


def test_numpy_mlp_weights_with_a_pickled_object_run_nothing(tmp_path, numpy_mlp_model, cli):
    import shutil

    model = tmp_path / "evil.npmlp"
    shutil.copytree(numpy_mlp_model, model)
    marker = tmp_path / "MARKER"
    with np.load(numpy_mlp_model / "weights.npz") as stored:
        plain = {k: stored[k] for k in stored.files}
    _pickled_object_npz(model / "weights.npz", marker, **plain)
    result = cli("convert", str(model), "-o", str(tmp_path / "out.onnx"))
    refused(result, "weights.npz")
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()


def test_numpy_mlp_weights_linked_outside_are_not_read(tmp_path, numpy_mlp_model, watched, cli):
    import shutil

    model = tmp_path / "linked.npmlp"
    shutil.copytree(numpy_mlp_model, model)
    secret = watched()
    (model / "weights.npz").unlink()
    (model / "weights.npz").symlink_to(secret.path)
    result = cli("check", str(model), str(model), "--samples", "4")
    refused(result, "outside the model folder")
    assert not secret.stop()


@pytest.mark.parametrize("option", ["--inputs", "--golden"])
def test_npz_given_to_check_with_a_pickled_object_runs_nothing(tmp_path, numpy_mlp_model, cli, option):
    marker = tmp_path / "MARKER"
    evil = _pickled_object_npz(tmp_path / "evil.npz", marker, x=np.zeros((3, 2), np.float32))
    result = cli("check", str(numpy_mlp_model), str(numpy_mlp_model), option, str(evil))
    refused(result, "evil.npz")
    assert not marker.exists()


# ------------------------------------------------------------------ the plugin environment worker

_WORKER_PLUGIN = '''
import numpy as np
from pathlib import Path
from interop.plugin_api import Environment, Format, Plugin, Runtime, TensorSpec

class Payload:
    def __init__(self, marker):
        self.marker = marker
    def __reduce__(self):
        return (open, (self.marker, "w"))

class Session:
    engine = "pickler"
    inputs = [TensorSpec("x", "float32", (None, 2))]
    outputs = [TensorSpec("y", "float32", (None, 2))]
    versions = {}
    def __init__(self, path):
        self.marker = Path(path).read_text().strip()
    def run(self, feeds):
        return {"y": np.array([Payload(self.marker)], dtype=object)}

def load(path):
    return Session(path)

plugin = Plugin(
    name="pickler", api_version=1,
    environments=(Environment(name="same", python=PYTHON),),
    formats=(Format(name="pickler", extensions=(".pickler",)),),
    runtimes=(Runtime(name="pickler", formats=("pickler",), load="pickler_plugin:load",
                      environment="same"),),
)
'''


def test_arrays_a_worker_sends_back_are_never_unpickled(tmp_path, cli):
    """A session in a plugin environment returns an object array; the host refuses it unread."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "pickler_plugin.py").write_text(_WORKER_PLUGIN.replace("PYTHON", repr(sys.executable)))
    info = site / "pickler_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pickler-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[interop.plugins]\npickler = pickler_plugin:plugin\n")
    marker = tmp_path / "MARKER"
    model = tmp_path / "m.pickler"
    model.write_text(str(marker))
    result = cli("check", str(model), str(model), "--samples", "2", env={"PYTHONPATH": str(site)})
    assert result.returncode in (2, 4), (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Python objects" in result.stderr, result.stderr
    assert not marker.exists()


# ------------------------------------------------------------------ MXNet

MXNET_PYTHON = REPO / ".venv-mxnet" / "bin" / "python"
needs_mxnet_env = pytest.mark.skipif(not MXNET_PYTHON.exists(), reason="make mxnet-env builds .venv-mxnet")

_MXNET_IO = {"inputs": [{"name": "petal", "dtype": "float32", "shape": [None, 2]}],
             "outputs": [{"name": "out", "dtype": "float32", "shape": [None, 2]}]}


def _mxnet_model(folder: Path, op: str, attrs: dict[str, str]) -> Path:
    """A Gluon-style export whose one op is ``op`` (params need not be valid: it must be refused first)."""
    folder.mkdir()
    symbol = {"nodes": [{"op": "null", "name": "petal", "inputs": []},
                        {"op": op, "name": "evil", "attrs": attrs, "inputs": [[0, 0, 0]]}],
              "arg_nodes": [0], "node_row_ptr": [0, 1, 2], "heads": [[1, 0, 0]],
              "attrs": {"mxnet_version": ["int", 10901]}}
    (folder / "model-symbol.json").write_text(json.dumps(symbol))
    (folder / "model-0000.params").write_bytes((0x112).to_bytes(8, "little") + bytes(16))
    (folder / "interop-io.json").write_text(json.dumps(_MXNET_IO))
    return folder


@pytest.fixture
def mxnet_env() -> dict[str, str]:
    return {"INTEROP_ENV_MXNET": str(REPO)}


@needs_mxnet_env
def test_mxnet_graph_reading_a_file_is_refused_unread(tmp_path, watched, cli, mxnet_env):
    secret = watched("image.jpg")
    model = _mxnet_model(tmp_path / "read.mxnet", "_cvimread", {"filename": str(secret.path)})
    result = cli("check", str(model), str(model), "--samples", "2", env=mxnet_env)
    refused(result, "_cvimread")
    assert not secret.stop()


@needs_mxnet_env
@pytest.mark.parametrize("op,attrs", [("Custom", {"op_type": "interop_marker"}),
                                      ("_Native", {"info": "0x41414141", "need_top_grad": "1"})])
def test_mxnet_graph_calling_python_or_a_native_callback_is_refused(tmp_path, cli, mxnet_env, op, attrs):
    """Running either would call code the file names (or crash on its pointer): exit 4, not 2."""
    model = _mxnet_model(tmp_path / "code.mxnet", op, attrs)
    result = cli("convert", str(model), "-o", str(tmp_path / "out.onnx"), env=mxnet_env)
    refused(result, op, "refused")
    assert not (tmp_path / "out.onnx").exists()


@needs_mxnet_env
def test_mxnet_symbol_linked_outside_is_not_read(tmp_path, watched, cli, mxnet_env):
    model = _mxnet_model(tmp_path / "linked.mxnet", "relu", {})
    secret = watched("model-symbol.json")
    (model / "model-symbol.json").unlink()
    (model / "model-symbol.json").symlink_to(secret.path)
    result = cli("check", str(model), str(model), "--samples", "2", env=mxnet_env)
    refused(result, "outside the model directory")
    assert not secret.stop()


@needs_mxnet_env
def test_mxnet_params_that_are_a_pickle_run_nothing(tmp_path, cli, mxnet_env):
    model = _mxnet_model(tmp_path / "pickled.mxnet", "relu", {})
    marker = tmp_path / "MARKER"
    (model / "model-0000.params").write_bytes(pickle.dumps(_Payload(marker)))
    result = cli("check", str(model), str(model), "--samples", "2", env=mxnet_env)
    refused(result, "MXNet cannot load it")
    assert not marker.exists()


# ------------------------------------------------------------------ Keras (.keras, .h5, SavedModel)
# TensorFlow is imported once, by the first test that builds a model; refusals of
# .keras/.h5 files happen before the CLI imports TensorFlow at all.


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    return keras


def _lambda_model(keras, marker: Path):
    inputs = keras.Input((2,), name="petal")
    touch = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    outputs = keras.layers.Lambda(eval(touch), output_shape=(2,))(inputs)  # noqa: S307 - the test's own payload
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_lambda_bytecode_never_runs(tmp_path, keras, cli, suffix):
    marker = tmp_path / "MARKER"
    path = tmp_path / f"lambda{suffix}"
    _lambda_model(keras, marker).save(str(path))
    marker.unlink(missing_ok=True)  # building the model ran the lambda once
    unsafe = keras.saving.load_model(str(path), safe_mode=False)  # live payload: an unsafe load runs it
    unsafe(np.zeros((1, 2), np.float32))
    assert marker.exists()
    marker.unlink()
    command = ("convert", str(path), "-o", str(tmp_path / "out.onnx")) if suffix == ".keras" \
        else ("check", str(path), str(path), "--samples", "2")
    refused(cli(*command), "Lambda")
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()


def _plain_model(keras):
    inputs = keras.Input((2,), name="petal")
    return keras.Model(inputs, keras.layers.Dense(3, name="hidden")(inputs))


def test_keras_config_naming_a_module_outside_keras_imports_nothing(tmp_path, keras, cli):
    """The activation names a module on PYTHONPATH whose import would create the marker."""
    marker = tmp_path / "MARKER"
    site = tmp_path / "site"
    site.mkdir()
    (site / "interop_marker_payload.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef run(x):\n    return x\n")
    good = tmp_path / "good.keras"
    _plain_model(keras).save(str(good))
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "Dense":
                        layer["config"]["activation"] = {"module": "interop_marker_payload", "class_name": "function",
                                                         "config": "run", "registered_name": "run"}
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    result = cli("convert", str(evil), "-o", str(tmp_path / "out.onnx"), env={"PYTHONPATH": str(site)})
    refused(result, "interop_marker_payload", "outside Keras")
    assert not marker.exists()


def test_h5_linking_another_file_is_not_read(tmp_path, keras, watched, cli):
    import h5py

    path = tmp_path / "linked.h5"
    _plain_model(keras).save(str(path))
    secret = watched("weights.h5")
    with h5py.File(path, "a") as handle:
        del handle["model_weights/hidden"]
        handle["model_weights/hidden"] = h5py.ExternalLink(str(secret.path), "/hidden")
    result = cli("check", str(path), str(path), "--samples", "2")
    refused(result, "links to the file")
    assert not secret.stop()


@pytest.fixture(scope="module")
def tf(keras):
    import tensorflow as tf

    return tf


def _writing_saved_model(tf, folder: Path, marker: Path) -> Path:
    """A SavedModel whose serving function writes ``marker`` each time it runs."""

    class Writer(tf.Module):
        def __init__(self):
            super().__init__()
            self.scale = tf.Variable([1.0, 2.0])

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="petal")])
        def serve(self, petal):
            with tf.control_dependencies([tf.io.write_file(str(marker), "ran")]):
                return {"logits": petal * self.scale}

    module = Writer()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    loaded = tf.saved_model.load(str(folder))  # live payload: running it writes the marker
    loaded.signatures["serving_default"](petal=tf.zeros([1, 2]))
    assert marker.exists()
    marker.unlink()
    return folder


@pytest.mark.parametrize("command", ["convert", "check"])
def test_saved_model_writing_a_file_never_runs(tmp_path, tf, cli, command):
    marker = tmp_path / "MARKER"
    folder = _writing_saved_model(tf, tmp_path / "writer_saved", marker)
    args = ("convert", str(folder), "-o", str(tmp_path / "out.onnx")) if command == "convert" \
        else ("check", str(folder), str(folder), "--samples", "2")
    refused(cli(*args), "WriteFile")
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()


def test_saved_model_reading_a_file_is_refused_unread(tmp_path, tf, watched, cli):
    """tf2onnx folds constants: a ReadFile of a constant path would run at conversion time."""
    secret = watched()

    class Reader(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="petal")])
        def serve(self, petal):
            size = tf.cast(tf.strings.length(tf.io.read_file(str(secret.path))), tf.float32)
            return {"logits": petal * size}

    module = Reader()
    tf.saved_model.save(module, str(tmp_path / "reader_saved"), signatures={"serving_default": module.serve})
    assert not secret.opened  # saving traced the graph without running it
    result = cli("convert", str(tmp_path / "reader_saved"), "-o", str(tmp_path / "out.onnx"))
    refused(result, "ReadFile")
    assert not secret.stop()


def test_saved_model_variables_linked_outside_are_not_read(tmp_path, tf, keras, watched, cli):
    folder = tmp_path / "linked_saved"
    _plain_model(keras).export(str(folder), format="tf_saved_model", verbose=False)
    secret = watched("variables.index")
    real = folder / "variables"
    for item in real.iterdir():
        if item.name != "variables.index":
            item.rename(secret.path.parent / item.name)
        else:
            item.unlink()
    real.rmdir()
    real.symlink_to(secret.path.parent, target_is_directory=True)
    result = cli("check", str(folder), str(folder), "--samples", "2")
    refused(result, "outside the SavedModel")
    assert not secret.stop()


def test_saved_model_op_policy_names_each_side_effect(tmp_path, tf, keras):
    """In-process: the checker refuses printing to a file, Python calls and fixed checkpoint paths."""
    from interop_keras.safety import saved_model_problems

    target = tmp_path / "written"

    class Effects(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def printing(self, x):
            tf.print(x, output_stream=f"file://{target}")
            return x

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def python(self, x):
            return tf.py_function(lambda v: v, [x], tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def checkpoint(self, x):
            tf.raw_ops.SaveV2(prefix=str(target), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
            return x

    for name, op in (("printing", "PrintV2"), ("python", "EagerPyFunc"), ("checkpoint", "SaveV2")):
        module = Effects()
        folder = tmp_path / name
        tf.saved_model.save(module, str(folder), signatures={"serving_default": getattr(module, name)})
        problems = saved_model_problems(folder)
        assert any(op in p for p in problems), (name, problems)
    assert not target.exists()
    plain = tmp_path / "plain"
    _plain_model(keras).export(str(plain), format="tf_saved_model", verbose=False)
    assert saved_model_problems(plain) == []
