"""Safe output: write to a temporary sibling, rename into place, never clobber by accident.

Every file or directory interop produces goes through :func:`atomic_output`, so a
failed or interrupted run leaves nothing half-written at the destination.

What may be replaced (with ``force``), and what never is:

- an existing regular file: yes;
- a symbolic link (dangling or not): never; a rename would replace the link, not
  what it points to, and writing through a link is how a planted link redirects
  an output onto someone else's file (exit 2);
- anything that is neither a regular file nor a directory (``/dev/null``, a FIFO): never;
- a directory: only when the caller says what kind of directory it writes there
  (``replaceable``, e.g. :func:`same_format_directory`) and the directory is one:
  a valid model of the same format whose top-level entries all appear in the new
  output too. Report files (JSON, JUnit, golden ``.npz``) pass no ``replaceable``,
  so a directory in their place is always refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from interop.errors import deferred_signals, folder_removed_at_sudden_exit, raise_if_interrupted
from interop.plugin_api import InteropError

if TYPE_CHECKING:
    from interop.plugin_registry import Registry

#: Says why the existing directory ``path`` must not be replaced, or None when it may be.
DirectoryCheck = Callable[[Path], "str | None"]


def _refuse_link_or_special(dst: Path, what: str) -> None:
    if dst.is_symlink():
        raise InteropError(
            f"{what} {dst} is a symbolic link; interop does not write through links",
            hint="give the real path of the output (or remove the link first)",
        )
    if dst.exists() and not (dst.is_file() or dst.is_dir()):
        raise InteropError(f"{what} {dst} is not a regular file or directory; interop does not replace it")


def check_destination(
    dst: Path, force: bool, replaceable: DirectoryCheck | None = None, *, what: str = "output",
) -> None:
    """Refuse a destination interop must not write (exit 2); see the module docstring."""
    dst = Path(dst)
    _refuse_link_or_special(dst, what)
    if dst.is_dir():
        if replaceable is None:
            raise InteropError(
                f"{what} {dst} is a directory; interop never replaces a directory with a file",
                hint="name a file, for example one inside that directory",
            )
        reason = replaceable(dst)
        if reason is not None:
            raise InteropError(
                f"{what} {dst} is a directory interop did not write ({reason}); "
                "it is not replaced, even with --force",
                hint="choose another output path",
            )
    if dst.exists() and not force:
        raise InteropError(f"{dst} already exists", hint="pass --force to overwrite it")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.exists():
        raise InteropError(f"output folder {parent} does not exist", hint="create it first")
    if not parent.is_dir():
        raise InteropError(f"output folder {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InteropError(f"output folder {parent} is not writable", hint="choose another -o path")


def check_report_destination(path: Path, what: str) -> None:
    """Fail fast (exit 2) for a report path that cannot be written as a file.

    Reports are overwritten without ``--force`` (CI writes them on every run), so
    this refuses what overwriting would destroy: a directory, a link, a device.
    Missing parent folders are fine (they are created at write time) as long as
    the nearest existing one is a writable directory.
    """
    path = Path(path)
    _refuse_link_or_special(path, what)
    if path.is_dir():
        raise InteropError(
            f"{what} {path} is a directory; a report is a file",
            hint=f"name a file, e.g. {path / ('report' + _report_suffix(what))}",
        )
    ancestor = path.parent if str(path.parent) else Path(".")
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InteropError(f"{what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InteropError(f"{what} {path}: folder {ancestor} is not writable", hint="choose another path")


def _report_suffix(what: str) -> str:
    return {"--json": ".json", "--json-file": ".json", "--junit": ".xml", "--save-golden": ".npz"}.get(what, "")


def same_file(path: Path, other: Path) -> bool:
    """True when both name the same file or directory (symbolic and hard links resolved)."""
    try:
        if path.exists() and other.exists():
            return os.path.samefile(path, other)  # hard links and links resolved
    except OSError:
        pass
    return path.resolve() == other.resolve()


def same_or_inside(path: Path, other: Path) -> bool:
    """True when ``path`` is ``other`` (links and hard links resolved) or lies inside it."""
    path, other = Path(path), Path(other)
    return same_file(path, other) or other.resolve() in path.resolve().parents


def refuse_overlap(output: Path, inputs: Iterable[Path], what: str = "output") -> None:
    """Exit 2 when ``output`` is one of ``inputs``, lies inside one, or contains one."""
    output = Path(output)
    for source in map(Path, inputs):
        if same_file(output, source):
            relation = "is an input of this command" if output == source else f"is the same file as the input {source}"
        elif same_or_inside(output, source):
            relation = f"is inside the input {source}"
        elif same_or_inside(source, output):
            relation = f"contains the input {source}"
        else:
            continue
        raise InteropError(
            f"{what} {output} {relation}; writing it would destroy that input",
            hint="write the output somewhere else",
        )


def same_format_directory(fmt: str, registry: Registry) -> DirectoryCheck:
    """A :data:`DirectoryCheck` accepting only a valid ``fmt`` model directory."""

    def why_not(path: Path) -> str | None:
        from interop.formats import check_content, detect_format

        try:
            found = detect_format(path, registry)
        except InteropError:
            return f"it holds no model of a known format, not a {fmt} model"
        if found != fmt:
            return f"it holds a {found} model, not a {fmt} model"
        try:
            check_content(path, fmt, registry)
        except InteropError as exc:
            return exc.message
        return None

    return why_not


def remove_path(path: Path) -> None:
    """Remove a file or a link interop wrote; a directory is refused (interop never deletes one here)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise InteropError(f"{path} is a directory; interop does not remove it")
    if path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def scratch_dir(near: Path) -> Iterator[Path]:
    """A temporary directory in the same folder as ``near`` (same filesystem: rename works)."""
    parent = near.parent if str(near.parent) else Path(".")
    tmp: Path | None = None
    try:
        # A signal between mkdtemp's mkdir and the assignment would leak the folder: hold it.
        with deferred_signals():
            try:
                tmp = Path(tempfile.mkdtemp(prefix=f".{near.name}.", suffix=".interop-tmp", dir=parent))
            except OSError as exc:
                raise InteropError(
                    f"cannot write in {parent}: {exc.strerror or exc}", hint="choose another -o path"
                ) from None
        with folder_removed_at_sudden_exit(tmp):
            yield tmp
    finally:
        if tmp is not None:
            with deferred_signals():  # a second Ctrl-C must not cut the clean-up short
                shutil.rmtree(tmp, ignore_errors=True)


