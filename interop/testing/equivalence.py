"""``assert_equivalent``: the check of ``interop check`` as one assertion for a user's own pytest suite."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np

from interop.checker.report import Report

#: A model path, "path@runtime", or (path, runtime).
Model = Union[str, Path, tuple[Union[str, Path], str]]


def assert_equivalent(
    reference: Model,
    candidate: Model,
    atol: float | None = None,
    rtol: float | None = None,
    inputs: str | Path | Mapping[str, np.ndarray] | None = None,
    **options: Any,
) -> Report:
    """Fail with the report's table unless ``candidate`` computes the same outputs as ``reference``.

    ``atol``/``rtol`` override the precision defaults for every output; ``inputs``
    is an .npz path or a dict of named arrays (default: seeded random values).
    Other ``options`` are those of :func:`interop.check` (``dataset``,
    ``tolerances``, ``batch_sizes``, ``seed``, ...). A project's
    ``[tool.interop.check]`` settings are ignored unless ``project_config=True``,
    so a test means the same thing wherever it runs. Returns the report.
    """
    from interop.checker.runner import check

    options.setdefault("project_config", False)
    report = check(reference, [candidate], atol=atol, rtol=rtol, inputs=inputs, **options)
    if not report.passed:
        raise AssertionError(f"models are not equivalent\n{report.format_table()}")
    return report
