"""Reading the weights of a saved ML Program: the package's ``weights/*.bin`` files.

A weight file is Core ML's blob storage (version 2): a 64-byte header (blob count,
version), then for each weight a 64-byte record (sentinel ``0xDEADBEEF``, data type,
size in bytes, offset of the data) followed by its data. The program's const ops
name a file and the offset of a record.

coremltools' reader (``libmilstoragepython``) maps the whole file and keeps every page
it touched resident until the load ends, while its loader makes its own copy of each
weight: a program read back held the weights twice. :class:`BlobFile` reads each
weight's bytes straight into the array that is returned, so a loaded program holds
them once. It validates what coremltools' reader validates (version, sentinel, the
data type each const asks for, data inside the file) and refuses anything else with
a ValueError. The sub-byte types of compressed weights (int4, uint1 ... uint6) are
handed to coremltools' reader, which also unpacks them.
"""

from __future__ import annotations

import mmap
import os
import struct

import numpy as np

from ..memory import TrimEvery

_HEADER = struct.Struct("<II")  # blob count, format version (then reserved words up to 64 bytes)
_RECORD = struct.Struct("<IIQQ")  # sentinel, data type, size in bytes, data offset (then reserved words)
_RECORD_SIZE = 64
_SENTINEL = 0xDEADBEEF
_VERSION = 2
_MAP_AT_LEAST = 64 * 1024
_TRIM_EVERY = 8 * 2**20

# The reader method coremltools' loader calls -> (storage data type code, array type it returns).
# fp16 comes back as uint16, as from coremltools' reader; its loader reinterprets the bits.
_KINDS = {
    "fp16": (1, np.uint16),
    "float": (2, np.float32),
    "uint8": (3, np.uint8),
    "int8": (4, np.int8),
    "int16": (6, np.int16),
    "uint16": (7, np.uint16),
    "int32": (14, np.int32),
    "uint32": (15, np.uint32),
}
_SUB_BYTE = ("int4", "uint1", "uint2", "uint3", "uint4", "uint6")


class BlobFile:
    """One weight file, with the ``read_<kind>_data(offset)`` methods coremltools' loader calls."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._checked_header = False
        self._native = None
        # coremltools' loader copies each weight twice and frees one copy: the holes it leaves
        # between the kept arrays go back to the system as the weights are read.
        self._trim = TrimEvery(_TRIM_EVERY)

    def __getattr__(self, name: str):
        kind = name.removeprefix("read_").removesuffix("_data")
        if name.startswith("read_") and name.endswith("_data"):
            if kind in _KINDS:
                code, dtype = _KINDS[kind]
                return lambda offset: self._read(offset, code, np.dtype(dtype))
            if kind in _SUB_BYTE:
                return getattr(self._native_reader(), name)
        raise AttributeError(name)

    def _native_reader(self):
        if self._native is None:
            from coremltools.libmilstoragepython import _BlobStorageReader

            self._native = _BlobStorageReader(self.path)
        return self._native

    def _read(self, offset: int, code: int, dtype: np.dtype) -> np.ndarray:
        # O_NOFOLLOW: the file was confined to the package (package.py) and is not a link.
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            size = os.fstat(fd).st_size
            if not self._checked_header:
                if size < _RECORD_SIZE:
                    raise ValueError(f"{self._name()} is too short for a weight file ({size} bytes)")
                version = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))[1]
                if version != _VERSION:
                    raise ValueError(f"{self._name()} is weight storage version {version}, not {_VERSION}")
                self._checked_header = True
            if offset < _RECORD_SIZE or offset + _RECORD_SIZE > size:
                raise ValueError(f"weight record at offset {offset} lies outside {self._name()} ({size} bytes)")
            sentinel, stored, nbytes, start = _RECORD.unpack(os.pread(fd, _RECORD.size, offset))
            if sentinel != _SENTINEL:
                raise ValueError(f"no weight record at offset {offset} of {self._name()} (invalid sentinel)")
            if stored != code:
                raise ValueError(f"the weight at offset {offset} of {self._name()} has storage type {stored}, "
                                 f"the program reads it as {dtype.name}")
            if nbytes % dtype.itemsize or start + nbytes > size:
                raise ValueError(f"the weight at offset {offset} of {self._name()} ({nbytes} bytes at {start}) "
                                 f"does not fit the file ({size} bytes) as {dtype.name} values")
            # A large weight is read into a mapping of its own: coremltools' loader copies it into the
            # program's array, and the pages leave the process with the mapping instead of leaving a
            # hole in the heap that the allocator keeps.
            data = mmap.mmap(-1, nbytes) if nbytes >= _MAP_AT_LEAST else bytearray(nbytes)
            if nbytes and os.preadv(fd, [data], start) != nbytes:
                raise ValueError(f"the weight at offset {offset} of {self._name()} could not be read whole")
        finally:
            os.close(fd)
        self._trim.add(nbytes)
        return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)

    def _name(self) -> str:
        return os.path.basename(self.path)


class BlobFiles(dict):
    """The loader's ``filename -> reader`` table, handing out a :class:`BlobFile` for every file it asks for."""

    def __contains__(self, filename: object) -> bool:
        return True

    def __missing__(self, filename: str) -> BlobFile:
        reader = self[filename] = BlobFile(filename)
        return reader
