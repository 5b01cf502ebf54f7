"""Errors raised while translating ONNX to MIL.

The user-facing classes come from interop's plugin API so the CLI maps them to
exit codes (2 for unreadable input, 3 for unsupported content, 4 for a converter
failure). :class:`NodeNotConvertible` is internal: a converter raises it when a
node's attributes or input kinds are outside what Core ML can express, and the
driver turns every such report into one :class:`UnsupportedModelError`.
"""

from __future__ import annotations

from interop.plugin_api import ConversionError, ModelLoadError, UnsupportedModelError

__all__ = ["ConversionError", "ModelLoadError", "NeedsStaticDims", "NodeNotConvertible", "UnsupportedModelError"]


class NodeNotConvertible(Exception):
    """A registered converter cannot express this particular node in MIL."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NeedsStaticDims(NodeNotConvertible):
    """The node converts once the dims it needs are fixed (the converter's ``input_shape`` option does that)."""
