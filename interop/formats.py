"""Format detection: which declared format a path holds, without loading a framework.

Detection uses the declarations only (extensions, directory suffixes, directory
markers); then the format's cheap ``sniff`` confirms the content, so a text file
named like a model file is refused with a clear message before any framework opens it.
"""

from __future__ import annotations

from pathlib import Path

from interop.plugin_api import Format, InteropError, ModelLoadError, resolve
from interop.plugin_registry import Registry


def _suffix_match(name: str, suffixes: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``suffixes`` that ``name`` ends with (0 if none)."""
    lowered = name.lower()
    return max((len(s) for s in suffixes if lowered.endswith(s.lower())), default=0)


def format_for_output(path: Path, registry: Registry) -> str | None:
    """The format a not-yet-existing output path implies by its suffix, if any."""
    best, best_len = None, 0
    for name, provided in registry.formats.items():
        fmt = provided.item
        length = _suffix_match(path.name, (*fmt.extensions, *fmt.directory_suffixes))
        if length > best_len:
            best, best_len = name, length
    return best


def detect_format(path: Path, registry: Registry, *, format_flag: str | None = None) -> str:
    """Name of the format stored at ``path``; raises ModelLoadError when unknown.

    ``format_flag`` is the option of the calling command that names a format
    (``--from``), mentioned in the error when there is one.
    """
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    candidates: list[tuple[int, str]] = []
    for name, provided in registry.formats.items():
        fmt = provided.item
        if path.is_dir():
            length = _suffix_match(path.name, fmt.directory_suffixes)
            if length:
                candidates.append((length, name))
            elif any((path / marker).exists() for marker in fmt.directory_markers):
                candidates.append((1, name))
        else:
            length = _suffix_match(path.name, fmt.extensions)
            if length:
                candidates.append((length, name))
    if not candidates:
        from interop.builtin_plugins import suffix_hint

        known = ", ".join(sorted(registry.formats)) or "none (no plugin is installed)"
        kind = "directory" if path.is_dir() else "file"
        hint = suffix_hint(path) or (
            f"name the format with {format_flag} FORMAT; " if format_flag else "") + f"installed formats: {known}"
        raise ModelLoadError(f"{path}: no installed plugin recognises this {kind} as a model", hint=hint)
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return candidates[0][1]


def check_content(path: Path, fmt_name: str, registry: Registry) -> None:
    """Run the format's sniff; raise ModelLoadError with its reason if it objects."""
    provided = registry.formats.get(fmt_name)
    if provided is None:
        known = ", ".join(sorted(registry.formats))
        raise InteropError(f"unknown format {fmt_name!r}", hint=f"known formats: {known}")
    fmt: Format = provided.item
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    is_dir_format = bool(fmt.directory_suffixes or fmt.directory_markers) and not fmt.extensions
    if path.is_dir() and fmt.extensions and not (fmt.directory_suffixes or fmt.directory_markers):
        raise ModelLoadError(
            f"{path} is a directory, but a {fmt_name} model is a file",
            hint="pass the model file itself",
        )
    if path.is_file() and is_dir_format:
        raise ModelLoadError(
            f"{path} is a file, but a {fmt_name} model is a directory",
            hint="pass the model directory",
        )
    if fmt.sniff:
        reason = resolve(fmt.sniff)(path)
        if reason:
            raise ModelLoadError(f"{path}: not a valid {fmt_name} model: {reason}")
