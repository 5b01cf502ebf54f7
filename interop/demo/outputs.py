"""Stage 4 of the demo: the figures, their layout, the check files and report.md, written into the folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interop.datasets import CLASS_NAMES
from interop.demo.plots import ErrorSeries, RegionPanel, decision_boundaries, error_distributions
from interop.demo.progress import Progress

if TYPE_CHECKING:
    from interop.demo.pipeline import DemoResult, Lineage, Model


def panel_title(model: Model) -> str:
    """``PyTorch → Core ML · coreml-interpreter`` over the engine that computed the panel."""
    engine = model.run.engine if model.run else model.runtime
    return f"{model.title} · {model.runtime}\n{engine}"


def grid_classes(model: Model, iris_count: int, shape: tuple[int, ...]) -> np.ndarray:
    """The class a model predicts at every grid point (its outputs after the Iris samples)."""
    assert model.run is not None
    return model.run.logits[iris_count:].argmax(axis=1).reshape(shape)


def differences(lineage: Lineage) -> list[tuple[Model, np.ndarray]]:
    """|copy - source| of every logit, per copy of ``lineage``, from the runs made for the plots."""
    assert lineage.source.run is not None
    reference = lineage.source.run.logits.astype(np.float64)
    return [(copy, np.abs(copy.run.logits.astype(np.float64) - reference)) for copy in lineage.copies
            if copy.run is not None]


def interpreter_footnote(result: DemoResult) -> str:
    """Names each runtime passed over because it cannot run here, and what replaced it."""
    notes = []
    for choice in result.runtimes.values():
        for name, why in choice.passed_over:
            notes.append(f"Runtime {name} is unavailable here: {why}. Its panels are computed by "
                         f"{choice.runtime}, the {choice.declared_engine}.")
    return " ".join(notes)


def _atol(result: DemoResult, copy: Model) -> float | None:
    for pair in result.check.pairs:
        if Path(pair.candidate.path) == copy.path:
            for out in pair.outputs:
                if out.tolerance is not None:
                    return float(out.tolerance.atol)
    return None


def write_figures(result: DemoResult) -> dict[str, Any]:
    """decision_boundaries.png and errors.png; returns both layouts."""
    xx, yy, _ = result.grid
    iris_count = len(result.iris_x)
    panels = []
    for row, lineage in enumerate(result.lineages):
        for col, model in enumerate(lineage.models):
            panels.append(RegionPanel(row, col, panel_title(model), grid_classes(model, iris_count, xx.shape), {
                "framework": lineage.framework, "format": model.format, "runtime": model.runtime,
                "engine": model.run.engine if model.run else "", "file": model.path.name,
            }))
    regions = decision_boundaries(
        result.folder / "decision_boundaries.png", panels, (xx, yy), result.iris_x, result.iris_y, CLASS_NAMES,
        "Iris MLP decision regions: one row per training framework, one panel per copy and runtime",
        interpreter_footnote(result),
    )
    groups = []
    for lineage in result.lineages:
        series = [ErrorSeries(f"{copy.title.split(' → ')[-1]} on {copy.runtime}", diff, _atol(result, copy))
                  for copy, diff in differences(lineage)]
        groups.append((f"{lineage.source.title} source vs its copies ({len(result.iris_x) + xx.size} samples)",
                       series))
    errors = error_distributions(result.folder / "errors.png", groups,
                                 "Absolute differences of every logit, copy vs source")
    return {"decision_boundaries": regions, "errors": errors}


def write_outputs(result: DemoResult, progress: Progress) -> list[Path]:
    """Write every demo file except the models (already there); returns all files of the demo."""
    from interop.demo.equivalence import write_reports
    from interop.demo.report import verdict, write_report

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
    return [result.folder / "decision_boundaries.png", result.folder / "errors.png", figure_json,
            json_path, junit_path, report_path, *models]
