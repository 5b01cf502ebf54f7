"""The reference MLP in MXNet Gluon: Dense(64, ReLU) -> Dense(3), SGD. Runs in .venv-mxnet.

Training sees normalised inputs; at export the normalisation is folded into the
first layer (``W' = W / std``, ``b' = b - W' @ mean``), which is the same function
on raw centimetres and keeps the exported graph to FullyConnected and ReLU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interop.plugin_api import EpochCallback, TrainConfig, TrainData, TrainResult
from interop_mxnet.layout import PARAMS_FILE, SYMBOL_FILE, write_io

INPUT_NAME = "petal"
OUTPUT_NAME = "logits"


def _build(hidden: int, n_in: int, n_out: int):  # type: ignore[no-untyped-def]
    from mxnet import gluon

    net = gluon.nn.HybridSequential(prefix="mlp_")
    with net.name_scope():
        net.add(gluon.nn.Dense(hidden, activation="relu", in_units=n_in))
        net.add(gluon.nn.Dense(n_out, in_units=hidden))
    return net


def _export(net, data: TrainData, dst: Path) -> None:  # type: ignore[no-untyped-def]
    import mxnet as mx

    params = {name: p.data().asnumpy() for name, p in net.collect_params().items()}
    first_w, first_b = net[0].weight.name, net[0].bias.name
    weight = params[first_w] / data.std[None, :]
    params[first_w] = weight.astype(np.float32)
    params[first_b] = (params[first_b] - weight @ data.mean).astype(np.float32)
    symbol = mx.sym.identity(net(mx.sym.var(INPUT_NAME)), name=OUTPUT_NAME)
    dst.mkdir(parents=True, exist_ok=True)
    symbol.save(str(dst / SYMBOL_FILE))
    mx.nd.save(str(dst / PARAMS_FILE), {f"arg:{k}": mx.nd.array(v) for k, v in params.items()})
    n_classes = len(data.class_names)
    write_io(
        dst,
        [{"name": INPUT_NAME, "dtype": "float32", "shape": [None, data.x_train.shape[1]]}],
        [{"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, n_classes]}],
    )


def train(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    import mxnet as mx
    from mxnet import autograd, gluon

    mx.random.seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = _build(config.hidden, data.x_train.shape[1], len(data.class_names))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": config.lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x = (data.x_train - data.mean) / data.std
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(x))
        total, correct = 0.0, 0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            xb, yb = mx.nd.array(x[batch]), mx.nd.array(data.y_train[batch])
            with autograd.record():
                logits = net(xb)
                loss = loss_fn(logits, yb)
            loss.backward()
            trainer.step(len(batch))  # gradients are summed over the batch; step divides
            total += float(loss.sum().asscalar())
            correct += int((logits.argmax(axis=1).asnumpy().astype(np.int64) == data.y_train[batch]).sum())
        row = {"epoch": epoch, "loss": total / len(x), "accuracy": correct / len(x)}
        history.append(row)
        on_epoch(epoch, row["loss"], row["accuracy"])

    def accuracy(features: np.ndarray, labels: np.ndarray) -> float:
        logits = net(mx.nd.array((features - data.mean) / data.std)).asnumpy()
        return float((logits.argmax(axis=1) == labels).mean())

    _export(net, data, Path(dst))
    return TrainResult(
        framework="mxnet", path=str(dst), train_accuracy=accuracy(data.x_train, data.y_train),
        test_accuracy=accuracy(data.x_test, data.y_test),
        final_loss=history[-1]["loss"] if history else float("nan"), history=history,
    )
