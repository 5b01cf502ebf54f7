"""``compare_outputs``: `interop check`'s own comparison of two sets of outputs, for code that already has the arrays.

The conformance kit, the op-coverage script and the demo compare outputs they
computed themselves; they call this, so a verdict never depends on which of them
gave it: outputs are matched by name (a missing or extra output fails), dtypes,
shapes and non-finite values are checked, and each output is judged by check's
error statistic against the tolerance ``interop check`` resolves for the pair's
precision (its built-in defaults unless ``atol``/``rtol``/``tolerances`` are given;
a project's ``pyproject.toml`` is not read, so a test means the same everywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interop.checker.report import OutputResult
from interop.checker.runner import compare_outputs as _check_outputs
from interop.checker.tolerances import build_settings


@dataclass
class Comparison:
    """The verdict of `interop check`'s rules on one reference/candidate pair of output sets."""

    precision: str
    outputs: list[OutputResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when there was something to compare and every output passed."""
        return bool(self.outputs) and all(result.passed for result in self.outputs)

    @property
    def failures(self) -> list[OutputResult]:
        return [result for result in self.outputs if not result.passed]

    def summary(self) -> str:
        """One line per output: verdict, name, max abs error and tolerance, or what was wrong."""
        if not self.outputs:
            return "FAIL: no outputs to compare"
        lines = []
        for result in self.outputs:
            verdict = "PASS" if result.passed else "FAIL"
            numbers = ""
            if result.metrics is not None and result.tolerance is not None:
                numbers = (f" max abs {result.metrics.max_abs:.3g}, atol {result.tolerance.atol:g} "
                           f"rtol {result.tolerance.rtol:g} ({self.precision})")
            lines.append(f"{verdict} {result.name}:{numbers}" + (f" {result.message}" if result.message else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "passed": self.passed,
                "outputs": [result.to_dict() for result in self.outputs]}


def compare_outputs(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    precision: str = "fp32",
    atol: float | None = None,
    rtol: float | None = None,
    tolerances: Mapping[str, tuple[float, float]] | None = None,
    error_stats: str | Mapping[str, str] | None = None,
    samples: int | None = None,
) -> Comparison:
    """Compare ``candidate``'s outputs with ``reference``'s, by name, exactly as `interop check` does.

    ``precision`` is the pair's compute precision (``"fp32"``, ``"fp16"``, ...;
    the less precise of the two models), which picks the default tolerance;
    ``atol``/``rtol`` override it for every output and ``tolerances`` per output
    (``{"logits": (1e-4, 1e-3)}``); ``error_stats`` is check's
    ``--check-error-stat`` (one statistic, or one per output). ``samples`` is the
    number of samples the outputs hold along axis 0 (the batch that was fed, as
    `interop check` knows it); ``None`` when the outputs have no sample axis.
    """
    stats = dict(error_stats) if isinstance(error_stats, Mapping) else error_stats
    settings = build_settings(atol, rtol, dict(tolerances or {}), False, stats)
    results = _check_outputs(
        {name: np.asarray(value) for name, value in reference.items()},
        {name: np.asarray(value) for name, value in candidate.items()},
        precision, settings, samples,
    )
    return Comparison(precision, results)


__all__ = ["Comparison", "compare_outputs"]
