"""Cheap check that a directory is a Core ML model package."""

from __future__ import annotations

import json
from pathlib import Path


def sniff_mlpackage(path: Path) -> str | None:
    if not path.is_dir():
        return "a .mlpackage is a directory"
    manifest = path / "Manifest.json"
    if not manifest.is_file():
        return "no Manifest.json in the package"
    try:
        json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        return f"Manifest.json is not readable JSON ({exc.__class__.__name__})"
    return None
