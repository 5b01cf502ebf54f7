"""Training in PyTorch: the reference MLP ((x - mean) / std -> Linear(64) -> ReLU -> Linear(3)), or an
imported ONNX design (``interop train --init``), with SGD and cross-entropy.

Batches follow ``TrainData.batch_order`` (interop's seeded order, the same the Keras trainer
follows); an imported design trains as the ``nn.Module`` of the ONNX importer (train-mode
BatchNorm and Dropout) and is saved as a ``.pt2`` program exported in eval mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from interop.plugin_api import EpochCallback, TrainConfig, TrainData, TrainResult
from interop_torch.loading import save_program


def build_model(data: TrainData, hidden: int):  # type: ignore[no-untyped-def]
    import torch

    classes = len(data.class_names)

    class IrisMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(data.mean.copy()))
            self.register_buffer("std", torch.from_numpy(data.std.copy()))
            self.hidden = torch.nn.Linear(len(data.mean), hidden)
            self.logits = torch.nn.Linear(hidden, classes)

        def forward(self, petal: torch.Tensor) -> torch.Tensor:
            return self.logits(torch.relu(self.hidden((petal - self.mean) / self.std)))

    return IrisMLP()


def _epoch_orders(data: TrainData, config: TrainConfig) -> np.ndarray:
    """interop's batch order, or (a caller that gave none) a permutation per epoch of our own."""
    if data.batch_order is not None:
        return np.asarray(data.batch_order, dtype=np.int64)
    rng = np.random.default_rng(config.seed)
    return np.stack([rng.permutation(len(data.x_train)) for _ in range(config.epochs)]).reshape(config.epochs, -1)


def _first_output(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) else value


def train(dst: Path, data: TrainData, config: TrainConfig, on_epoch: EpochCallback) -> TrainResult:
    import torch

    torch.manual_seed(config.seed)
    imported = None
    if config.init:
        from interop_torch.onnx_import import import_onnx
        from interop_torch.onnx_import.export import print_notes

        imported = import_onnx(config.init)
        print_notes(imported.notes)
        model = imported.module
    else:
        model = build_model(data, config.hidden)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    history: list[dict[str, float]] = []
    for epoch, order in enumerate(_epoch_orders(data, config), start=1):
        model.train()
        order = torch.from_numpy(order)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(x), config.batch_size):
            batch = order[start:start + config.batch_size]
            optimizer.zero_grad()
            logits = _first_output(model(x[batch]))
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
        train_acc = float((_first_output(model(x)).argmax(1) == y).float().mean())
        test_logits = _first_output(model(torch.from_numpy(data.x_test)))
        test_acc = float((test_logits.argmax(1) == torch.from_numpy(data.y_test)).float().mean())
    if imported is not None:
        _save_import(model, imported, Path(config.init), dst)
    else:
        batch_dim = torch.export.Dim("batch", min=1, max=1 << 20)
        program = torch.export.export(model, (x[:4],), dynamic_shapes={"petal": {0: batch_dim}})
        save_program(program, dst, [data.input_name], ["logits"])
    return TrainResult(
        framework="torch", path=str(dst), train_accuracy=train_acc, test_accuracy=test_acc,
        final_loss=history[-1]["loss"] if history else float("nan"), history=history,
    )


def _save_import(module: Any, imported: Any, source: Path, dst: Path) -> None:
    """The trained import as a .pt2, with the record of where its parameters came from (as onnx -> torch writes)."""
    from interop_torch.onnx_import.export import IMPORT_FILE, export_program

    program, notes = export_program(module, imported.inputs)
    record = {"source": source.name, "trained": True, "weight_count": imported.weight_count,
              "parameters": imported.parameter_sources, "notes": imported.notes + notes}
    save_program(program, dst, imported.input_names, imported.output_names,
                 extra={IMPORT_FILE: json.dumps(record, indent=1)})
