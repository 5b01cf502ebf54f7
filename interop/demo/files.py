"""Stage 4 of the demo: the figures, their layout, the check files and report.md, written into the folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from interop.datasets import CLASS_NAMES
from interop.demo.checking import write_reports
from interop.demo.model import DemoResult, Lineage, Model
from interop.demo.plots import ErrorSeries, RegionPanel, decision_boundaries, error_envelopes
from interop.demo.progress import Progress
from interop.demo.markdown import verdict, write_report


def panel_title(model: Model, max_abs: float | None = None) -> str:
    """``<model title> · <runtime>`` over the engine (and, for a copy, max |Δ| from its source)."""
    engine = model.run.engine if model.run else model.runtime
    difference = f" · max |Δ| {max_abs:.2g}" if max_abs is not None else ""
    return f"{model.title} · {model.runtime}{difference}\n{engine}"


def grid_classes(model: Model, iris_count: int, shape: tuple[int, ...]) -> np.ndarray:
    """The class a model predicts at every grid point (its outputs after the Iris samples)."""
    assert model.run is not None
    return model.run.logits[iris_count:].argmax(axis=1).reshape(shape)


def interpreter_footnote(result: DemoResult) -> str:
    """Names each runtime passed over because it cannot run here, and what replaced it."""
    notes = []
    for choice in result.runtimes.values():
        for name, why in choice.passed_over:
            notes.append(f"Runtime {name} is unavailable here: {why}. Its panels are computed by "
                         f"{choice.runtime}, the {choice.declared_engine}.")
    return " ".join(notes)


def _tolerance(result: DemoResult, copy: Model) -> tuple[float | None, float | None, str | None]:
    """(atol, rtol, error statistic) the check applied to ``copy``'s output."""
    for pair in result.check.pairs:
        if Path(pair.candidate.path) == copy.path:
            for out in pair.outputs:
                if out.tolerance is not None:
                    return float(out.tolerance.atol), float(out.tolerance.rtol), out.tolerance.stat
    return None, None, None


def error_series(result: DemoResult, lineage: Lineage) -> list[ErrorSeries]:
    """Each copy's differences against the magnitude the check's statistic scales rtol by."""
    from interop.checker.metrics import sample_scale

    assert lineage.source.run is not None
    reference = np.abs(lineage.source.run.logits.astype(np.float64))
    series = []
    for copy, diff in lineage.differences():
        atol, rtol, stat = _tolerance(result, copy)
        magnitude = np.maximum(reference, sample_scale(reference)) if stat == "scaled" else reference
        series.append(ErrorSeries(f"{copy.title.split(' → ')[-1]} on {copy.runtime}", magnitude, diff,
                                  atol, rtol, stat, copy.path.name))
    return series


def write_figures(result: DemoResult) -> dict[str, Any]:
    """decision_boundaries.png and errors.png; returns both layouts."""
    xx, yy, _ = result.grid
    iris_count = len(result.iris_x)
    panels = []
    for row, lineage in enumerate(result.lineages):
        worst = {copy.path: float(diff.max(initial=0.0)) for copy, diff in lineage.differences()}
        for col, model in enumerate(lineage.models):
            title = panel_title(model, worst.get(model.path))
            panels.append(RegionPanel(row, col, title, grid_classes(model, iris_count, xx.shape), {
                "framework": lineage.framework, "format": model.format, "runtime": model.runtime,
                "engine": model.run.engine if model.run else "", "file": model.path.name,
            }))
    regions = decision_boundaries(
        result.folder / "decision_boundaries.png", panels, (xx, yy), result.iris_x, result.iris_y, CLASS_NAMES,
        "Iris MLP decision regions: one row per training framework, one panel per copy and runtime",
        interpreter_footnote(result),
    )
    groups = [(f"{lineage.source.title} source vs its copies ({len(result.iris_x) + xx.size} samples)",
               error_series(result, lineage)) for lineage in result.lineages]
    errors = error_envelopes(result.folder / "errors.png", groups,
                             "Every logit's difference from its source, against the check's tolerance")
    return {"decision_boundaries": regions, "errors": errors}


def write_outputs(result: DemoResult, progress: Progress) -> list[Path]:
    """Write every demo file except the models (already there); returns all files of the demo."""
    layout = write_figures(result)
    figure_json = result.folder / "figure.json"
    figure_json.write_text(json.dumps(layout, indent=2) + "\n")
    progress.say("decision_boundaries.png, errors.png, figure.json")
    json_path, junit_path = write_reports(result.check, result.folder, {
        "verdict": verdict(result),
        "frameworks": [lineage.framework for lineage in result.lineages],
        "skipped_frameworks": [{"framework": f, "reason": why} for f, why in result.skipped_frameworks],
        "inputs": {"iris_samples": len(result.iris_x), "grid_points": int(result.grid[2].shape[0]),
                   "grid_shape": list(result.grid[0].shape),
                   "order": "the Iris samples first, then the grid points row by row"},
    })
    progress.say(f"{json_path.name}, {junit_path.name}")
    result.durations = dict(progress.durations)
    result.total_seconds = progress.total  # the report is the last file: its total is the demo's
    report_path = write_report(result, result.folder / "report.md")
    progress.say(f"{report_path.name}: {verdict(result)}")
    models = [m.path for lineage in result.lineages for m in lineage.models]
    models += [lineage.design for lineage in result.lineages if lineage.design is not None]
    return [result.folder / "decision_boundaries.png", result.folder / "errors.png", figure_json,
            json_path, junit_path, report_path, *models]
