"""Training in any framework: the reference MLP, or a design brought in from any format (``--init``).

The core prepares the data and the split (Iris, or a labelled CSV), the order in which
every epoch visits it (:mod:`interop.batch_order`, the same for every framework), and,
with ``init``, the model to start from: converted through the route planner into a
format the trainer starts from (its ``init_formats``: ONNX for trainers that import it with
their plugin's ONNX importer), its weights re-drawn for ``reinit``. The framework's trainer plugin
builds or imports, trains and saves the model and reports per-epoch progress through a
callback.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interop.batch_order import batch_order
from interop.datasets import csv_train_data, iris_train_data
from interop.errors import folder_removed_at_sudden_exit
from interop.implementations import call_trainer
from interop.output_files import atomic_output, same_format_directory
from interop.plugin_api import EpochCallback, InteropError, Trainer, TrainConfig, TrainData, TrainResult
from interop.plugin_registry import Provided, Registry, get_registry

#: Seeds every trainer accepts: numpy's legacy seeding (which trainers may use) takes 0 <= seed < 2**32.
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
    init: str | Path | None = None,
    init_format: str | None = None,
    reinit: bool = False,
    data: str | Path = "iris",
    features: Sequence[str] | None = None,
    label: str | None = None,
) -> TrainResult:
    """Train with ``framework``'s trainer and save the model at ``output``.

    Without ``init`` the trainer builds the reference MLP; with it, training starts from
    that model (any format with a route to one of the trainer's ``init_formats``), with
    fresh seeded weights if ``reinit``. ``data`` is ``"iris"`` or a CSV file with the
    named ``features`` columns and a ``label`` column. Epochs visit the training data in
    interop's seeded order (:func:`interop.batch_order.batch_order`).
    """
    registry = registry or get_registry()
    provided = find_trainer(framework, registry)
    config = check_config(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    output = Path(output)
    check_output_extension(output, provided.item, registry)
    if reinit and init is None:
        raise InteropError("--reinit needs --init MODEL: it keeps that model's architecture and draws new weights")
    train_data = load_train_data(data, features, label)
    train_data = dataclasses.replace(
        train_data, batch_order=batch_order(len(train_data.x_train), config.epochs, config.seed))
    # A format saved as a folder may replace an earlier model of that format, nothing else.
    replaceable = same_format_directory(provided.item.format, registry)
    with (tempfile.TemporaryDirectory(prefix="interop-train-init-") as work,
          folder_removed_at_sudden_exit(work),
          atomic_output(output, force=force, replaceable=replaceable) as tmp):
        if init is not None:
            start = prepare_init(Path(init), init_format, provided.item, registry, Path(work), seed=seed,
                                 reinit=reinit)
            check_design_fits(start, train_data)
            config = dataclasses.replace(config, init=str(start))
        result = call_trainer(provided, registry, tmp, train_data, config, on_epoch or _ignore)
    result.path = str(output)
    return result


def find_trainer(framework: str, registry: Registry) -> Provided[Trainer]:
    provided = registry.trainers.get(framework)
    if provided is None:
        from interop.builtin_plugins import trainer_hint

        known = ", ".join(sorted(registry.trainers)) or "none"
        raise InteropError(
            f"no trainer for framework {framework!r}",
            hint=trainer_hint(framework) or f"installed trainers: {known}",
        )
    return provided


def load_train_data(data: str | Path, features: Sequence[str] | None, label: str | None) -> TrainData:
    """The Iris split (``data="iris"``), or a CSV's, which needs ``features`` and ``label``."""
    if str(data) == "iris":
        if features or label:
            raise InteropError("--features and --label name the columns of a CSV file given with --data",
                               hint="the Iris data has its own (petal length and width, species)")
        return iris_train_data()
    path = Path(data)
    if path.suffix.lower() != ".csv" or not path.is_file():
        what = "no such file" if not path.exists() else "not a .csv file"
        raise InteropError(f"--data {data}: {what}", hint="give `iris` or a CSV file with a header row")
    if not features or not label:
        raise InteropError(f"--data {data}: name the columns to use with --features a,b,... and --label y")
    return csv_train_data(path, list(features), label)


def prepare_init(src: Path, src_format: str | None, trainer: Trainer, registry: Registry, work: Path, *,
                 seed: int, reinit: bool) -> Path:
    """The model the trainer starts from: ``src`` itself, or its conversion into an ``init_formats`` format."""
    from interop.conversion import convert
    from interop.formats import check_content, detect_format

    if not trainer.init_formats:
        raise InteropError(f"the {trainer.framework} trainer cannot start from a model (--init): "
                           "it trains only the reference MLP")
    fmt = src_format or detect_format(src, registry, format_flag="--init-format")
    check_content(src, fmt, registry)
    if reinit and "onnx" not in trainer.init_formats:
        raise InteropError(f"--reinit: the {trainer.framework} trainer does not start from ONNX, "
                           "where interop draws the new weights")
    target = "onnx" if (reinit or fmt not in trainer.init_formats) and "onnx" in trainer.init_formats \
        else (fmt if fmt in trainer.init_formats else trainer.init_formats[0])
    if fmt == target:
        start = src
    else:
        provided = registry.formats.get(target)
        suffix = (provided.item.extensions or (".onnx",))[0] if provided else ".onnx"
        start = work / f"init{suffix}"
        convert(src, start, to=target, from_format=fmt, registry=registry)
    if reinit:
        import onnx

        from interop.onnx_weights import reinitialized

        fresh, _ = reinitialized(onnx.load(str(start)), seed)
        start = work / "init-reinit.onnx"
        onnx.save(fresh, str(start))
    return start


def check_design_fits(model: Path, data: TrainData) -> None:
    """An ONNX design must take the data's features and give one logit per class (exit 2 otherwise)."""
    if model.suffix.lower() != ".onnx":
        return  # other formats are the trainer's to check
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    n_features, n_classes = len(data.feature_names), len(data.class_names)
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InteropError(f"{model.name}: the design has {len(inputs)} input(s) and {len(graph.output)} "
                           "output(s); training needs one of each (features in, logits out)")

    def last_dim(value: Any) -> int | None:
        dims = value.type.tensor_type.shape.dim
        return int(dims[-1].dim_value) if dims and dims[-1].HasField("dim_value") else None

    dims = inputs[0].type.tensor_type.shape.dim
    if inputs[0].type.tensor_type.HasField("shape") and len(dims) != 2:
        shape = ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)
        raise InteropError(f"{model.name}: the design's input {inputs[0].name!r} has shape ({shape}), not "
                           "(samples, features): interop train trains on tabular data, one feature vector "
                           "per sample", hint="train this design in its own framework; interop convert "
                           "brings it there")
    takes, gives = last_dim(inputs[0]), last_dim(graph.output[0])
    if takes is not None and takes != n_features:
        raise InteropError(f"the design takes {takes} feature(s) per sample, the data has {n_features} "
                           f"({', '.join(data.feature_names)})",
                           hint="choose the data's columns with --features a,b,...")
    if gives is not None and gives != n_classes:
        raise InteropError(f"the design has {gives} output(s), the data has {n_classes} label(s) "
                           f"({', '.join(data.class_names)})",
                           hint="the label column must hold one class per output of the model")


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
        epochs=_integer(epochs, "--epochs", 0),
        batch_size=_integer(batch_size, "--batch-size", 1),
        lr=float(lr),
        seed=_integer(seed, "--seed", 0, MAX_SEED),
    )


def check_output_extension(output: Path, trainer: Trainer, registry: Registry) -> None:
    """The output name must say what the trainer writes: ``-o m.onnx`` for a trainer of another format is exit 2."""
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
