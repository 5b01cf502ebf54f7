"""Safe output: write to a temporary sibling, rename into place, never clobber by accident.

Every file or directory interop produces goes through :func:`atomic_output`, so a
failed or interrupted run leaves nothing half-written at the destination.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from interop.plugin_api import InteropError


def check_destination(dst: Path, force: bool) -> None:
    """Refuse an existing destination without ``force`` and an unusable folder (exit 2)."""
    if dst.exists() and not force:
        raise InteropError(f"{dst} already exists", hint="pass --force to overwrite it")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.exists():
        raise InteropError(f"output folder {parent} does not exist", hint="create it first")
    if not parent.is_dir():
        raise InteropError(f"output folder {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InteropError(f"output folder {parent} is not writable", hint="choose another -o path")


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A temporary directory in the same folder as ``near`` (same filesystem: rename works)."""
    parent = near.parent if str(near.parent) else Path(".")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{near.name}.", suffix=".interop-tmp", dir=parent))
    except OSError as exc:
        raise InteropError(
            f"cannot write in {parent}: {exc.strerror or exc}", hint="choose another -o path"
        ) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit(tmp_path: Path, dst: Path, force: bool) -> None:
    """Move a finished temporary file or directory to ``dst`` (replacing it if forced)."""
    if not tmp_path.exists():
        raise InteropError(f"the producer wrote nothing at {tmp_path.name}")
    if dst.exists():
        if not force:
            raise InteropError(f"{dst} already exists", hint="pass --force to overwrite it")
        if dst.is_dir() and not dst.is_symlink():
            # os.replace cannot swap a directory for another: move the old one aside first.
            aside = dst.with_name(f".{dst.name}.interop-old")
            remove_path(aside)
            os.replace(dst, aside)
            os.replace(tmp_path, dst)
            remove_path(aside)
            return
    os.replace(tmp_path, dst)


@contextmanager
def atomic_output(dst: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``dst``, on error it vanishes."""
    dst = Path(dst)
    check_destination(dst, force)
    with scratch_dir(dst) as tmp:
        tmp_path = tmp / dst.name
        yield tmp_path
        commit(tmp_path, dst, force)
