"""An inline ONNX model's large weights, referenced in place instead of parsed.

``onnx.load`` and onnx's checker read a model file whole and parse it: the file's bytes and the
``ModelProto`` each hold every weight (2x the weights at the peak), and the translator's pre-pass
then copies each initializer into a numpy array. A model with *external* data avoids all of this:
its weights stay in their file and the translator maps them (:mod:`~interop_coreml.onnx2mil.weights`).

:func:`stripped_model` gives an inline model the same path. It scans the file's protobuf wire format
in small reads, seeking over everything it does not need (ModelProto field 7 ``graph`` ->
GraphProto field 5 ``initializer`` -> TensorProto field 9 ``raw_data``), and returns a copy of the
model's bytes in which each large ``raw_data`` is replaced by ONNX external-data fields pointing
back into the model's own file (``data_location = EXTERNAL``; ``location`` the file's name,
``offset`` and ``length`` those of the payload), with the enclosing messages' length prefixes
re-encoded. The weights are never read here.

Only a plain initializer of the main graph is rewritten: exactly one ``raw_data`` field and no
other data, segment or external-data field, a fixed-size numeric type, a payload of exactly its
element count times the element size, and more than :data:`MIN_ELEMENTS` elements (smaller
tensors stay inline: ONNX shape inference reads their values, see ``prepass._loaded``).
``float_data``-style tensors, sparse initializers, subgraphs' initializers and anything unusual
are left as they are. A file the scanner cannot follow returns None, so the caller takes the
normal path and reports what onnx reports.
"""

from __future__ import annotations

import os
from pathlib import Path

# Tensors up to this many elements stay inline (the translator runs ONNX shape inference on them).
MIN_ELEMENTS = 1024

_CHUNK = 1 << 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
# TensorProto fields that hold values, or say where they are, besides raw_data (9).
_OTHER_DATA_FIELDS = frozenset({3, 4, 5, 6, 7, 10, 11, 13, 14})
# TensorProto.DataType -> element size, for the numeric types the weight reader maps directly
# (FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64).
_ITEM_SIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}


class _Malformed(Exception):
    """The wire format is not what a ModelProto's would be; the caller falls back to onnx."""


class _Scanner:
    """Reads varints and small fields of a file at absolute offsets, in chunks, never the whole file."""

    def __init__(self, handle, size: int):
        self.handle, self.size = handle, size
        self._start, self._buffer = 0, b""

    def _byte(self, position: int) -> int:
        if not self._start <= position < self._start + len(self._buffer):
            if position >= self.size:
                raise _Malformed("truncated")
            self.handle.seek(position)
            self._start, self._buffer = position, self.handle.read(_CHUNK)
            if not self._buffer:
                raise _Malformed("truncated")
        return self._buffer[position - self._start]

    def varint(self, position: int) -> tuple[int, int]:
        """The varint at ``position`` and the position after it."""
        value = shift = 0
        for _ in range(10):
            byte = self._byte(position)
            position += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, position
            shift += 7
        raise _Malformed("varint too long")

    def fields(self, start: int, end: int):
        """(field number, wire type, field start, value start, value end or the varint's value) of a message."""
        position = start
        while position < end:
            key, value_start = self.varint(position)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _Malformed("field 0")
            if wire == 0:
                value, value_end = self.varint(value_start)
                yield number, wire, position, value_start, value_end, value
            elif wire == 1 or wire == 5:
                value_end = value_start + (8 if wire == 1 else 4)
                yield number, wire, position, value_start, value_end, None
            elif wire == 2:
                length, payload = self.varint(value_start)
                value_end = payload + length
                yield number, wire, position, payload, value_end, None
            else:  # groups (3, 4) never occur in ONNX; 6 and 7 are invalid
                raise _Malformed(f"wire type {wire}")
            if value_end > end:
                raise _Malformed("a field runs past its message")
            position = value_end


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _external_fields(location: bytes, offset: int, length: int) -> bytes:
    entries = b"".join(
        _length_delimited(13, _length_delimited(1, key) + _length_delimited(2, value))
        for key, value in ((b"location", location), (b"offset", str(offset).encode()),
                           (b"length", str(length).encode()))
    )
    return entries + _varint(14 << 3 | 0) + _varint(_EXTERNAL)