def _foreign_entries(old: Path, new: Path) -> list[str]:
    """Top-level entries of the directory being replaced that the new output does not have."""
    fresh = {entry.name for entry in new.iterdir()} if new.is_dir() else set()
    return sorted(entry.name for entry in old.iterdir() if entry.name not in fresh)


def commit(
    tmp_path: Path, dst: Path, force: bool, replaceable: DirectoryCheck | None = None,
) -> None:
    """Move a finished temporary file or directory to ``dst`` (replacing it if forced).

    The destination is checked again: it may have changed during a long conversion.
    """
    if not tmp_path.exists():
        raise InteropError(f"the producer wrote nothing at {tmp_path.name}")
    check_destination(dst, force, replaceable)
    if dst.is_dir():
        foreign = _foreign_entries(dst, tmp_path)
        if foreign:
            raise InteropError(
                f"{dst} is a directory interop did not write (it holds {', '.join(foreign[:5])}, "
                "which a fresh output does not); it is not replaced, even with --force",
                hint="choose another output path, or remove those entries",
            )
    with deferred_signals():  # the old copy goes away only once the new one is in place
        if dst.exists() and (dst.is_dir() or tmp_path.is_dir()):
            # os.replace cannot swap a directory for another, or a file for a directory:
            # move the old one into the scratch folder (deleted with it) first.
            aside = tmp_path.parent / f"replaced-{dst.name}"
            os.replace(dst, aside)
            try:
                os.replace(tmp_path, dst)
            except BaseException:
                os.replace(aside, dst)
                raise
            return
        os.replace(tmp_path, dst)


@contextmanager
def atomic_output(
    dst: Path, force: bool = False, replaceable: DirectoryCheck | None = None,
) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``dst``, on error it vanishes.

    ``replaceable`` says which existing directories at ``dst`` ``force`` may replace
    (none by default).
    """
    dst = Path(dst)
    check_destination(dst, force, replaceable)
    with scratch_dir(dst) as tmp:
        tmp_path = tmp / dst.name
        yield tmp_path
        raise_if_interrupted()  # a signal a library swallowed: never commit after it
        commit(tmp_path, dst, force, replaceable)

