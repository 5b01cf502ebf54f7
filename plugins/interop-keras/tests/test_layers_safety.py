"""interop's own Keras layers pass interop's safety check and Keras' safe mode; nothing else gets through."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from onnx import helper

from interop.plugin_api import ModelLoadError

from .onnx_import.helpers import make_model


def test_the_allow_list_is_exactly_what_interop_keras_registers():
    import keras

    from interop_keras import layers
    from interop_keras.safety import INTEROP_LAYERS, INTEROP_LAYERS_MODULE, INTEROP_PACKAGE

    assert layers.registered_names() == INTEROP_LAYERS
    for name in INTEROP_LAYERS:
        cls = getattr(layers, name)
        assert cls.__module__ == INTEROP_LAYERS_MODULE
        assert keras.saving.get_registered_name(cls) == f"{INTEROP_PACKAGE}>{name}"


@pytest.fixture(scope="module")
def saved_with_interop_layers(tmp_path_factory):
    """A .keras holding interop layers (LRN, Pooling, Pad, ConstantOperand ...), written by the converter."""
    from interop_keras.onnx_import import onnx_to_keras

    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "scale": rng.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float32),
             "pads": np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64), "v": np.float32(0.5)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("LRN", ["a"], ["b"], size=3),
             helper.make_node("Mul", ["b", "scale"], ["c"]), helper.make_node("Pad", ["c", "pads", "v"], ["d"]),
             helper.make_node("MaxPool", ["d"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])]
    model = make_model(nodes, {"x": ["N", 3, 8, 8]}, ["y"], inits)
    folder = tmp_path_factory.mktemp("layers")
    import onnx

    onnx.save(model, folder / "m.onnx")
    onnx_to_keras(folder / "m.onnx", folder / "m.keras", {})
    return folder / "m.keras"


def test_legacy_h5_output_keeps_interop_layers_working(saved_with_interop_layers):
    """Keras' .h5 loader turns config strings naming keras.layers functions ('multiply') into the
    functions; interop's layers name their ops like ONNX ('Mul'), which it leaves alone."""
    from interop_keras.loading import load_keras_model
    from interop_keras.onnx_import import onnx_to_keras

    folder = saved_with_interop_layers.parent
    onnx_to_keras(folder / "m.onnx", folder / "m.h5", {})
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(load_keras_model(folder / "m.h5")(x)),
                               np.asarray(load_keras_model(saved_with_interop_layers)(x)), rtol=1e-6, atol=1e-6)


def _config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as archive, zipfile.ZipFile(dst, "w") as out:
        for item in archive.infolist():
            data = archive.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return dst


def test_interop_layers_load_through_interop_and_in_safe_mode(saved_with_interop_layers):
    from interop_keras.loading import load_keras_model
    from interop_keras.safety import check_keras_file

    used = {layer["class_name"] for layer in _config(saved_with_interop_layers)["config"]["layers"]
            if layer.get("module") == "interop_keras.layers"}
    assert {"LocalResponseNormalization", "ConstantOperand", "Pad", "Pooling"} <= used
    check_keras_file(saved_with_interop_layers)
    model = load_keras_model(saved_with_interop_layers)
    assert model.count_params() > 0


def test_a_fresh_python_loads_it_with_keras_safe_mode_after_importing_interop_keras_layers(saved_with_interop_layers):
    code = ("import interop_keras.layers, keras, sys; "
            "m = keras.saving.load_model(sys.argv[1], safe_mode=True); print(len(m.trainable_weights))")
    done = subprocess.run([sys.executable, "-c", code, str(saved_with_interop_layers)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "2"  # the conv kernel and the per-channel scale


@pytest.mark.parametrize("edit, reason", [
    (lambda layer: layer.update(module="interop_keras.evil"), "outside Keras"),
    (lambda layer: layer.update(class_name="Unknown", registered_name="interop_keras>Unknown"), "outside Keras"),
    (lambda layer: layer.update(registered_name="someone>Pooling"), "refused"),
    (lambda layer: layer.update(module="os", class_name="system", registered_name="interop_keras>system"),
     "outside Keras"),
])
def test_lookalikes_of_interop_layers_are_refused(saved_with_interop_layers, tmp_path, edit, reason):
    from interop_keras.safety import check_keras_file

    def change(config):
        layer = next(layer for layer in config["config"]["layers"] if layer.get("class_name") == "Pooling")
        edit(layer)

    crafted = _rewrite(saved_with_interop_layers, tmp_path / "crafted.keras", change)
    with pytest.raises(ModelLoadError, match=reason):
        check_keras_file(crafted)


def test_an_interop_layer_config_cannot_name_a_function(saved_with_interop_layers, tmp_path):
    """The op names a layer takes come from fixed tables: a crafted op is a load error, nothing runs."""
    from interop_keras.loading import load_keras_model

    def change(config):
        layer = next(layer for layer in config["config"]["layers"] if layer.get("class_name") == "ConstantOperand")
        layer["config"]["op"] = "__import__"

    crafted = _rewrite(saved_with_interop_layers, tmp_path / "crafted.keras", change)
    with pytest.raises(ModelLoadError, match="Keras cannot load this model"):
        load_keras_model(crafted)
