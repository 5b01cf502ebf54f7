"""The result of a check: models, pairs, per-output numbers and verdicts; as a dict or a terminal table."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from interop.checker.metrics import OutputMetrics
from interop.checker.tolerances import WEIGHT_COMPRESSIONS, Tolerance

#: Version of the JSON document written by ``--json``/``--json-file`` (see interop/schemas/check.schema.json).
REPORT_SCHEMA = 2
def schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`Report.to_dict`'s document (``interop/schemas/check.schema.json``)."""
    import json
    from importlib import resources

    return json.loads((resources.files("interop") / "schemas" / "check.schema.json").read_text())


#: The per-output numbers of the JSON report (None where an output could not be compared).
METRIC_FIELDS = tuple(name for name in OutputMetrics.__dataclass_fields__ if name != "stat")


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
    #: Errors against the fp64 oracle (interop.checker.oracle.OracleJudgement), when it ran.
    oracle: Any = None

    def to_dict(self) -> dict[str, Any]:
        numbers: dict[str, Any] = dict.fromkeys(METRIC_FIELDS, None)
        if self.metrics is not None:
            numbers.update(self.metrics.to_dict())
        return _finite({
            "name": self.name,
            **numbers,
            "atol": self.tolerance.atol if self.tolerance else None,
            "rtol": self.tolerance.rtol if self.tolerance else None,
            "tolerance_source": self.tolerance.source if self.tolerance else None,
            "stat": self.tolerance.stat if self.tolerance else None,
            "reference_dtype": self.reference_dtype,
            "candidate_dtype": self.candidate_dtype,
            "shape": self.shape,
            "passed": self.passed,
            "message": self.message,
            "failure_file": self.failure_file,
            "reproduce": self.reproduce,
            "oracle": _finite(self.oracle.to_dict()) if self.oracle is not None else None,
        })


@dataclass
class PairResult:
    """The reference against one candidate: pair-level problems and per-output results."""

    reference: ModelInfo
    candidate: ModelInfo
    precision: str
    outputs: list[OutputResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: What --locate found (interop.checker.locate.Located), for a failing pair.
    located: Any = None
    #: The fp64 oracle this pair was judged against (model, engine, samples), when it ran.
    oracle: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return not self.problems and all(o.passed for o in self.outputs)

    @property
    def name(self) -> str:
        return f"{self.reference.label} vs {self.candidate.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.to_dict(),
            "candidate": self.candidate.to_dict(),
            "runtime": self.candidate.runtime,
            "engine": self.candidate.engine,
            "precision": self.precision,
            "passed": self.passed,
            "problems": list(self.problems),
            "outputs": [o.to_dict() for o in self.outputs],
            "located": self.located.to_dict() if self.located is not None else None,
            "oracle": self.oracle,
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
    #: Seconds spent per stage: open (load the models), inputs, run, compare, oracle, locate,
    #: close (release the models).
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def clock(self, stage: str) -> Iterator[None]:
        """Add the time spent in the block to ``timings[stage]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

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
        """The JSON document (interop/schemas/check.schema.json): plain values, no NaN/Inf."""
        return json_safe({
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
            "timings": {stage: round(seconds, 4) for stage, seconds in self.timings.items()},
        })

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
            lines.extend(f"           note: {note}" for note in inputs.get("notes") or ())
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
        what = "weights compressed as" if pair.precision in WEIGHT_COMPRESSIONS else "computes in"
        lines.append(f"           {what} {pair.precision} ({source}): {_tolerance_note(pair)}")
    for problem in pair.problems:
        lines.append(f"  FAIL  {problem}")
    if pair.outputs:
        lines.append(_table(pair.outputs))
    if pair.oracle is not None:
        lines.append(_oracle_line(pair))
    for out in pair.outputs:
        if out.message:
            lines.append(f"  {out.name}: {out.message}")
        if out.oracle is not None and (not out.passed or out.message):
            judgement = out.oracle
            lines.append(f"  {out.name}: fp64 oracle: reference off by {judgement.reference_error:.2g}, candidate by "
                         f"{judgement.candidate_error:.2g} of the output's scale: {judgement.verdict}")
        if out.failure_file:
            sample = out.metrics.worst_sample if out.metrics else None
            lines.append(f"  saved {'sample ' + str(sample) if sample is not None else 'the inputs'} "
                         f"in {out.failure_file}")
        if out.reproduce:
            lines.append(f"  reproduce: {out.reproduce}")
    if pair.located is not None:
        lines.extend(pair.located.lines())
    return lines


def _tolerance_note(pair: PairResult) -> str:
    """Which tolerances judged the pair's floating-point outputs: the precision's defaults, or what the user set."""
    default = f"{pair.precision} default"
    by_source: dict[str, list[str]] = {}
    for out in pair.outputs:
        if out.tolerance is not None and not out.tolerance.source.startswith("exact"):
            by_source.setdefault(out.tolerance.source, []).append(out.name)
    if set(by_source) <= {default}:
        return f"{pair.precision} default tolerances apply"

    def origin(source: str) -> str:
        return f"the {source}" if source.endswith(" default") else source

    def phrase(source: str) -> str:  # "atol: --atol; rtol: fp16 default" when the two numbers come from two places
        if source.startswith("atol: "):
            atol_from, _, rtol_from = source[len("atol: "):].partition("; rtol: ")
            return f"atol from {origin(atol_from)}, rtol from {origin(rtol_from)}"
        return f"from {origin(source)}"

    if len(by_source) == 1:
        note = f"tolerances {phrase(next(iter(by_source)))}"
    else:
        note = "tolerances " + "; ".join(f"{', '.join(names)}: {phrase(source)}" for source, names in by_source.items())
    return note if any(default in source for source in by_source) else f"{note} (not the {pair.precision} defaults)"


def _oracle_line(pair: PairResult) -> str:
    """One line: which exact answer the pair was judged against, and the worst candidate/reference ratio."""
    oracle = pair.oracle or {}
    judged = [out.oracle for out in pair.outputs if out.oracle is not None]
    where = f"fp64 oracle  {oracle.get('model')} on {oracle.get('engine')}, {len(oracle.get('samples') or [])} sample(s)"
    if not judged:
        return f"  {where}"
    worst = max(judged, key=lambda j: j.ratio)
    doubtful = sum(1 for j in judged if not j.credible)
    summary = ("every output as accurate as the reference" if all(j.as_accurate for j in judged)
               else f"not credible for {doubtful} output(s), which it does not decide" if doubtful
               else "an output is less accurate than the reference")
    return (f"  {where}: {summary} (worst: candidate {worst.candidate_error:.2g}, "
            f"reference {worst.reference_error:.2g} of the output's scale)")


_COLUMNS = ("output", "max_abs", "max_rel", "mean_abs", "p99_abs", "cosine", "argmax", "within",
            "worst", "stat", "atol", "rtol", "margin", "verdict")


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
            out.tolerance.stat if out.tolerance else "-",
            _num(out.tolerance.atol) if out.tolerance else "-",
            _num(out.tolerance.rtol) if out.tolerance else "-",
            _num(m.margin) if m else "-",
            "PASS" if out.passed else "FAIL",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/Inf float (not JSON) replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _finite(document: dict[str, Any]) -> dict[str, Any]:
    """NaN/Inf are not JSON: show them as None."""
    return {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in document.items()
    }
