"""Installed distributions and their entry points, read straight from the metadata folders on ``sys.path``.

``importlib.metadata`` answers the same questions, but importing it pulls in the
``email`` package (and through it ``socket``, ``random``, ...), which costs as
much as click itself; discovery is on the path of ``interop plugins`` and every
command, so this module reads what ``importlib.metadata`` reads for path-based
installs: the ``*.dist-info`` and ``*.egg-info`` folders of each ``sys.path``
entry, in order, the first folder of a distribution name winning. Whenever
something else could provide distributions (a zip archive on ``sys.path``, a
meta-path finder of its own), it asks ``importlib.metadata`` instead, so the
answers are the same either way (a test compares them).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SUFFIXES = (".dist-info", ".egg-info")


def normalize(name: str) -> str:
    """A distribution name as packaging compares them (PEP 503): ``Interop_ONNX`` -> ``interop-onnx``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class EntryPoint:
    """One entry point of an installed distribution; :meth:`load` imports what it names."""

    name: str
    value: str
    group: str
    distribution: str
    version: str

    def load(self) -> Any:
        import importlib

        target = self.value.split("[", 1)[0].strip()  # "module:attr [extra]" -> "module:attr"
        module_name, _, attr = target.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _plain_paths_only() -> bool:
    """True when only sys.path folders can provide distributions (the common case)."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and callable(getattr(finder, "find_distributions", None)):
            return False
    return not any(os.path.isfile(entry) for entry in sys.path if entry)


def _metadata_folders() -> Iterator[tuple[str, Path]]:
    """(normalized name, folder) of every metadata folder on sys.path, the first of each name only."""
    seen: set[str] = set()
    for entry in sys.path:
        root = entry or "."
        try:
            names = os.listdir(root)
        except OSError:  # missing folders and path-hook markers hold no distributions
            continue
        for name in names:
            if not name.endswith(_SUFFIXES):
                continue
            stem = name.rsplit(".", 1)[0]
            key = normalize(stem.split("-", 1)[0])
            if key in seen:
                continue
            seen.add(key)
            yield key, Path(root) / name


def _headers(folder: Path) -> tuple[str, str]:
    """(Name, Version) from the folder's METADATA or PKG-INFO headers (folder name as a fallback)."""
    found: dict[str, str] = {}
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            with open(folder / file_name, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the headers end at the first blank line
                    key, sep, value = line.partition(":")
                    if sep and key in ("Name", "Version") and key not in found:
                        found[key] = value.strip()
            break
        except OSError:
            continue
    stem_name, _, stem_version = folder.name.rsplit(".", 1)[0].partition("-")
    return found.get("Name", stem_name), found.get("Version", stem_version.split("-")[0] or "unknown")


def _entry_points_of(folder: Path, group: str) -> list[tuple[str, str]]:
    """(name, value) pairs of ``group`` in the folder's entry_points.txt (an INI file)."""
    try:
        text = (folder / "entry_points.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    pairs, current = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point of ``group`` of the installed distributions, in discovery order."""
    if not _plain_paths_only():
        return _entry_points_from_importlib(group)
    found = []
    for _, folder in _metadata_folders():
        pairs = _entry_points_of(folder, group)
        if pairs:
            dist, version = _headers(folder)
            found += [EntryPoint(name, value, group, dist, version) for name, value in pairs]
    return found


_installed_names: frozenset[str] | None = None


def installed(distribution: str) -> bool:
    """Whether a distribution of that name is installed (no import; folder names read once, see :func:`forget`)."""
    global _installed_names
    if not _plain_paths_only():
        import importlib.metadata as md

        try:
            md.distribution(distribution)
        except md.PackageNotFoundError:
            return False
        return True
    if _installed_names is None:
        _installed_names = frozenset(key for key, _ in _metadata_folders())
    return normalize(distribution) in _installed_names


def forget() -> None:
    """Read the installed distributions afresh on the next question (after an install)."""
    global _installed_names
    _installed_names = None


def _entry_points_from_importlib(group: str) -> list[EntryPoint]:
    import importlib.metadata as md

    found = []
    for ep in md.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        name = (dist.metadata["Name"] if dist is not None else None) or "unknown"
        version = (dist.version if dist is not None else None) or "unknown"
        found.append(EntryPoint(ep.name, ep.value, group, name, version))
    return found
