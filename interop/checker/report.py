"""The result of a check: models, pairs, per-output numbers and verdicts; as a dict or a terminal table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from interop.checker.metrics import OutputMetrics
from interop.checker.tolerances import Tolerance

#: Version of the JSON document written by ``--json``.
REPORT_SCHEMA = 1


@dataclass
class ModelInfo:
    """One side of a comparison: the file and the engine that produced its numbers."""

    label: str
    path: str
    format: str
    runtime: str
    engine: str
    precision: str
    precision_source: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class OutputResult:
    """The verdict for one output of one pair."""

    name: str
    passed: bool
    message: str = ""
    tolerance: Tolerance | None = None
    metrics: OutputMetrics | None = None
    reference_dtype: str | None = None
    candidate_dtype: str | None = None
    shape: list[int] | None = None
    failure_file: str | None = None
    reproduce: str | None = None

    def to_dict(self) -> dict[str, Any]:
        numbers: dict[str, Any] = dict.fromkeys(
            ("max_abs", "max_rel", "mean_abs", "p99_abs", "cosine", "argmax_agreement",
             "within_tolerance", "worst_sample"), None,
        )
        if self.metrics is not None:
            numbers.update(self.metrics.to_dict())
        return _finite({
            "name": self.name,
            **numbers,
            "atol": self.tolerance.atol if self.tolerance else None,
            "rtol": self.tolerance.rtol if self.tolerance else None,
            "tolerance_source": self.tolerance.source if self.tolerance else None,
            "reference_dtype": self.reference_dtype,
            "candidate_dtype": self.candidate_dtype,
            "shape": self.shape,
            "passed": self.passed,
            "message": self.message,
            "failure_file": self.failure_file,
            "reproduce": self.reproduce,
        })


@dataclass
class PairResult:
    """The reference against one candidate: pair-level problems and per-output results."""

    reference: ModelInfo
    candidate: ModelInfo
    precision: str
    outputs: list[OutputResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(o.passed for o in self.outputs)

    @property
    def name(self) -> str:
        return f"{self.reference.label} vs {self.candidate.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.label,
            "candidate": self.candidate.label,
            "runtime": self.candidate.runtime,
            "engine": self.candidate.engine,
            "reference_runtime": self.reference.runtime,
            "reference_engine": self.reference.engine,
            "precision": self.precision,
            "passed": self.passed,
            "problems": list(self.problems),
            "outputs": [o.to_dict() for o in self.outputs],
        }


@dataclass
class Report:
    """Everything a check found. ``passed`` is the verdict; ``to_dict`` is the ``--json`` document."""

    references: list[ModelInfo] = field(default_factory=list)
    pairs: list[PairResult] = field(default_factory=list)
    candidates: list[ModelInfo] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: One description of the fed inputs per reference (same order as ``references``).
    inputs: list[dict[str, Any]] = field(default_factory=list)
    tolerances: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def reference(self) -> ModelInfo:
        """The (first) reference model."""
        return self.references[0]

    @property
    def passed(self) -> bool:
        return all(pair.passed for pair in self.pairs)

    @property
    def failures(self) -> list[tuple[PairResult, OutputResult | None]]:
        """Every failing (pair, output); output None for a pair-level problem."""
        found: list[tuple[PairResult, OutputResult | None]] = []
        for pair in self.pairs:
            found.extend((pair, None) for _ in pair.problems)
            found.extend((pair, out) for out in pair.outputs if not out.passed)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "passed": self.passed,
            "reference": self.reference.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "inputs": self.inputs[0] if self.inputs else {},
            "groups": [
                {"reference": ref.to_dict(), "inputs": inputs}
                for ref, inputs in zip(self.references, self.inputs)
            ],
            "tolerances": self.tolerances,
            "versions": dict(self.versions),
            "pairs": [pair.to_dict() for pair in self.pairs],
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }

    def format_table(self) -> str:
        """The terminal report: a compact table per pair, the engines, and the verdict."""
        lines: list[str] = []
        for index, (reference, inputs) in enumerate(zip(self.references, self.inputs)):
            if index:
                lines.append("")
            lines.append(f"reference  {reference.label}  on {reference.engine}  [{reference.precision}]")
            runs = inputs.get("runs") or []
            shown_runs = ", ".join(str(r) for r in runs[:6]) + (", ..." if len(runs) > 6 else "")
            lines.append(
                f"inputs     {inputs.get('source')}: {inputs.get('samples')} samples"
                + (f" in runs of {shown_runs}" if runs else "")
            )
            for pair in self.pairs:
                if pair.reference is reference:
                    lines.extend(_pair_lines(pair))
        if self.warnings:
            lines.append("")
        for warning in self.warnings:
            lines.append(f"warning: {warning}")
        failed = len(self.failures)
        total = sum(len(p.outputs) for p in self.pairs)
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append("")
        lines.append(
            f"{verdict}: {len(self.pairs)} pair(s), {total} output comparison(s), {failed} failure(s)"
            + (f", {len(self.skipped)} model(s) skipped" if self.skipped else "")
        )
        return "\n".join(lines)


def _pair_lines(pair: PairResult) -> list[str]:
    lines = [
        "",
        f"candidate  {pair.candidate.label}  on {pair.candidate.engine}  [{pair.precision}]"
        f"  {'PASS' if pair.passed else 'FAIL'}",
    ]
    if pair.precision != "fp32":
        source = pair.candidate.precision_source if pair.candidate.precision == pair.precision \
            else pair.reference.precision_source
        lines.append(
            f"           computes in {pair.precision} ({source}): {pair.precision} default tolerances apply"
        )
    for problem in pair.problems:
        lines.append(f"  FAIL  {problem}")
    if pair.outputs:
        lines.append(_table(pair.outputs))
    for out in pair.outputs:
        if out.message:
            lines.append(f"  {out.name}: {out.message}")
        if out.reproduce:
            lines.append(f"  reproduce: {out.reproduce}")
    return lines


_COLUMNS = ("output", "max_abs", "max_rel", "mean_abs", "p99_abs", "cosine", "argmax", "within",
            "worst", "atol", "rtol", "verdict")


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}e}" if value and (abs(value) < 1e-2 or abs(value) >= 1e4) else f"{value:.4g}"


def _table(outputs: list[OutputResult]) -> str:
    rows = [list(_COLUMNS)]
    for out in outputs:
        m = out.metrics
        rows.append([
            out.name,
            _num(m.max_abs) if m else "-",
            _num(m.max_rel) if m else "-",
            _num(m.mean_abs) if m else "-",
            _num(m.p99_abs) if m else "-",
            f"{m.cosine:.6f}" if m else "-",
            f"{m.argmax_agreement:.1%}" if m and m.argmax_agreement is not None else "-",
            f"{m.within_tolerance:.1%}" if m else "-",
            _num(m.worst_sample) if m else "-",
            _num(out.tolerance.atol) if out.tolerance else "-",
            _num(out.tolerance.rtol) if out.tolerance else "-",
            "PASS" if out.passed else "FAIL",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _finite(document: dict[str, Any]) -> dict[str, Any]:
    """NaN/Inf are not JSON: show them as None."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in document.items()
    }
