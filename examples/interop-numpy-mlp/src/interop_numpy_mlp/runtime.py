"""The NumPy runtime: runs a numpy-mlp model with the forward pass of :mod:`.model`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from interop.plugin_api import TensorSpec
from interop_numpy_mlp.model import load_mlp


class NumpyMLPSession:
    def __init__(self, path: Path):
        self.model = load_mlp(path)
        m = self.model
        self.engine = "numpy-mlp (NumPy)"
        self.inputs = [TensorSpec(m.input_name, "float32", (None, int(m.weights[0].shape[0])))]
        self.outputs = [TensorSpec(m.output_name, "float32", (None, int(m.weights[-1].shape[1])))]
        self.versions = {"numpy": np.__version__}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self.model.output_name: self.model.forward(np.asarray(feeds[self.model.input_name]))}


def load(path: Path) -> NumpyMLPSession:
    return NumpyMLPSession(path)
