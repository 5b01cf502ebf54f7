"""TensorFlow/Keras as an interop runtime: run a Keras model or SavedModel on numpy feeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from interop.plugin_api import IntermediateSpec, TensorSpec
from interop_keras.loading import load_inference_function, model_structure
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
        self._warm_up()

    def _warm_up(self) -> None:
        """Run one zero sample, so TensorFlow's first-call graph optimisation is part of loading.

        (TensorFlow optimises a function's graph when it first runs, tens of milliseconds;
        a model that cannot take a zero sample is simply not warmed up.)
        """
        try:
            feeds = {spec.name: np.zeros(tuple(d if isinstance(d, int) else 1 for d in spec.shape),
                                         dtype=np.dtype(spec.dtype)) for spec in self.inputs}
            self.run(feeds)
        except Exception:  # noqa: BLE001 - warming up is an optimisation; a real run reports real errors
            pass

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [np.asarray(feeds[spec.name]) for spec in self.inputs]
        result = self._fn.function(*args)
        return {name: np.asarray(result[name]) for name in self._fn.output_names}

    def input_index_ranges(self) -> dict[str, tuple[int, int]]:
        """Integer inputs an ``Embedding`` layer reads directly: its valid rows ``0..input_dim-1``.

        (A SavedModel has no layers to inspect: ``{}``, and the check says a range is needed.)
        """
        model = getattr(self._fn.function, "_interop_keep", None)
        if model is None or not hasattr(model, "layers"):
            return {}
        structured = model_structure(model, "input")
        tensors = list(structured.values()) if isinstance(structured, dict) else list(model.inputs)
        # The session's inputs follow the model's input tensors in order (loading.py).
        by_input_layer = {getattr(t, "_keras_history", [None])[0]: s.name for t, s in zip(tensors, self.inputs)}
        ranges: dict[str, tuple[int, int]] = {}
        for layer in model.layers:
            rows = getattr(layer, "input_dim", None)
            if type(layer).__name__ != "Embedding" or not isinstance(rows, int) or rows < 1:
                continue
            for node in getattr(layer, "_inbound_nodes", []) or []:
                for tensor in getattr(node, "input_tensors", []) or []:
                    name = by_input_layer.get(getattr(tensor, "_keras_history", [None])[0])
                    if name is not None:
                        ranges[name] = (0, rows - 1)
        return ranges

    # ------------------------------------------------ plugin API 1.1: intermediate values

    def _keras_model(self):  # type: ignore[no-untyped-def]
        """The Keras model behind the session (a .keras/.h5 file); SavedModels have no layers to show."""
        from interop.plugin_api import UnsupportedModelError

        model = getattr(self._fn.function, "_interop_keep", None)
        if model is None or not hasattr(model, "layers"):
            raise UnsupportedModelError("a SavedModel exposes no layer outputs; locate with its .keras file")
        return model

    def intermediates(self) -> list[IntermediateSpec]:
        """Every layer's output (functional and Sequential models), named and scoped by the layer's name.

        tf2onnx names the ONNX values of a layer ``model/layer_1/...``; the checker pairs the
        last of them with the layer's output.
        """
        model = self._keras_model()
        specs = []
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            inbound = []
            for node in getattr(layer, "_inbound_nodes", []) or []:
                for tensor in getattr(node, "input_tensors", []) or []:
                    history = getattr(tensor, "_keras_history", None)
                    if history is not None:
                        inbound.append(history[0].name)
            specs.append(IntermediateSpec(name=layer.name, op_type=type(layer).__name__, op_name=layer.name,
                                          inputs=tuple(inbound), scope=layer.name))
        return specs

    def run_intermediates(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named layers' outputs for ``feeds``, from a model exposing them as outputs."""
        import keras

        from interop.plugin_api import UnsupportedModelError

        model = self._keras_model()
        try:
            outputs = [model.get_layer(name).output for name in names]
        except (AttributeError, ValueError) as exc:
            raise UnsupportedModelError(f"this Keras model does not expose its layers' outputs ({exc}); "
                                        "only functional and Sequential models do") from None
        probe = keras.Model(inputs=model.inputs, outputs=outputs)
        args = [np.asarray(feeds[spec.name]) for spec in self.inputs]
        values = probe(args, training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        return {name: np.asarray(value) for name, value in zip(names, values)}


def load(path: Path) -> KerasSession:
    return KerasSession(path)
