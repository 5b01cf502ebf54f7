"""Loading Keras models safely, and describing their inference function for tf2onnx and checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError
from interop_keras.safety import check_keras_file, check_saved_model


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter; must run before tensorflow is imported."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


quiet_tensorflow()


@dataclass
class InferenceFunction:
    """A tf.function taking named inputs, returning a dict of named outputs."""

    function: Any
    input_signature: tuple[Any, ...]
    output_names: list[str]


def load_inference_function(path: Path) -> InferenceFunction:
    """Load a .keras/.h5 (safe mode) or a SavedModel directory as a named tf.function, once checked."""
    quiet_tensorflow()
    import tensorflow as tf

    if path.is_dir():
        check_saved_model(path)
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelLoadError(f"{path}: TensorFlow cannot load this SavedModel: {_first(exc)}") from exc
        if "serving_default" not in loaded.signatures:
            raise ModelLoadError(f"{path}: the SavedModel has no 'serving_default' signature")
        signature = loaded.signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        names = sorted(specs)
        input_signature = tuple(
            tf.TensorSpec([None, *spec.shape[1:]] if spec.shape.rank else spec.shape, spec.dtype, name=name)
            for name, spec in ((n, specs[n]) for n in names)
        )
        output_names = list(signature.structured_outputs)

        @tf.function(input_signature=input_signature)
        def saved_fn(*args: Any) -> dict[str, Any]:
            return signature(**dict(zip(names, args)))

        saved_fn._interop_keep = loaded  # keep the trackable object alive
        return InferenceFunction(saved_fn, input_signature, output_names)

    model = load_keras_model(path)
    # A model built with dict inputs/outputs (the ONNX importer does so when an ONNX name is
    # not a valid Keras layer name) is fed and read by those keys.
    structured_input = model_structure(model, "input")
    input_keys = list(structured_input) if isinstance(structured_input, dict) else None
    input_tensors = [structured_input[k] for k in input_keys] if input_keys else list(model.inputs)
    input_signature = tuple(
        tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=key if input_keys else _clean(t.name))
        for key, t in zip(input_keys or [None] * len(input_tensors), input_tensors)
    )
    if isinstance(model_structure(model, "output"), dict):
        output_names = list(model_structure(model, "output"))
    else:
        output_names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])

    @tf.function(input_signature=input_signature)
    def keras_fn(*args: Any) -> dict[str, Any]:
        if input_keys:
            result = model(dict(zip(input_keys, args)), training=False)
        else:
            result = model(list(args) if len(args) > 1 else args[0], training=False)
        if isinstance(result, dict):
            return {name: result[name] for name in output_names}
        if not isinstance(result, (list, tuple)):
            result = [result]
        return dict(zip(output_names, result))

    keras_fn._interop_keep = model
    return InferenceFunction(keras_fn, input_signature, output_names)


def load_keras_model(path: Path) -> Any:
    """keras.saving.load_model in safe mode, after interop's own checks of the file (safety.py)."""
    quiet_tensorflow()
    check_keras_file(path)
    import warnings

    import keras

    from interop_keras import layers  # noqa: F401 - registers interop's layers, which safety.py allows

    try:
        with warnings.catch_warnings():
            # A model whose inputs are a dict keyed by ONNX names that Keras cannot use as
            # layer names ('/') loads and runs correctly; Keras still warns about the keys.
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
            return keras.saving.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:
        raise ModelLoadError(f"{path}: Keras cannot load this model: {_first(exc)}") from exc


def model_structure(model: Any, which: str) -> Any:
    """``model.input`` or ``model.output`` (``which``): a tensor, a list, or a dict for a model fed by keys.

    Keras 3 defines these from the model's first call, and a Sequential loaded from a file was never
    called: it raises there while ``.inputs``/``.outputs`` are set. A Sequential has one input and one output.
    """
    try:
        return getattr(model, which)
    except (AttributeError, ValueError):
        tensors = list(getattr(model, which + "s"))
        return tensors[0] if len(tensors) == 1 else tensors


def _clean(name: str) -> str:
    return name.split(":")[0]


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
