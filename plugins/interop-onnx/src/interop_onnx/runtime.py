"""ONNX Runtime as an interop runtime: load an .onnx file, run numpy feeds on the CPU."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from interop.plugin_api import ModelLoadError, TensorSpec
from interop_onnx.sniff import sniff_onnx

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def _spec(arg) -> TensorSpec:  # type: ignore[no-untyped-def]
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)


class OnnxRuntimeSession:
    """An onnxruntime.InferenceSession behind interop's Session protocol."""

    def __init__(self, path: Path):
        # The same refusals as format detection (truncated file, opset newer than onnx knows), for
        # callers that open a session without detecting the format first.
        reason = sniff_onnx(Path(path))
        if reason:
            raise ModelLoadError(f"{path}: not a valid onnx model: {reason}")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{path}: onnxruntime cannot load it: {first}") from exc
        self.engine = "onnxruntime (CPUExecutionProvider)"
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self.versions = {"onnxruntime": ort.__version__}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs]
        values = self._session.run(names, dict(feeds))
        return dict(zip(names, values))


def load(path: Path) -> OnnxRuntimeSession:
    return OnnxRuntimeSession(path)
