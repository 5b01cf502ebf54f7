"""Training the reference MLP in plain NumPy: softmax cross-entropy, minibatch SGD, He init."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interop.plugin_api import EpochCallback, TrainConfig, TrainData, TrainResult
from interop_numpy_mlp.model import MLP


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def train(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    rng = np.random.default_rng(config.seed)
    n_in, n_out = data.x_train.shape[1], len(data.class_names)
    w1 = (rng.standard_normal((n_in, config.hidden)) * np.sqrt(2.0 / n_in)).astype(np.float32)
    b1 = np.zeros(config.hidden, np.float32)
    w2 = (rng.standard_normal((config.hidden, n_out)) * np.sqrt(1.0 / config.hidden)).astype(np.float32)
    b2 = np.zeros(n_out, np.float32)
    x = (data.x_train - data.mean) / data.std
    y = data.y_train
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(x))
        total, correct = 0.0, 0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            xb, yb = x[batch], y[batch]
            pre = xb @ w1 + b1
            hidden = np.maximum(pre, 0)
            probs = _softmax(hidden @ w2 + b2)
            total += float(-np.log(probs[np.arange(len(yb)), yb] + 1e-12).sum())
            correct += int((probs.argmax(axis=1) == yb).sum())
            grad = probs.copy()
            grad[np.arange(len(yb)), yb] -= 1
            grad /= len(yb)  # mean loss over the batch, as the other trainers use
            grad_hidden = (grad @ w2.T) * (pre > 0)
            w2 -= config.lr * (hidden.T @ grad)
            b2 -= config.lr * grad.sum(axis=0)
            w1 -= config.lr * (xb.T @ grad_hidden)
            b1 -= config.lr * grad_hidden.sum(axis=0)
        row = {"epoch": epoch, "loss": total / len(x), "accuracy": correct / len(x)}
        history.append(row)
        on_epoch(epoch, row["loss"], row["accuracy"])
    model = MLP("petal", "logits", data.mean.astype(np.float32), data.std.astype(np.float32),
                [w1, w2], [b1, b2], ["relu", None])
    model.save(Path(dst))

    def accuracy(features: np.ndarray, labels: np.ndarray) -> float:
        return float((model.forward(features).argmax(axis=1) == labels).mean())

    return TrainResult(
        framework="numpy-mlp", path=str(dst),
        train_accuracy=accuracy(data.x_train, data.y_train),
        test_accuracy=accuracy(data.x_test, data.y_test),
        final_loss=history[-1]["loss"] if history else float("nan"), history=history,
    )
