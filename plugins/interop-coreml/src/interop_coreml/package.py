"""Confining a Core ML model package to its own directory before anything reads it.

An ``.mlpackage`` is a folder whose ``Manifest.json`` names the files that make the
model (the spec, the weights folder) and whose spec names weight blobs by path
(``@model_path/weights/weight.bin``).  Every one of those paths comes from the file's
author, so an untrusted package could point interop at any file on the machine: a
``../`` path, an absolute path, or a symlink.  :func:`validate_package` is the one
gate every reader passes (format sniffing, the reference interpreter, Apple's runtime,
the converter's own output check): it refuses any symlink or special file anywhere in
the package, then resolves each manifest path and refuses anything that would leave
the package, does not exist, or has the wrong type.  :func:`check_weight_references`
does the same for the blob paths inside a parsed spec.

Only the standard library is imported here: sniffing must stay cheap.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
from dataclasses import dataclass
from typing import Any

MANIFEST_NAME = "Manifest.json"
DATA_DIR_NAME = "Data"
CORE_ML_AUTHOR = "com.apple.CoreML"
MODEL_PATH_PREFIX = "@model_path/"
# A manifest is a few hundred bytes; a larger one is not a manifest coremltools wrote.
MAX_MANIFEST_BYTES = 1 << 20
# A package holds a handful of files; this bounds the walk over a hostile one.
MAX_PACKAGE_ENTRIES = 10_000


class PackageError(ValueError):
    """The package was refused; the message says what was refused and why, in one line."""


@dataclass(frozen=True)
class ValidatedPackage:
    """Where a validated package's spec and weights are (all inside ``root``, no symlinks)."""

    root: pathlib.Path
    spec_path: pathlib.Path
    weights_dir: pathlib.Path | None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "a special file"


def _refuse_links_and_special_files(root: pathlib.Path) -> None:
    """Refuse any entry under ``root`` that is not a plain file or a plain directory."""
    count = 0
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            raise PackageError(f"cannot list {folder} ({exc.strerror or exc})") from None
        for entry in entries:
            count += 1
            if count > MAX_PACKAGE_ENTRIES:
                raise PackageError(f"refused: the package holds more than {MAX_PACKAGE_ENTRIES} files")
            mode = entry.stat(follow_symlinks=False).st_mode
            inside = pathlib.Path(entry.path).relative_to(root)
            if stat.S_ISDIR(mode):
                pending.append(pathlib.Path(entry.path))
            elif not stat.S_ISREG(mode):
                why = " (a package may not point outside itself)" if stat.S_ISLNK(mode) else ""
                raise PackageError(f"refused: {inside} inside the package is {_kind(mode)}{why}")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # Two readers may pick different copies of a repeated key; refuse the ambiguity.
            raise PackageError(f"refused: {MANIFEST_NAME} repeats the key {key!r}")
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise PackageError(f"refused: {MANIFEST_NAME} is not valid JSON (it contains {name})")


