"""The reference MLP in PyTorch: (x - mean) / std -> Linear(64) -> ReLU -> Linear(3), SGD."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interop.plugin_api import EpochCallback, TrainConfig, TrainData, TrainResult
from interop_torch.loading import save_program


def build_model(data: TrainData, hidden: int):  # type: ignore[no-untyped-def]
    import torch

    class IrisMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(data.mean.copy()))
            self.register_buffer("std", torch.from_numpy(data.std.copy()))
            self.hidden = torch.nn.Linear(2, hidden)
            self.logits = torch.nn.Linear(hidden, 3)

        def forward(self, petal: torch.Tensor) -> torch.Tensor:
            return self.logits(torch.relu(self.hidden((petal - self.mean) / self.std)))

    return IrisMLP()


def train(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_model(data, config.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            optimizer.zero_grad()
            logits = model(x[batch])
            loss = loss_fn(logits, y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            correct += int((logits.argmax(1) == y[batch]).sum())
            seen += len(batch)
        row = {"epoch": epoch, "loss": total / seen, "accuracy": correct / seen}
        history.append(row)
        on_epoch(epoch, row["loss"], row["accuracy"])
    model.eval()
    with torch.no_grad():
        train_acc = float((model(x).argmax(1) == y).float().mean())
        test_acc = float((model(torch.from_numpy(data.x_test)).argmax(1) == torch.from_numpy(data.y_test)).float().mean())
    batch_dim = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.export.export(model, (x[:4],), dynamic_shapes={"petal": {0: batch_dim}})
    save_program(program, dst, ["petal"], ["logits"])
    return TrainResult(
        framework="torch", path=str(dst), train_accuracy=train_acc, test_accuracy=test_acc,
        final_loss=history[-1]["loss"] if history else float("nan"), history=history,
    )
