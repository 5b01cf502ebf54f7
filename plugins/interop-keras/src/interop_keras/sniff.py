"""Cheap checks that a path holds a Keras model, reading only headers."""

from __future__ import annotations

import zipfile
from pathlib import Path

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff_keras(path: Path) -> str | None:
    if path.is_dir():
        return None if (path / "saved_model.pb").is_file() else "no saved_model.pb in the directory"
    with open(path, "rb") as handle:
        head = handle.read(8)
    if not head:
        return "the file is empty"
    if path.suffix.lower() in {".h5", ".hdf5"}:
        return None if head == _HDF5_MAGIC else "not an HDF5 file"
    if not zipfile.is_zipfile(path):
        return "a .keras file is a zip archive, and this is not one"
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            return "the archive has no config.json"
    return None
