"""interop: move trained networks between frameworks and prove every copy computes the same function.

The Python API mirrors the command line: :func:`convert`, :func:`train`,
:func:`check` and :func:`list_plugins`. Importing this package loads no ML
framework; each is imported by the plugin that needs it, when it is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert", "train", "check", "list_plugins", "__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("interop")
except Exception:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "convert": ("interop.conversion", "convert"),
    "train": ("interop.training", "train"),
    "check": ("interop.checker", "check"),
    "list_plugins": ("interop.plugins_info", "list_plugins"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'interop' has no attribute {name!r}")
