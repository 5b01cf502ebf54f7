"""Cheap check that a directory is a Core ML model package that stays inside itself.

Runs :func:`interop_coreml.package.validate_package` (standard library only), so a
package whose manifest or files point outside it is refused before any runtime opens it.
"""

from __future__ import annotations

from pathlib import Path

from interop_coreml.package import PackageError, validate_package


def sniff_mlpackage(path: Path) -> str | None:
    if not path.is_dir():
        return "a .mlpackage is a directory"
    try:
        validate_package(path)
    except PackageError as exc:
        return str(exc)
    return None
