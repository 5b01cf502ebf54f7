"""Whole networks imported into Keras: the onnx wheel's zoo and Keras Applications through tf2onnx.

Each model goes the user's way (``interop.convert`` to a ``.keras`` file, then
``interop.check`` against onnxruntime at batch 1 and a larger batch), loads through
interop's safety check and Keras' safe mode, has as many trainable weights as the
ONNX graph has weights (counted independently by ``interop.testing.zoo``), gives
every trainable weight a gradient, and one SGD step on a fixed batch lowers the loss.
``make test`` runs one representative, MobileNetV2 through tf2onnx (depthwise convolutions and
tf2onnx's NHWC transposes, which the layout tracking must absorb); the rest is ``extended``
(``make test-extended``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import interop
from interop.testing.zoo import (
    ZOO_NAMES,
    onnx_weight_count,
    without_final_softmax,
    zoo_model,
    zoo_weight_names,
)
from interop_keras.applications import KERAS_APPS, keras_application_onnx

from .helpers import ort_run, random_feeds

#: What `make test` runs of the campaign: the rest is `make test-extended`.
_REPRESENTATIVE = "MobileNetV2"


def _marked(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n == _REPRESENTATIVE
            else pytest.param(n, marks=[pytest.mark.extended, pytest.mark.slow]) for n in names]


def _outputs(result):
    if isinstance(result, dict):
        return [result[k] for k in sorted(result)]
    return list(result) if isinstance(result, (list, tuple)) else [result]


def one_step_lowers_the_loss(model, x, training: bool, seed: int = 0) -> tuple[float, float]:
    """Squared error to a fixed target, one plain SGD step; returns the loss before and after.

    The step size makes the first-order decrease 1% of the loss, whatever the
    network's scale. Asserts every trainable weight receives a gradient.
    """
    import keras
    import tensorflow as tf

    if isinstance(model.input, dict):  # ONNX names Keras cannot use as layer names: a dict keyed by them
        (key,) = model.input
        x = {key: x}
    rng = np.random.default_rng(seed)
    reference = [np.asarray(o) for o in _outputs(model(x, training=False))]
    targets = [rng.standard_normal(o.shape).astype(np.float32) * (np.std(o) + 1e-3) for o in reference]
    scales = [float(np.mean(np.square(o - t))) + 1e-12 for o, t in zip(reference, targets)]

    def loss_value():
        outs = _outputs(model(x, training=training))
        return tf.add_n([tf.reduce_mean(tf.square(o - t)) / s for o, t, s in zip(outs, targets, scales)])

    with tf.GradientTape() as tape:
        before = loss_value()
    weights = model.trainable_weights
    grads = tape.gradient(before, weights)
    missing = [w.path for w, g in zip(weights, grads) if g is None]
    assert not missing, f"trainable weights without a gradient: {missing[:5]}"
    norm = float(sum(float(tf.reduce_sum(tf.square(g))) for g in grads))
    assert norm > 0
    keras.optimizers.SGD(learning_rate=0.01 * float(before) / norm).apply_gradients(zip(grads, weights))
    after = float(loss_value())
    assert after < float(before), (float(before), after)
    return float(before), after


def _convert_and_check(model: onnx.ModelProto, folder: Path, batches=(1, 2)):
    """interop.convert to .keras and interop.check against onnxruntime; returns the imported .keras path."""
    source = folder / "model.onnx"
    onnx.save(model, source)
    target = folder / "model.keras"
    interop.convert(source, target)
    feeds = random_feeds(model, 2, seed=0)
    scale = max(float(np.max(np.abs(v))) for v in ort_run(model, feeds).values())
    report = interop.check(source, [target], batch_sizes=batches, atol=1e-5 * max(scale, 1.0), rtol=1e-4)
    assert report.passed, report.to_dict()
    return target


def _assert_imported(model: onnx.ModelProto, path: Path, x, training: bool) -> None:
    from interop_keras.loading import load_keras_model

    loaded = load_keras_model(path)  # interop's safety check, then keras.saving.load_model(safe_mode=True)
    count = int(sum(int(np.prod(w.shape)) for w in loaded.trainable_weights))
    assert count == onnx_weight_count(model)
    one_step_lowers_the_loss(loaded, x, training)


@pytest.mark.parametrize("name", _marked(ZOO_NAMES))
def test_zoo_architecture(name, tmp_path):
    model = without_final_softmax(zoo_model(name, seed=0, dynamic_batch=True))
    statistics = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    architecture = set(zoo_weight_names(name)) - statistics
    assert onnx_weight_count(model) == sum(int(np.prod(t.dims)) for t in model.graph.initializer
                                           if t.name in architecture)
    path = _convert_and_check(model, tmp_path)
    x = random_feeds(model, 2, seed=3)[model.graph.input[0].name]
    has_dropout = any(node.op_type == "Dropout" for node in model.graph.node)
    # Dropout draws new masks on every call, so those models take the step in inference mode;
    # the others in training mode (BatchNormalization on the batch's statistics).
    _assert_imported(model, path, x, training=not has_dropout)


@pytest.mark.parametrize("app", _marked(KERAS_APPS))
def test_keras_application_through_tf2onnx(app, tmp_path):
    model = keras_application_onnx(app)
    path = _convert_and_check(model, tmp_path)
    from interop_keras.loading import load_keras_model

    loaded = load_keras_model(path)
    interop_layers = {type(layer).__name__ for layer in loaded.layers if type(layer).__module__.startswith("interop_")}
    assert interop_layers <= {"ConstantOperand"}, interop_layers  # BatchNorm scales tf2onnx folded into a Mul
    assert not any(type(layer).__name__ in ("Permute", "Transpose") for layer in loaded.layers), \
        "tf2onnx's NHWC->NCHW transpose is absorbed by the layout tracking"
    x = random_feeds(model, 4, seed=3)["input:0"]
    _assert_imported(model, path, x, training=True)
