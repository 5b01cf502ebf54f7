"""TensorFlow/Keras as an interop runtime: run a Keras model or SavedModel on numpy feeds."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from interop.plugin_api import TensorSpec
from interop_keras.loading import load_inference_function
from interop_keras.safety import check_keras_file


class KerasSession:
    def __init__(self, path: Path):
        if not path.is_dir():
            check_keras_file(path)  # before TensorFlow is even imported: a refusal is quick
        import tensorflow as tf

        self._fn = load_inference_function(path)
        self.engine = "keras (TensorFlow CPU)"
        self.inputs = [
            TensorSpec(spec.name, spec.dtype.name if spec.dtype.name != "float" else "float32",
                       tuple(spec.shape.as_list()))
            for spec in self._fn.input_signature
        ]
        concrete = self._fn.function.get_concrete_function()
        outs = concrete.structured_outputs
        self.outputs = [
            TensorSpec(name, outs[name].dtype.name, tuple(outs[name].shape.as_list()))
            for name in self._fn.output_names
        ]
        import keras

        self.versions = {"tensorflow": tf.__version__, "keras": keras.__version__}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [np.asarray(feeds[spec.name]) for spec in self.inputs]
        result = self._fn.function(*args)
        return {name: np.asarray(result[name]) for name in self._fn.output_names}


def load(path: Path) -> KerasSession:
    return KerasSession(path)
