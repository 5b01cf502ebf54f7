"""Cheap check that a .pt2 file is a torch.export archive (a zip with the export layout).

Only the zip's directory is read; what the archive holds is judged when it is loaded
(archive.py), so a crafted file is refused there with the reason.
"""

from __future__ import annotations

import zipfile
from pathlib import Path


def sniff_pt2(path: Path) -> str | None:
    if path.stat().st_size == 0:
        return "the file is empty"
    try:
        if not zipfile.is_zipfile(path):
            return "a .pt2 file is a zip archive, and this is not one (or it is truncated)"
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        return f"the zip archive cannot be read ({str(exc)[:200]})"
    relative = [n.split("/", 1)[1] if "/" in n else n for n in names]
    if not any(n.startswith("models/") or n == "serialized_exported_program.json" for n in relative):
        return "the archive holds no torch.export program"
    return None
