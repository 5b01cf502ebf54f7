"""Initializer values, with external data mapped from disk instead of read into memory.

A model past protobuf's 2 GB limit keeps its weights in files beside it
(``data_location=EXTERNAL``). ``onnx.load`` would read every byte into the proto,
``numpy_helper.to_array`` would copy them again, and the translator would hold
both while coremltools writes its own. Here the proto is loaded without its
external data (``load_external_data=False``) and each external initializer becomes
a numpy array over a copy-on-write memory map of its bytes in that file: nothing is
read until coremltools streams the weight into the package's blob, and the pages are
the kernel's page cache, dropped again under memory pressure.

Each large initializer gets a mapping of its own. One mapping of the whole file stays
mapped, and every page touched stays resident, for as long as any array views it: a
small shape constant the program keeps would hold all the weights that coremltools'
fusions (conv + batch norm, ...) have already replaced with new arrays. With one mapping
per weight, a replaced weight's pages leave the process with its array. Small
initializers (below :data:`MAP_AT_LEAST` bytes) are read into memory instead: a mapping
costs a page at least and a kernel object each.

The file is opened through onnx's own external-data resolution
(``onnx.external_data_helper``), so the same confinement applies as in ``onnx.load``:
a location outside the model's folder, absolute or through a link is refused, and
offset and length must lie within the file.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper


# Initializers at least this large are mapped (one mapping each); smaller ones are read.
MAP_AT_LEAST = 64 * 1024


class WeightReader:
    """Arrays of initializers; external ones mapped (or, if small, read) from files under ``base_dir``."""

    def __init__(self, base_dir: str | Path | None, *, map_at_least: int = MAP_AT_LEAST):
        self.base_dir = None if base_dir is None else str(base_dir)
        self.map_at_least = map_at_least

    def array(self, tensor: onnx.TensorProto) -> np.ndarray:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return numpy_helper.to_array(tensor)
        if self.base_dir is None:
            raise ValueError(f"initializer {tensor.name!r} keeps its data in another file, and the model's folder "
                             "is not known: load the model with its external data")
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
        except (KeyError, TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.kind not in "biuf" or dtype.itemsize == 0:
            return numpy_helper.to_array(tensor, self.base_dir)  # packed/exotic types: onnx decodes them
        from onnx.external_data_helper import ExternalDataInfo, _open_external_data_fd

        info = ExternalDataInfo(tensor)
        count = int(np.prod(tensor.dims, dtype=np.int64))
        size = count * dtype.itemsize
        offset = int(info.offset or 0)
        length = int(info.length) if info.length is not None else size
        # onnx's resolution: refuses locations outside base_dir, absolute ones and links.
        fd = _open_external_data_fd(self.base_dir, info.location, tensor.name, True)
        try:
            file_size = os.fstat(fd).st_size
            if file_size == 0:
                raise ValueError(f"external data file {info.location!r} of initializer {tensor.name!r} is empty")
            if length != size or offset < 0 or offset + size > file_size:
                raise ValueError(f"external data of initializer {tensor.name!r} ({info.location}, offset {offset}, "
                                 f"length {length}) does not hold its {count} {dtype.name} values")
            if count == 0:
                return np.zeros(tuple(tensor.dims), dtype=dtype.newbyteorder("="))
            if size < self.map_at_least:
                data = bytearray(size)
                if os.preadv(fd, [data], offset) != size:
                    raise ValueError(f"external data of initializer {tensor.name!r} ({info.location}) could not "
                                     "be read whole")
                buffer, start = data, 0
            else:
                # A mapping starts on an allocation-granularity boundary; the array starts inside it.
                first = offset - offset % mmap.ALLOCATIONGRANULARITY
                buffer = mmap.mmap(fd, offset + size - first, offset=first, access=mmap.ACCESS_COPY)
                start = offset - first
        finally:
            os.close(fd)  # a mapping keeps its own descriptor
        array = np.frombuffer(buffer, dtype=dtype, count=count, offset=start).reshape(tuple(tensor.dims))
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))
