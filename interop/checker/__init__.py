"""The checker behind ``interop check``: prove that copies of a model compute the same function, on every runtime.

:func:`check` is the Python API (``interop.check(reference, candidates, **options)``);
the modules underneath do one job each: :mod:`~interop.checker.metrics` (error
metrics), :mod:`~interop.checker.tolerances` (which tolerance applies),
:mod:`~interop.checker.inputs` (what is fed), :mod:`~interop.checker.models` (which
runtime runs a file), :mod:`~interop.checker.runner` (the comparison),
:mod:`~interop.checker.report` and :mod:`~interop.checker.junit` (the reports) and
:mod:`~interop.checker.golden` (saved reference outputs). ``interop convert --check``
lives with the command line, in :mod:`interop.cli.convert_check`.
"""

from __future__ import annotations

from interop.checker.report import ModelInfo, OutputResult, PairResult, Report
from interop.checker.runner import check

__all__ = ["check", "Report", "PairResult", "OutputResult", "ModelInfo"]
