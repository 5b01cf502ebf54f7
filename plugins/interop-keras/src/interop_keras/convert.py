"""Keras -> ONNX with tf2onnx; the batch dimension stays dynamic and I/O names are kept.

A Keras model goes through ``tf2onnx.convert.from_keras`` (which folds constants
the model captures, such as a Normalization layer's statistics); a SavedModel
directory goes through its ``serving_default`` signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop_keras.loading import load_inference_function, load_keras_model


def keras_to_onnx(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    opset = int(options.get("opset") or 17)
    if src.is_dir():
        fn = load_inference_function(src)
        model_proto, _ = tf2onnx.convert.from_function(
            fn.function, input_signature=fn.input_signature, opset=opset,
        )
    else:
        model = load_keras_model(src)
        signature = tuple(
            tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=t.name.split(":")[0])
            for t in model.inputs
        )
        model_proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(dst))
