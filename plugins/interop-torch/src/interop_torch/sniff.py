"""Cheap check that a .pt2 file is a torch.export archive (a zip with the export layout)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def sniff_pt2(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        return "a .pt2 file is a zip archive, and this is not one"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names):
        return "the archive holds no torch.export program"
    return None
