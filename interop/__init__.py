"""interop: move trained networks between frameworks and prove every copy computes the same function.

The Python API mirrors the command line: :func:`convert`, :func:`train`,
:func:`check` and :func:`list_plugins`. Importing this package loads no ML
framework; each is imported by the plugin that needs it, when it is used.
While :func:`convert`, :func:`train` and :func:`check` run, the libraries' console
chatter is kept off the terminal as on the command line (:mod:`interop.library_messages`;
``INTEROP_LOG_FILE=PATH`` keeps it in a file, ``INTEROP_VERBOSE=1`` shows it).
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert", "train", "check", "list_plugins", "__version__"]

_LAZY = {
    "convert": ("interop.conversion", "convert"),
    "train": ("interop.training", "train"),
    "check": ("interop.checker", "check"),
    "list_plugins": ("interop.plugins_info", "list_plugins"),
}
#: The API functions that run frameworks, wrapped to keep their chatter off the terminal.
_QUIETED = ("convert", "train", "check")


def _quieted(function: Any) -> Any:
    import functools

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        from interop.library_messages import api_library_messages

        with api_library_messages():
            return function(*args, **kwargs)

    return run


def _installed_version() -> str:
    try:
        from importlib.metadata import version

        return version("interop")
    except Exception:  # running from a source tree that is not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    # Looked up on first use: reading package metadata is a noticeable part of `interop --help`.
    if name == "__version__":
        value = _installed_version()
        globals()["__version__"] = value
        return value
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        function = getattr(importlib.import_module(module), attr)
        if name in _QUIETED:
            function = _quieted(function)
        globals()[name] = function
        return function
    raise AttributeError(f"module 'interop' has no attribute {name!r}")
