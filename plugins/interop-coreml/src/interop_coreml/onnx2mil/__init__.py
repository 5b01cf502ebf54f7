"""ONNX → Core ML ML Program translator built on coremltools' MIL builder.

Public entry points: :func:`convert_model` and :func:`save_mlpackage`.
"""

from interop_coreml.onnx2mil.driver import convert_model, save_mlpackage

__all__ = ["convert_model", "save_mlpackage"]
