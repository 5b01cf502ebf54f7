"""interop's reader of a package's weight files (interpreter/blobs.py) against coremltools' own.

Each data type coremltools writes is read back by both readers from the same file and must
come out identical; crafted files (wrong version, record or data outside the file, wrong
sentinel, a type other than the one the program reads) are refused with a ValueError, and
such a package gives `interop check` a one-line error, exit 2, no traceback.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("coremltools")
onnx = pytest.importorskip("onnx")

from interop_coreml.interpreter.blobs import BlobFile  # noqa: E402

_VALUES = {
    "float": np.linspace(-3, 3, 37, dtype=np.float32),
    "fp16": np.linspace(-3, 3, 21).astype(np.float16).view(np.uint16),
    "int8": np.arange(-60, 60, 7, dtype=np.int8),
    "uint8": np.arange(0, 250, 9, dtype=np.uint8),
    "int16": np.arange(-3000, 3000, 411, dtype=np.int16),
    "uint16": np.arange(0, 60000, 4111, dtype=np.uint16),
    "int32": np.arange(-10**6, 10**6, 98765, dtype=np.int32),
    "uint32": np.arange(0, 4 * 10**9, 3 * 10**8, dtype=np.uint32),
    "uint4": np.arange(16, dtype=np.uint8),  # sub-byte: handed to coremltools' reader
    "int4": np.arange(-8, 8, dtype=np.int8),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A weight file with one blob of each type, written by coremltools, and each blob's offset."""
    from coremltools.libmilstoragepython import _BlobStorageWriter

    path = tmp_path_factory.mktemp("blobs") / "weight.bin"
    writer = _BlobStorageWriter(str(path))
    offsets = {kind: getattr(writer, f"write_{kind}_data")(values) for kind, values in _VALUES.items()}
    del writer  # the file is complete once the writer is gone
    return path, offsets


@pytest.mark.parametrize("kind", sorted(_VALUES))
def test_each_type_reads_as_coremltools_reads_it(written, kind):
    from coremltools.libmilstoragepython import _BlobStorageReader

    path, offsets = written
    theirs = getattr(_BlobStorageReader(str(path)), f"read_{kind}_data")(offsets[kind])
    ours = getattr(BlobFile(path), f"read_{kind}_data")(offsets[kind])
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    if kind in ("float", "int32", "uint16"):
        np.testing.assert_array_equal(ours, _VALUES[kind])
        assert ours.flags.writeable  # as coremltools' copies are: the loader may hand them to kernels


def _crafted(written, tmp_path, change) -> tuple[Path, int]:
    path, offsets = written
    copy = tmp_path / "weight.bin"
    shutil.copyfile(path, copy)
    data = bytearray(copy.read_bytes())
    change(data, offsets["float"])
    copy.write_bytes(bytes(data))
    return copy, offsets["float"]


# Where each field lies: the header's version at byte 4 of the file; a record's fields from its offset.
_HEADER_FIELDS = {"version": (4, "<I")}
_RECORD_FIELDS = {"sentinel": (0, "<I"), "type": (4, "<I"), "size": (8, "<Q"), "data_offset": (16, "<Q")}


def _set(field: str, value: int):
    def change(data: bytearray, record: int) -> None:
        if field in _HEADER_FIELDS:
            at, fmt = _HEADER_FIELDS[field]
        else:
            at, fmt = _RECORD_FIELDS[field]
            at += record
        struct.pack_into(fmt, data, at, value)
    return change


@pytest.mark.parametrize(("change", "message"), [
    (_set("version", 1), "version 1, not 2"),
    (_set("sentinel", 0x12345678), "invalid sentinel"),
    (_set("type", 1), "storage type 1"),  # fp16 where the program reads float32
    (_set("size", 2**40), "does not fit"),
    (_set("data_offset", 2**40), "does not fit"),
    (_set("size", 146), "does not fit"),  # not a whole number of float32 values
], ids=["version", "sentinel", "type", "size", "data-offset", "ragged"])
def test_a_crafted_record_is_refused(written, tmp_path, change, message):
    path, offset = _crafted(written, tmp_path, change)
    with pytest.raises(ValueError, match=message):
        BlobFile(path).read_float_data(offset)


@pytest.mark.parametrize("offset", [0, 32, 10**9])
def test_a_record_offset_outside_the_records_is_refused(written, offset):
    with pytest.raises(ValueError, match="outside"):
        BlobFile(written[0]).read_float_data(offset)


def test_a_truncated_weight_file_fails_check_with_one_line(tmp_path):
    """A package whose weight file lost its end: `interop check` exits 2 with one line naming the file."""
    import interop
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 32])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    source = tmp_path / "m.onnx"
    onnx.save(model, str(source))
    package = tmp_path / "m.mlpackage"
    interop.convert(source, package)
    assert interop.check(source, [package]).passed  # control: the intact package passes
    (blob,) = package.rglob("weight.bin")
    with open(blob, "r+b") as handle:
        handle.truncate(blob.stat().st_size - 1000)
    done = subprocess.run([sys.executable, "-m", "interop", "check", str(source), str(package)],
                          capture_output=True, text=True, env={**os.environ, "INTEROP_DEBUG": ""})
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "weight.bin" in errors[0] and "does not fit" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
