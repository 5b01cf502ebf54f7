"""ONNX → Core ML ML Program translator built on coremltools' MIL builder.

Public entry points: :func:`convert_model` and :func:`save_mlpackage`.
"""

from interop_coreml.onnx2mil.driver import IO_NAMES_KEY, convert_model, save_mlpackage

__all__ = ["IO_NAMES_KEY", "convert_model", "save_mlpackage"]
