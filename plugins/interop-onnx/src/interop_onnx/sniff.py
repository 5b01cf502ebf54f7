"""Cheap recognition of ONNX files: a protobuf ModelProto starts with a small set of field tags."""

from __future__ import annotations

from pathlib import Path

# Wire-format tags of ModelProto's fields: ir_version (1, varint), opset_import (8),
# producer_name (2), producer_version (3), domain (4), model_version (5),
# doc_string (6), graph (7), metadata_props (14), training_info (20), functions (25).
_FIRST_BYTES = {0x08, 0x42, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x72, 0xA2, 0xCA}


def sniff_onnx(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "the file is empty"
    if head[0] not in _FIRST_BYTES:
        return "it does not start like an ONNX protobuf (wrong first byte)"
    return None
