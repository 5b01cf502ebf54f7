"""tf2onnx exports of Keras models: the reference MLP and Keras Applications (weights=None).

The Applications run at 32x32 with 10 classes to keep the suite fast; the graph
structure (ops, shapes arithmetic, names like ``Identity:0``) is the same as at
full size.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("interop_keras.applications", reason="the Keras Applications come with interop-keras")

from interop_keras.applications import KERAS_APPS as APPS  # noqa: E402
from interop_keras.applications import frozen_to_onnx, keras_application_onnx  # noqa: E402

from .conftest import assert_close, interpret, ort_run, save


def _check(model, path, shape, batches=(1, 3)):
    save(model, path)
    input_name = model.graph.input[0].name
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
        assert_close(interpret(path, {input_name: x}), ort_run(model, {input_name: x}))


def test_reference_mlp_from_tf2onnx(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Normalization(mean=[3.76, 1.2], variance=[3.1, 0.58]),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3),
    ])
    model = frozen_to_onnx(mlp, (2,))
    assert any(":" in o.name for o in model.graph.output), "tf2onnx names outputs like Identity:0"
    _check(model, tmp_path / "mlp.mlpackage", (2,))


@pytest.mark.parametrize(
    "app", [pytest.param(app, marks=pytest.mark.slow) if app in ("ResNet50", "DenseNet121") else app for app in APPS]
)
def test_keras_application_from_tf2onnx(app, tmp_path):
    # include_top=False with average pooling (the helper's default): the untrained classifier head would
    # output a uniform softmax, which would compare equal whatever the body computed.
    model = keras_application_onnx(app, (32, 32, 3))
    _check(model, tmp_path / f"{app}.mlpackage", (32, 32, 3), batches=(1, 2))
