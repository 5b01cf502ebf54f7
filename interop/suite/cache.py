"""What an entry's result depends on, as a hash; and the cache folder that keeps results by that hash.

An entry is re-run only when something it depends on changed: the model's bytes
(every file of a model folder), the bytes of its inputs or golden file, the
options (conversion and check), the ``[tool.interop.check]`` table that applies,
and the environment — interop's version, every installed plugin's distribution
and version, and the versions of the distributions the converters and runtimes
require (the frameworks and converters themselves). The same environment
description is what a cluster's workers are compared with before work starts.

Layout: ``CACHE/entries/KEY/`` holds ``result.json``, the converted model and
``worker.log``. Only completed checks (passed or failed on numbers) are reused;
an error, crash or timeout is run again next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from interop.plugin_registry import Registry

#: Bumped when the result format or the meaning of a key changes: old entries are then ignored.
CACHE_VERSION = 1
CACHEABLE = ("passed", "failed")
RESULT_FILE = "result.json"
_CHUNK = 1 << 20


def environment_fingerprint(registry: Registry) -> dict[str, Any]:
    """interop's version, the installed plugins and the versions of what they require (no import)."""
    import importlib.metadata as md

    from interop import __version__

    plugins = {
        p.name: f"{p.distribution} {p.version}" + ("" if p.status == "ok" else f" ({p.status})")
        for p in sorted(registry.plugins, key=lambda p: p.name)
    }
    required: set[str] = {"numpy", "onnx"}
    for provided in [*registry.converters.values(), *registry.runtimes.values()]:
        if registry.environment_for(provided) is None:
            required.update(getattr(provided.item, "requires", ()))
    packages = {}
    for name in sorted(required):
        try:
            packages[name] = md.version(name)
        except md.PackageNotFoundError:
            packages[name] = None
    return {
        "interop": __version__,
        "python": ".".join(platform.python_version_tuple()[:2]),
        "plugins": plugins,
        "packages": packages,
    }


def fingerprint_differences(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Human lines naming what differs between two fingerprints (empty when they agree)."""
    lines = []
    for section in ("interop", "python", "plugins", "packages"):
        a, b = mine.get(section), theirs.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    lines.append(f"{section} {name}: here {a.get(name) or 'not installed'}, "
                                 f"there {b.get(name) or 'not installed'}")
        elif a != b:
            lines.append(f"{section}: here {a}, there {b}")
    return lines


def digest_path(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's relative file names and bytes (links by target)."""
    path = Path(path)
    hasher = hashlib.sha256()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                hasher.update(full.relative_to(path).as_posix().encode() + b"\0")
                if full.is_symlink():
                    hasher.update(b"link:" + os.readlink(full).encode())
                else:
                    _update(hasher, full)
                hasher.update(b"\0")
    else:
        _update(hasher, path)
    return hasher.hexdigest()


def _update(hasher: Any, path: Path) -> None:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)


def entry_key(spec: dict[str, Any], files: dict[str, Path], fingerprint: dict[str, Any],
              check_table: Any = None) -> str:
    """The hash of everything an entry's result depends on (see the module docstring)."""
    # Paths are left out (files count by content: a moved checkout keeps its cache); the id stays in,
    # so two entries of identical models never share a folder.
    independent = json.loads(json.dumps({k: v for k, v in spec.items() if k not in ("model", "golden", "pyproject")}))
    independent.get("check", {}).pop("inputs", None)
    content = {
        "cache_version": CACHE_VERSION,
        "spec": independent,
        "files": {role: digest_path(path) for role, path in sorted(files.items())},
        "project_check": check_table,
        "environment": fingerprint,
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Cache:
    """``CACHE/entries/KEY/`` folders: results that can be reused, and where new ones are put."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def entry_dir(self, key: str) -> Path:
        return self.folder / "entries" / key

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The stored result of ``key`` when it completed and its converted model is still there."""
        folder = self.entry_dir(key)
        try:
            result = json.loads((folder / RESULT_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict) or result.get("status") not in CACHEABLE:
            return None
        artifact = (result.get("conversion") or {}).get("artifact")
        if artifact and not (folder / artifact).exists():
            return None
        return result

    def previous_seconds(self, key: str) -> float | None:
        """How long the last run of ``key`` took (whatever its status), if it ran before."""
        try:
            seconds = json.loads((self.entry_dir(key) / RESULT_FILE).read_text()).get("seconds")
        except (OSError, ValueError, AttributeError):
            return None
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def scratch(self, key: str) -> Path:
        """A fresh folder for a run of ``key``, beside where it will be stored (same file system)."""
        import tempfile

        (self.folder / "entries").mkdir(parents=True, exist_ok=True)
        self._ignore_in_git()
        return Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".interop-tmp", dir=self.folder / "entries"))

    def store(self, key: str, scratch: Path) -> Path:
        """Move a finished run's folder into place (replacing an older run of the same key)."""
        final = self.entry_dir(key)
        if final.exists():
            aside = scratch.with_name(scratch.name + ".old")
            os.replace(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.replace(scratch, final)
        return final

    def _ignore_in_git(self) -> None:
        marker = self.folder / ".gitignore"
        if not marker.exists():
            try:
                marker.write_text("# written by interop suite: the cache is not source\n*\n")
            except OSError:
                pass
