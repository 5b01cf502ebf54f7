"""``interop check``: prove that copies of a model compute the same function, on every runtime.

:func:`check` is the Python API (``interop.check(reference, candidates, **options)``);
the modules underneath do one job each: :mod:`~interop.check.metrics` (error
metrics), :mod:`~interop.check.tolerances` (which tolerance applies),
:mod:`~interop.check.inputs` (what is fed), :mod:`~interop.check.models` (which
runtime runs a file), :mod:`~interop.check.runner` (the comparison),
:mod:`~interop.check.report` and :mod:`~interop.check.junit` (the reports),
:mod:`~interop.check.golden` (saved reference outputs) and
:mod:`~interop.check.convert_check` (``interop convert --check``).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from interop.check.report import ModelInfo, OutputResult, PairResult, Report
from interop.check.runner import check

__all__ = ["check", "Report", "PairResult", "OutputResult", "ModelInfo"]


class _CallableModule(types.ModuleType):
    """Lets ``interop.check(...)`` work after ``import interop.check``.

    Importing the submodule makes ``interop.check`` name this module rather than
    the function that ``interop.__getattr__`` would return, so the module itself
    forwards calls to :func:`check`.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Report:
        return check(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
