"""Training in Keras: the reference MLP (Normalization -> Dense(64, ReLU) -> Dense(3) logits), or an
imported ONNX design (``interop train --init``), with SGD and cross-entropy through ``model.fit``.

Each epoch is one ``fit`` over the training data laid out in ``TrainData.batch_order`` (interop's
seeded order, which the PyTorch trainer follows too) with ``shuffle=False``, so both frameworks
see the same batches.

Training is bit-reproducible across processes on one machine and TensorFlow build:
the same data, hyper-parameters and seed give the same weights. Seeds and op
determinism are not enough for that: TensorFlow's oneDNN kernels round
differently from its own, and whether they are used is fixed when TensorFlow is
first loaded (``TF_ENABLE_ONEDNN_OPTS``, which interop sets to 0 before importing
it). When another library loaded TensorFlow into this process first with the
other setting, the training runs in a fresh process instead, so a model trained
through the API inside a test suite equals the one ``interop train`` writes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from interop.plugin_api import EpochCallback, TrainConfig, TrainData, TrainResult
from interop_keras.loading import model_structure, quiet_tensorflow


def build_model(data: TrainData, hidden: int):  # type: ignore[no-untyped-def]
    import keras

    inputs = keras.Input((len(data.mean),), name=data.input_name)
    x = keras.layers.Normalization(mean=data.mean, variance=np.square(data.std), name="normalize")(inputs)
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(len(data.class_names), name="logits")(x)
    return keras.Model(inputs, outputs, name="iris_mlp")


def train(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    quiet_tensorflow()
    if _loaded_onednn_differs():
        return _train_in_fresh_process(dst, data, config, on_epoch)
    return _train_here(dst, data, config, on_epoch)


def _wanted_onednn() -> bool:
    """Whether a TensorFlow loaded now would use oneDNN (TensorFlow's own reading of the variable)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() in ("1", "true")


def _loaded_onednn_differs() -> bool:
    """True when TensorFlow is already loaded here with a oneDNN setting a fresh process would not have."""
    if "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TensorFlow without this probe: assume the worst, train apart
        return True
    return bool(_pywrap_util_port.IsMklEnabled()) != _wanted_onednn()


def _train_in_fresh_process(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    """Run :func:`train` in a new interpreter (this one), where TensorFlow starts with interop's settings."""
    from interop.environments import run_trainer_in
    from interop.plugin_api import Environment

    # No time limit worth the name: a long training is the user's choice, not a hung worker.
    here = Environment(name="keras-fresh-process", python=sys.executable, timeout=7 * 24 * 3600.0)
    return run_trainer_in(here, "interop_keras.train:train", dst, data, config, on_epoch)


def _train_here(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    if config.init:
        from interop_keras.onnx_import import trainable_model

        model = trainable_model(config.init)
    else:
        model = build_model(data, config.hidden)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history: list[dict[str, float]] = []

    def report(epoch: int, logs: dict) -> None:
        row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}
        history.append(row)
        on_epoch(epoch + 1, row["loss"], row["accuracy"])

    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=report)]
    if data.batch_order is None:  # a caller without interop's order: Keras shuffles
        model.fit(_feed(model, data.x_train), data.y_train, batch_size=config.batch_size, epochs=config.epochs,
                  shuffle=True, verbose=0, callbacks=callbacks)
    for epoch, order in enumerate(data.batch_order if data.batch_order is not None else []):
        model.fit(_feed(model, data.x_train[order]), data.y_train[order], batch_size=config.batch_size,
                  initial_epoch=epoch, epochs=epoch + 1, shuffle=False, verbose=0, callbacks=callbacks)
    train_acc = _accuracy(model, data.x_train, data.y_train)
    test_acc = _accuracy(model, data.x_test, data.y_test)
    model.save(str(dst))
    return TrainResult(
        framework="keras", path=str(dst), train_accuracy=train_acc, test_accuracy=test_acc,
        final_loss=history[-1]["loss"] if history else float("nan"), history=history,
    )


def _feed(model, x: np.ndarray):  # type: ignore[no-untyped-def]
    """The model's input: a plain array, or a dict keyed by the input's name for an import that takes dicts."""
    structured = model_structure(model, "input")
    return {next(iter(structured)): x} if isinstance(structured, dict) else x


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    logits = model(_feed(model, x), training=False)
    logits = np.asarray(next(iter(logits.values())) if isinstance(logits, dict) else logits)
    return float((logits.argmax(axis=1) == y).mean())
