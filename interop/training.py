"""Training the reference MLP (petal length/width -> Dense(64, ReLU) -> Dense(3)) in any framework.

The core prepares the data and the split; the framework's trainer plugin builds,
trains and saves the model (with normalisation inside it) and reports per-epoch
progress through a callback.
"""

from __future__ import annotations

from pathlib import Path

from interop.datasets import iris_train_data
from interop.implementations import call_trainer
from interop.outputs import atomic_output
from interop.plugin_api import EpochCallback, InteropError, TrainConfig, TrainResult
from interop.registry import Registry, get_registry


def _ignore(epoch: int, loss: float, accuracy: float) -> None:
    return None


def train(
    framework: str,
    output: str | Path,
    *,
    epochs: int = 10,
    batch_size: int = 10,
    lr: float = 0.1,
    seed: int = 0,
    force: bool = False,
    on_epoch: EpochCallback | None = None,
    registry: Registry | None = None,
) -> TrainResult:
    """Train the reference MLP with ``framework``'s trainer and save it at ``output``."""
    registry = registry or get_registry()
    provided = registry.trainers.get(framework)
    if provided is None:
        known = ", ".join(sorted(registry.trainers)) or "none"
        raise InteropError(
            f"no trainer for framework {framework!r}",
            hint=f"installed trainers: {known}",
        )
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise InteropError("epochs and batch size must be at least 1 and lr positive")
    output = Path(output)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    data = iris_train_data()
    with atomic_output(output, force=force) as tmp:
        result = call_trainer(provided, registry, tmp, data, config, on_epoch or _ignore)
    result.path = str(output)
    return result
