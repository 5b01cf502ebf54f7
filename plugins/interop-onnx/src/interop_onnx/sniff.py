"""Cheap recognition of ONNX files, and the opsets they declare.

A protobuf ModelProto starts with a small set of field tags. The sniff then walks
the model's top-level fields (skipping the graph by its length, so a big model
costs a few reads) to find the ``opset_import`` entries, and refuses a model
declaring an opset newer than the installed onnx package knows: nothing here can
know what its operators mean, so converting or running it would be a guess.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

# Wire-format tags of ModelProto's fields: ir_version (1, varint), opset_import (8),
# producer_name (2), producer_version (3), domain (4), model_version (5),
# doc_string (6), graph (7), metadata_props (14), training_info (20), functions (25).
_FIRST_BYTES = {0x08, 0x42, 0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x72, 0xA2, 0xCA}
_OPSET_IMPORT = 8
_DEFAULT_DOMAINS = ("", "ai.onnx")


class _Malformed(Exception):
    """The bytes do not parse as a protobuf message (the text says where)."""


def sniff_onnx(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "the file is empty"
    if head[0] not in _FIRST_BYTES:
        return "it does not start like an ONNX protobuf (wrong first byte)"
    try:
        opsets = declared_opsets(path)
    except _Malformed as exc:
        return str(exc)
    return opset_problem(opsets)


def declared_opsets(path: Path) -> dict[str, int]:
    """``{domain: version}`` from the model's ``opset_import`` ("" is the default domain).

    Raises :class:`_Malformed` when the top level of the file is not a protobuf
    message (a truncated file, for instance).
    """
    size = Path(path).stat().st_size
    opsets: dict[str, int] = {}
    with open(path, "rb") as handle:
        while handle.tell() < size:
            field, wire = divmod(_varint(handle), 8)
            if wire == 0:
                _varint(handle)
            elif wire == 1:
                _skip(handle, 8, size)
            elif wire == 5:
                _skip(handle, 4, size)
            elif wire == 2:
                length = _varint(handle)
                if handle.tell() + length > size:
                    raise _Malformed("the file is truncated (a field runs past its end)")
                if field == _OPSET_IMPORT:
                    domain, version = _opset_id(handle.read(length))
                    key = "" if domain in _DEFAULT_DOMAINS else domain
                    opsets[key] = max(opsets.get(key, 0), version)
                else:
                    handle.seek(length, 1)
            else:
                raise _Malformed(f"it is not an ONNX protobuf (field {field} has wire type {wire})")
    return opsets


def opset_problem(opsets: dict[str, int]) -> str | None:
    """Why these opsets cannot be handled here, or None. Unknown (custom) domains are left to runtimes."""
    known = known_opsets()
    too_new = [
        (domain, version, known[domain]) for domain, version in sorted(opsets.items())
        if domain in known and version > known[domain]
    ]
    if not too_new:
        return None
    import onnx

    parts = ", ".join(
        f"{domain or 'ai.onnx'} opset {version} (newest known: {newest})" for domain, version, newest in too_new
    )
    return (
        f"it declares {parts}, newer than the installed onnx {onnx.__version__} knows; "
        "upgrade onnx (and the runtimes) or export the model with an older opset"
    )


@lru_cache(maxsize=1)
def known_opsets() -> dict[str, int]:
    """The newest opset version of every domain the installed onnx has operator schemas for."""
    import onnx.defs

    newest: dict[str, int] = {}
    try:
        # onnx's registry of domain version ranges: instant, where walking every schema takes ~0.1 s,
        # paid by every command that opens an ONNX file.
        from onnx.onnx_cpp2py_export.defs import schema_version_map

        newest = {domain: int(high) for domain, (_, high) in schema_version_map().items()}
    except (ImportError, AttributeError, TypeError, ValueError):
        for schema in onnx.defs.get_all_schemas_with_history():
            newest[schema.domain] = max(newest.get(schema.domain, 0), schema.since_version)
    # An opset may change no operator of the default domain; onnx states its newest one directly.
    newest[""] = max(newest.get("", 0), onnx.defs.onnx_opset_version())
    return newest


def _varint(handle: BinaryIO) -> int:
    result = shift = 0
    while True:
        byte = handle.read(1)
        if not byte:
            raise _Malformed("the file is truncated (it ends inside a field)")
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _Malformed("it is not an ONNX protobuf (a varint is too long)")


def _skip(handle: BinaryIO, count: int, size: int) -> None:
    if handle.tell() + count > size:
        raise _Malformed("the file is truncated (a field runs past its end)")
    handle.seek(count, 1)


def _opset_id(data: bytes) -> tuple[str, int]:
    """(domain, version) of an OperatorSetIdProto: domain is field 1 (string), version field 2 (int64)."""
    import io

    size = len(data)
    handle = io.BytesIO(data)
    domain, version = "", 0
    while handle.tell() < size:
        field, wire = divmod(_varint(handle), 8)
        if wire == 0:
            value = _varint(handle)
            if field == 2:
                version = value - (1 << 64) if value >= 1 << 63 else value
        elif wire == 2:
            length = _varint(handle)
            if handle.tell() + length > size:
                raise _Malformed("it is not an ONNX protobuf (an opset entry is cut short)")
            raw = handle.read(length)
            if field == 1:
                try:
                    domain = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Malformed("it is not an ONNX protobuf (an opset domain is not text)") from None
        elif wire == 1:
            _skip(handle, 8, size)
        elif wire == 5:
            _skip(handle, 4, size)
        else:
            raise _Malformed("it is not an ONNX protobuf (a malformed opset entry)")
    return domain, version