def _read_manifest(path: pathlib.Path) -> dict[str, Any]:
    try:
        # O_NOFOLLOW: the walk already refused symlinks; this closes the gap until the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise PackageError(f"refused: cannot open {MANIFEST_NAME} ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise PackageError(f"refused: {MANIFEST_NAME} is not a regular file")
        raw = handle.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise PackageError(f"refused: {MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        manifest = json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise PackageError(f"refused: {MANIFEST_NAME} is not UTF-8 text") from None
    except RecursionError:
        raise PackageError(f"refused: {MANIFEST_NAME} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise PackageError(f"refused: {MANIFEST_NAME} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(manifest, dict):
        raise PackageError(f"refused: {MANIFEST_NAME} must hold a JSON object, not {type(manifest).__name__}")
    return manifest


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise PackageError(f"refused: {MANIFEST_NAME}: {what} must be a non-empty string, got {value!r:.80}")
    return value


def confined_path(base: pathlib.Path, root: pathlib.Path, relative: str, what: str) -> pathlib.Path:
    """``base / relative``, refused unless it is a relative path that stays inside ``root``.

    ``..`` components, absolute paths, backslashes and control characters are refused
    outright rather than normalised: a package coremltools wrote never contains them.
    Every existing component is checked with ``lstat`` so a symlink is refused even when
    the package walk did not cover ``base`` (a bare spec file's folder).
    """
    if "\\" in relative or any(ord(char) < 32 for char in relative):
        raise PackageError(f"refused: {what} {relative!r} contains a backslash or a control character")
    pure = pathlib.PurePosixPath(relative)
    if pure.is_absolute():
        raise PackageError(f"refused: {what} {relative!r} is an absolute path (a package may only name its own files)")
    if ".." in pure.parts:
        raise PackageError(f"refused: {what} {relative!r} has a '..' component (a package may only name its own files)")
    candidate = base
    for part in pure.parts:
        candidate = candidate / part
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            raise PackageError(f"refused: {what} {relative!r} does not exist in the package") from None
        except OSError as exc:
            raise PackageError(f"refused: {what} {relative!r} cannot be read ({exc.strerror or exc})") from None
        if stat.S_ISLNK(mode):
            raise PackageError(f"refused: {what} {relative!r} goes through a symlink ({candidate.name})")
    resolved = pathlib.Path(os.path.realpath(candidate))
    if resolved != root and root not in resolved.parents:
        raise PackageError(f"refused: {what} {relative!r} resolves outside the package")
    return resolved


def _require(path: pathlib.Path, directory: bool, what: str, relative: str) -> None:
    mode = os.lstat(path).st_mode
    if directory and not stat.S_ISDIR(mode):
        raise PackageError(f"refused: {what} {relative!r} is not a directory")
    if not directory and not stat.S_ISREG(mode):
        raise PackageError(f"refused: {what} {relative!r} is not a regular file")


def validate_package(package: str | os.PathLike[str]) -> ValidatedPackage:
    """Check that ``package`` reads nothing outside itself; return its spec file and weights folder.

    Raises PackageError (one line: what was refused and why).  The package folder itself
    may be reached through a symlink the user named; nothing inside it may be one.
    """
    given = pathlib.Path(package)
    if not given.is_dir():
        raise PackageError(f"refused: {given} is not a directory (a .mlpackage is a folder)")
    root = pathlib.Path(os.path.realpath(given))
    try:
        manifest_mode = os.lstat(root / MANIFEST_NAME).st_mode
    except FileNotFoundError:
        raise PackageError(f"no {MANIFEST_NAME} in the package; not an .mlpackage") from None
    if not stat.S_ISREG(manifest_mode):
        raise PackageError(f"refused: {MANIFEST_NAME} is {_kind(manifest_mode)}, not a regular file")
    _refuse_links_and_special_files(root)
    manifest = _read_manifest(root / MANIFEST_NAME)

    entries = manifest.get("itemInfoEntries")
    if not isinstance(entries, dict) or not entries:
        raise PackageError(f"refused: {MANIFEST_NAME}: itemInfoEntries must be a non-empty object, got {entries!r:.60}")
    root_id = _string(manifest.get("rootModelIdentifier"), "rootModelIdentifier")
    if root_id not in entries:
        raise PackageError(f"refused: {MANIFEST_NAME}: rootModelIdentifier {root_id!r} names no item")
    version = manifest.get("fileFormatVersion")
    if version is not None and not isinstance(version, str):
        raise PackageError(f"refused: {MANIFEST_NAME}: fileFormatVersion must be a string, got {version!r}")

    data_dir = root / DATA_DIR_NAME
    spec_path: pathlib.Path | None = None
    weights_dir: pathlib.Path | None = None
    for identifier, entry in entries.items():
        if not isinstance(entry, dict):
            raise PackageError(f"refused: {MANIFEST_NAME}: item {identifier!r} must be an object, got {entry!r:.60}")
        for key in ("name", "author", "description"):
            if key in entry and not isinstance(entry[key], str):
                raise PackageError(f"refused: {MANIFEST_NAME}: item {identifier!r} {key} must be a string")
        what = f"{MANIFEST_NAME} item {identifier!r} path"
        relative = _string(entry.get("path"), f"item {identifier!r} path")
        resolved = confined_path(data_dir, root, relative, what)
        is_weights = entry.get("name") == "weights" and entry.get("author", CORE_ML_AUTHOR) == CORE_ML_AUTHOR
        if identifier == root_id:
            _require(resolved, False, what, relative)
            spec_path = resolved
        elif is_weights:
            _require(resolved, True, what, relative)
            weights_dir = resolved
    assert spec_path is not None  # root_id is one of the entries
    if weights_dir is None:
        # coremltools always writes the weights next to the spec; fall back to that place.
        fallback = spec_path.parent / "weights"
        if fallback.is_dir():  # no symlink can be here: the walk refused them all
            weights_dir = fallback
    return ValidatedPackage(root=root, spec_path=spec_path, weights_dir=weights_dir)


def _blob_file_values(message: Any) -> list[Any]:
    """Every ``BlobFileValue`` message nested anywhere in a protobuf message."""
    found = []
    pending = [message]
    while pending:
        current = pending.pop()
        for field, value in current.ListFields():
            if field.type != field.TYPE_MESSAGE:
                continue
            repeated = getattr(field, "is_repeated", None)
            if repeated is None:
                repeated = field.label == field.LABEL_REPEATED
            if not repeated:
                children = [value]
            elif field.message_type.GetOptions().map_entry:
                if field.message_type.fields_by_name["value"].type != field.TYPE_MESSAGE:
                    continue
                children = list(value.values())
            else:
                children = list(value)
            for child in children:
                if child.DESCRIPTOR.name == "BlobFileValue":
                    found.append(child)
                else:
                    pending.append(child)
    return found


def check_weight_references(spec: Any, spec_path: pathlib.Path, root: pathlib.Path,
                            weights_dir: pathlib.Path | None) -> None:
    """Refuse a spec whose weight blobs are not plain files inside ``root``.

    A blob path must be ``@model_path/<relative path>`` (``@model_path`` is the spec's
    folder, as Apple's runtime reads it) and stay inside the package; coremltools'
    loader reads ``weights_dir / <file name>`` instead, so that file must exist too
    (with no weights folder it would read the name relative to the current directory).
    """
    for blob in _blob_file_values(spec):
        name = blob.fileName
        if not name.startswith(MODEL_PATH_PREFIX):
            raise PackageError(
                f"refused: the model spec names weight file {name!r}, which is not under {MODEL_PATH_PREFIX}"
            )
        what = "the model spec's weight file"
        resolved = confined_path(spec_path.parent, root, name[len(MODEL_PATH_PREFIX):], what)
        _require(resolved, False, what, name)
        if weights_dir is None:
            raise PackageError(
                f"refused: the model spec names weight file {name!r} but the package has no weights folder"
            )
        confined_path(weights_dir, root, pathlib.PurePosixPath(name).name, what)
        _require(weights_dir / pathlib.PurePosixPath(name).name, False, what, name)
