"""The Iris data set shipped with interop, labelled CSV files, and the stratified split training uses.

Pure numpy: the core needs no framework to prepare training data or check inputs.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import numpy as np

from interop.plugin_api import InteropError, TrainData

CLASS_NAMES = ("setosa", "versicolor", "virginica")
FEATURES = ("petal_length_cm", "petal_width_cm")
INPUT_NAME = "petal"
OUTPUT_NAME = "logits"


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """All 150 samples: (x float32 [150, 2] petal length/width in cm, y int64 [150])."""
    text = resources.files("interop").joinpath("data/iris.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    x = np.array([[float(r[f]) for f in FEATURES] for r in rows], dtype=np.float32)
    y = np.array([CLASS_NAMES.index(r["species"]) for r in rows], dtype=np.int64)
    return x, y


def stratified_split(y: np.ndarray, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): every k-th sample of each class is held out.

    The split is deterministic and independent of the training seed, so changing
    ``--seed`` changes the model, never the yardstick it is measured with.
    """
    step = max(2, int(round(1 / test_fraction)))
    train, test = [], []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        held = members[step - 1 :: step]
        test.extend(held)
        train.extend(np.setdiff1d(members, held))
    return np.sort(np.array(train)), np.sort(np.array(test))


def iris_train_data(test_fraction: float = 0.2) -> TrainData:
    """The split a trainer receives; normalisation stats come from the training part."""
    x, y = load_iris()
    train, test = stratified_split(y, test_fraction)
    mean = x[train].mean(axis=0).astype(np.float32)
    std = x[train].std(axis=0).astype(np.float32)
    return TrainData(
        x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test],
        mean=mean, std=std, class_names=CLASS_NAMES, feature_names=FEATURES,
    )


def iris_grid(steps: int = 200, margin: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A dense grid over the petal plane: (xx, yy, points [steps*steps, 2] float32)."""
    x, _ = load_iris()
    lo, hi = x.min(axis=0) - margin, x.max(axis=0) + margin
    xs = np.linspace(lo[0], hi[0], steps, dtype=np.float32)
    ys = np.linspace(lo[1], hi[1], steps, dtype=np.float32)
    xx, yy = np.meshgrid(xs, ys)
    return xx, yy, np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def _label_classes(values: list[str]) -> tuple[tuple[str, ...], list[int]]:
    """Class names and indices: integer labels keep their order (0, 1, 2 ...), others sort by name."""
    distinct = sorted(set(values))
    try:
        numbers = {v: int(v) for v in distinct}
    except ValueError:
        numbers = {}
    if numbers:
        distinct.sort(key=numbers.__getitem__)
        distinct = [str(numbers[v]) for v in distinct]
        values = [str(numbers[v]) for v in values]
    index = {name: i for i, name in enumerate(distinct)}
    return tuple(distinct), [index[v] for v in values]


def csv_train_data(path: str | Path, features: list[str], label: str, test_fraction: float = 0.2) -> TrainData:
    """A labelled CSV (a header row, named feature columns, one label column) split as Iris is.

    Raises InteropError (exit 2) naming the file, row and column of the first problem.
    """
    path = Path(path)
    if not features:
        raise InteropError(f"{path}: no feature columns given", hint="name them with --features a,b,...")
    if label in features:
        raise InteropError(f"{path}: column {label!r} is both a feature and the label")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in (*features, label) if c not in columns]
            if missing:
                raise InteropError(
                    f"{path}: no column {', '.join(repr(c) for c in missing)} in the header",
                    hint=f"the columns are: {', '.join(columns) or 'none (empty file)'}",
                )
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InteropError(f"{path}: cannot read the CSV file ({exc})") from None
    if not rows:
        raise InteropError(f"{path}: the CSV file has a header but no rows")
    x = np.empty((len(rows), len(features)), dtype=np.float32)
    labels = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        for column, name in enumerate(features):
            text = (row.get(name) or "").strip()
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                raise InteropError(f"{path}: row {number}, column {name!r}: {text!r} is not a finite number")
            x[number - 2, column] = value
        text = (row.get(label) or "").strip()
        if not text:
            raise InteropError(f"{path}: row {number}, column {label!r}: the label is empty")
        labels.append(text)
    class_names, indices = _label_classes(labels)
    if len(class_names) < 2:
        raise InteropError(f"{path}: column {label!r} holds a single class ({class_names[0]!r}); "
                           "a classifier needs at least two")
    y = np.array(indices, dtype=np.int64)
    train, test = stratified_split(y, test_fraction)
    mean = x[train].mean(axis=0).astype(np.float32)
    std = x[train].std(axis=0).astype(np.float32)
    std[std == 0] = 1.0  # a constant feature: leave it unscaled rather than divide by zero
    return TrainData(
        x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test], mean=mean, std=std,
        class_names=class_names, feature_names=tuple(features), input_name="features",
    )