# A message's new content: ("copy", start, end) ranges of the file and literal bytes, in order,
# and one _REFERENCED marker (no bytes) for each tensor whose raw_data is now referenced.
_Pieces = list
_REFERENCED = None


def _size(pieces: _Pieces) -> int:
    return sum(piece[2] - piece[1] if isinstance(piece, tuple) else len(piece)
               for piece in pieces if piece is not _REFERENCED)


def _tensor(scan: _Scanner, start: int, end: int, location: bytes) -> _Pieces | None:
    """The tensor's content with its raw_data referenced in the file, or None to keep it as it is."""
    dims: list[int] = []
    data_type = 0
    raw: tuple[int, int, int] | None = None  # field start, payload start, payload end
    for number, wire, field_start, value_start, value_end, value in scan.fields(start, end):
        if number == 1:
            if wire == 0:
                dims.append(value)
            elif wire == 2:  # packed
                position = value_start
                while position < value_end:
                    dim, position = scan.varint(position)
                    dims.append(dim)
            else:
                return None
        elif number == 2:
            if wire != 0:
                return None
            data_type = value
        elif number == 9:
            if wire != 2 or raw is not None:
                return None
            raw = (field_start, value_start, value_end)
        elif number in _OTHER_DATA_FIELDS:
            return None
    item = _ITEM_SIZE.get(data_type)
    if raw is None or item is None:
        return None
    count = 1
    for dim in dims:
        if dim >= 1 << 63:  # a negative int64 written as a varint
            return None
        count *= dim
    field_start, payload, payload_end = raw
    if count <= MIN_ELEMENTS or payload_end - payload != count * item:
        return None
    return [("copy", start, field_start), ("copy", payload_end, end),
            _external_fields(location, payload, payload_end - payload), _REFERENCED]


def _message(scan: _Scanner, start: int, end: int, path: tuple[int, ...], location: bytes) -> _Pieces | None:
    """The content of the message at [start, end) with the fields along ``path`` rewritten; None if unchanged.

    ``path`` is the field numbers still to descend (7 then 5 from the model): at its end the message is a tensor.
    """
    if not path:
        return _tensor(scan, start, end, location)
    pieces: _Pieces = []
    copied_from, changed = start, False
    for number, wire, field_start, value_start, value_end, _ in scan.fields(start, end):
        if number != path[0]:
            continue
        if wire != 2:
            raise _Malformed("a message field that is not length-delimited")
        inner = _message(scan, value_start, value_end, path[1:], location)
        if inner is None:
            continue
        pieces.append(("copy", copied_from, field_start))
        pieces.append(_varint(number << 3 | 2) + _varint(_size(inner)))
        pieces.extend(inner)
        copied_from, changed = value_end, True
    if not changed:
        return None
    pieces.append(("copy", copied_from, end))
    return pieces


def stripped_model(path: str | os.PathLike) -> tuple[bytes, int] | None:
    """The model's bytes with its large inline initializers referenced in the file itself, and their count.

    None when nothing is worth rewriting or the file is not a ModelProto the scanner can follow
    (the caller then loads the file the normal way). The rewritten tensors' ``location`` is the
    file's own name, resolved like any external data against the model's folder.
    """
    path = Path(path)
    try:
        location = path.name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        scan = _Scanner(handle, size)
        try:
            pieces = _message(scan, 0, size, (7, 5), location)
        except _Malformed:
            return None
        if pieces is None:
            return None
        out, referenced = bytearray(), 0
        for piece in pieces:
            if piece is _REFERENCED:
                referenced += 1
            elif isinstance(piece, tuple):
                _, first, last = piece
                handle.seek(first)
                chunk = handle.read(last - first)
                if len(chunk) != last - first:
                    return None  # the file shrank under us
                out += chunk
            else:
                out += piece
    return bytes(out), referenced
