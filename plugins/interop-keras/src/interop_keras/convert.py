"""Keras -> ONNX with tf2onnx, from the model's named inference function (dynamic batch)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop_keras.loading import load_inference_function


def keras_to_onnx(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    import onnx
    import tf2onnx

    fn = load_inference_function(src)
    opset = int(options.get("opset") or 17)
    model_proto, _ = tf2onnx.convert.from_function(
        fn.function, input_signature=fn.input_signature, opset=opset,
    )
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(dst))
