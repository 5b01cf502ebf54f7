"""The Iris data set shipped with interop, and the stratified split the reference MLP uses.

Pure numpy: the core needs no framework to prepare training data or check inputs.
"""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

from interop.plugin_api import TrainData

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
