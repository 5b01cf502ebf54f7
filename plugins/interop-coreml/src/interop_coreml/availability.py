"""Whether the Core ML runtimes can run here: cheap checks read by `interop plugins` and the runtime chooser.

Imports nothing heavy (no numpy, no coremltools): listing plugins calls these.
"""

from __future__ import annotations

import importlib.util
import platform


def interpreter_available() -> tuple[bool, str]:
    """(True, "") when coremltools is installed (its loader of saved programs is needed)."""
    if importlib.util.find_spec("coremltools") is None:
        return False, "the Core ML reference interpreter needs coremltools (pip install coremltools)"
    return True, ""


def native_available() -> tuple[bool, str]:
    """(True, "") on macOS with coremltools installed; otherwise why Apple's runtime cannot run."""
    system = platform.system()
    if system != "Darwin":
        shown = "Linux" if system == "Linux" else (system or "an unknown OS")
        return False, f"Apple's Core ML runtime runs only on macOS (this is {shown})"
    if importlib.util.find_spec("coremltools") is None:
        return False, "Apple's Core ML runtime is reached through coremltools, which is not installed"
    return True, ""


__all__ = ["interpreter_available", "native_available"]
