"""The reference MLP in Keras: Normalization -> Dense(64, ReLU) -> Dense(3) logits, SGD."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interop.plugin_api import EpochCallback, TrainConfig, TrainData, TrainResult
from interop_keras.loading import quiet_tensorflow


def build_model(data: TrainData, hidden: int):  # type: ignore[no-untyped-def]
    import keras

    inputs = keras.Input((2,), name="petal")
    x = keras.layers.Normalization(mean=data.mean, variance=np.square(data.std), name="normalize")(inputs)
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    return keras.Model(inputs, outputs, name="iris_mlp")


def train(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
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

    model.fit(
        data.x_train, data.y_train, batch_size=config.batch_size, epochs=config.epochs,
        shuffle=True, verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=report)],
    )
    train_acc = _accuracy(model, data.x_train, data.y_train)
    test_acc = _accuracy(model, data.x_test, data.y_test)
    model.save(str(dst))
    return TrainResult(
        framework="keras", path=str(dst), train_accuracy=train_acc, test_accuracy=test_acc,
        final_loss=history[-1]["loss"] if history else float("nan"), history=history,
    )


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    logits = np.asarray(model(x, training=False))
    return float((logits.argmax(axis=1) == y).mean())
