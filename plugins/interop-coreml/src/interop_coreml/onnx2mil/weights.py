"""Initializer values, with external data mapped from disk instead of read into memory.

A model past protobuf's 2 GB limit keeps its weights in files beside it
(``data_location=EXTERNAL``). ``onnx.load`` would read every byte into the proto,
``numpy_helper.to_array`` would copy them again, and the translator would hold
both while coremltools writes its own. Here the proto is loaded without its
external data (``load_external_data=False``) and each external initializer becomes
a numpy array over a copy-on-write memory map of its file: nothing is read until
coremltools streams the weight into the package's blob, and the pages are the
kernel's page cache, dropped again under memory pressure.

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


class WeightReader:
    """Arrays of initializers; external ones mapped from files under ``base_dir``."""

    def __init__(self, base_dir: str | Path | None):
        self.base_dir = None if base_dir is None else str(base_dir)
        self._maps: dict[str, mmap.mmap] = {}

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
        from onnx.external_data_helper import ExternalDataInfo

        info = ExternalDataInfo(tensor)
        count = int(np.prod(tensor.dims, dtype=np.int64))
        size = count * dtype.itemsize
        offset = int(info.offset or 0)
        length = int(info.length) if info.length is not None else size
        mapping = self._mapping(info.location, tensor.name)
        if length != size or offset < 0 or offset + size > len(mapping):
            raise ValueError(f"external data of initializer {tensor.name!r} ({info.location}, offset {offset}, "
                             f"length {length}) does not hold its {count} {dtype.name} values")
        if count == 0:
            return np.zeros(tuple(tensor.dims), dtype=dtype.newbyteorder("="))
        array = np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).reshape(tuple(tensor.dims))
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))

    def _mapping(self, location: str, tensor_name: str) -> mmap.mmap:
        mapping = self._maps.get(location)
        if mapping is None:
            from onnx.external_data_helper import _open_external_data_fd

            # onnx's resolution: refuses locations outside base_dir, absolute ones and links.
            fd = _open_external_data_fd(self.base_dir, location, tensor_name, True)
            try:
                if os.fstat(fd).st_size == 0:
                    raise ValueError(f"external data file {location!r} of initializer {tensor_name!r} is empty")
                mapping = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
            finally:
                os.close(fd)
            self._maps[location] = mapping
        return mapping
