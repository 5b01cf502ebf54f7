"""Training the reference MLP (petal length/width -> Dense(64, ReLU) -> Dense(3)) in any framework.

The core prepares the data and the split; the framework's trainer plugin builds,
trains and saves the model (with normalisation inside it) and reports per-epoch
progress through a callback.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from interop.datasets import iris_train_data
from interop.implementations import call_trainer
from interop.output_files import atomic_output, same_format_directory
from interop.plugin_api import EpochCallback, InteropError, Trainer, TrainConfig, TrainResult
from interop.registry import Registry, get_registry

#: Seeds every trainer accepts: numpy's legacy seeding (used by Keras) takes 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1


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
        from interop.builtin_plugins import trainer_hint

        known = ", ".join(sorted(registry.trainers)) or "none"
        raise InteropError(
            f"no trainer for framework {framework!r}",
            hint=trainer_hint(framework) or f"installed trainers: {known}",
        )
    config = check_config(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    output = Path(output)
    check_output_extension(output, provided.item, registry)
    data = iris_train_data()
    # A format saved as a folder (MXNet's) may replace an earlier model of that format, nothing else.
    replaceable = same_format_directory(provided.item.format, registry)
    with atomic_output(output, force=force, replaceable=replaceable) as tmp:
        result = call_trainer(provided, registry, tmp, data, config, on_epoch or _ignore)
    result.path = str(output)
    return result


def _integer(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InteropError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InteropError(f"{what} must be {bounds}, got {value}")
    return value


def check_config(*, epochs: Any, batch_size: Any, lr: Any, seed: Any) -> TrainConfig:
    """Hyper-parameters a trainer can use, or exit 2: a NaN or negative lr would save a useless model."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise InteropError(f"--lr must be a number, got {lr!r}")
    if not math.isfinite(lr) or lr <= 0:
        raise InteropError(f"--lr must be a finite number above 0, got {lr!r}", hint="the tutorial's is 0.1")
    return TrainConfig(
        epochs=_integer(epochs, "--epochs", 1),
        batch_size=_integer(batch_size, "--batch-size", 1),
        lr=float(lr),
        seed=_integer(seed, "--seed", 0, MAX_SEED),
    )


def check_output_extension(output: Path, trainer: Trainer, registry: Registry) -> None:
    """The output name must say what the trainer writes: ``-o m.onnx`` for a torch archive is exit 2."""
    provided = registry.formats.get(trainer.format)
    declared = (provided.item.extensions + provided.item.directory_suffixes) if provided else ()
    allowed = tuple(dict.fromkeys((trainer.extension, *declared)))
    if not allowed or any(output.name.lower().endswith(ext.lower()) for ext in allowed if ext):
        return
    right = output.with_name(output.name[: -len(output.suffix)] + trainer.extension if output.suffix
                             else output.name + trainer.extension)
    raise InteropError(
        f"{output}: the {trainer.framework} trainer writes a {trainer.format} model, "
        f"whose name ends with {' or '.join(allowed)}",
        hint=f"use -o {right}; `interop convert` turns it into other formats",
    )
