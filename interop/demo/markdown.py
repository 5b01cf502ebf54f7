"""report.md: the demo's verdict, accuracies, metrics, engines and versions, timings, and how to reproduce it."""

from __future__ import annotations

import platform
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from interop.demo.engines import runtime_rows
from interop.demo.lineup import FORMAT_LABELS
from interop.demo.model import DemoResult, Lineage, framework_names

TARGET_SECONDS = 60.0


def verdict(result: DemoResult) -> str:
    """``all equivalent`` when every copy passed against its source, else what failed."""
    expected = sum(len(lineage.copies) for lineage in result.lineages)
    pairs = result.check.pairs
    failed = [pair for pair in pairs if not pair.passed]
    if not failed and len(pairs) == expected:
        return "all equivalent"
    if failed:
        return f"NOT all equivalent: {len(failed)} of {len(pairs)} copies differ from their source"
    return f"NOT all equivalent: only {len(pairs)} of {expected} copies were checked"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}e}" if value and (abs(value) < 1e-2 or abs(value) >= 1e4) else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _accuracy(lineage: Lineage, labels: np.ndarray) -> str:
    """Accuracy of each model of the lineage on all Iris samples, from its own runtime's outputs."""
    shares = []
    for model in lineage.models:
        if model.run is not None:
            predicted = model.run.logits[: len(labels)].argmax(axis=1)
            shares.append(f"{model.title.split(' → ')[-1]} {float((predicted == labels).mean()):.1%}")
    return ", ".join(shares)


def accuracy_section(result: DemoResult) -> list[str]:
    rows = []
    for lineage in result.lineages:
        t = lineage.training
        assert t is not None
        seconds = f"{lineage.source.seconds:.1f} s"
        if lineage.import_seconds:
            seconds += f" ({lineage.import_seconds:.1f} s of it importing the framework)"
        elif lineage.in_other_environment:
            seconds += " (in its own environment, overlapping the others)"
        rows.append([lineage.source.title, lineage.started_from, f"{t.train_accuracy:.1%}",
                     f"{t.test_accuracy:.1%}", f"{t.final_loss:.4f}", seconds, _accuracy(lineage, result.iris_y)])
    lines = ["## Accuracy per framework", "",
             "Trained 10 epochs, batch 10, SGD lr 0.1, seed 0, on 120 samples; tested on the 30 held out "
             "(every 5th of each class). Every framework visits the batches in interop's order, so a row "
             "that starts from another row's weights follows its trajectory.", ""]
    lines += _table(["framework", "started from", "train accuracy", "test accuracy", "final loss",
                     "training time", "accuracy on all 150 samples, per copy"], rows)
    for framework, why in result.skipped_frameworks:
        lines += ["", f"{framework} was left out: {why}."]
    lines += _same_design_lines(result)
    return lines


def _same_design_lines(result: DemoResult) -> list[str]:
    """For a row trained from another framework's design: how closely it ended where that framework's row did."""
    lines = []
    for lineage in result.lineages:
        twin = next((l for l in result.lineages if l.design is None and l.framework == lineage.design_framework), None)
        if lineage.design is None or twin is None or lineage.source.run is None or twin.source.run is None:
            continue
        mine, theirs = lineage.source.run.logits, twin.source.run.logits
        agree = float((mine.argmax(1) == theirs.argmax(1)).mean())
        lines += ["", f"**{lineage.source.title}** started from the weights the **{twin.source.title}** row started "
                      f"from and visited the same batches: its logits differ from that row's by at most "
                      f"{_fmt(float(np.abs(mine.astype(np.float64) - theirs).max()))} and its class agrees on "
                      f"{agree:.2%} of the {len(mine)} Iris samples and grid points"
                      + (", so their decision regions are the same." if agree == 1.0 else ".")]
    return lines


def _split_numbers(result: DemoResult, copy_path: Path) -> tuple[str, str, str]:
    """max |Δ| on Iris, max |Δ| on the grid, class agreement on the grid, from the outputs the check judged."""
    count = len(result.iris_x)
    for lineage in result.lineages:
        for copy, diff in lineage.differences():
            if copy.path == copy_path and lineage.source.run is not None and copy.run is not None:
                agree = (copy.run.logits[count:].argmax(1) == lineage.source.run.logits[count:].argmax(1)).mean()
                return _fmt(float(diff[:count].max())), _fmt(float(diff[count:].max())), f"{agree:.2%}"
    return "–", "–", "–"


def _runs_text(plan: list[int]) -> str:
    """``[1, 7, 64, 4096, 4096, 1012]`` -> ``1, 7, 64, 2 × 4096, then 1012``."""
    parts: list[str] = []
    for size in plan:
        if parts and parts[-1][0] == size:
            parts[-1][1] += 1
        else:
            parts.append([size, 1])
    words = [f"{count} × {size}" if count > 1 else str(size) for size, count in parts]
    return ", ".join(words[:-1]) + (", then " if len(words) > 1 else "") + words[-1] if words else "one run"


def metrics_section(result: DemoResult) -> list[str]:
    report = result.check
    grid = result.grid[0].shape
    runs = sorted({tuple(group.get("runs", [])) for group in report.inputs})
    shown = "; ".join(_runs_text(list(plan)) for plan in runs) or "one run"
    lines = ["## Equivalence of every copy with its source", "",
             f"The check engine fed every model the same {len(result.iris_x)} Iris samples followed by the "
             f"{grid[0]}×{grid[1]} grid of the petal plane that the decision-boundary plot is drawn from "
             f"({result.grid[2].shape[0]} points), in runs of {shown} samples. "
             "Metrics are over all logits; the last three columns split them by data set. The figures "
             "and these columns are computed from the very outputs the check judged.", ""]
    rows = []
    for pair in report.pairs:
        data = pair.to_dict()
        for out in data["outputs"]:
            iris_max, grid_max, grid_agree = _split_numbers(result, Path(pair.candidate.path))
            rows.append([
                Path(pair.reference.path).name, Path(pair.candidate.path).name, data["runtime"], data["engine"],
                data["precision"], _fmt(out["max_abs"]), _fmt(out["mean_abs"]), _fmt(out["p99_abs"]),
                f"{out['cosine']:.7f}" if out["cosine"] is not None else "–",
                f"{out['argmax_agreement']:.1%}" if out["argmax_agreement"] is not None else "–",
                f"{_fmt(out['atol'])} / {_fmt(out['rtol'])}", iris_max, grid_max, grid_agree,
                "PASS" if out["passed"] else "FAIL",
            ])
        for problem in data["problems"]:
            rows.append([Path(pair.reference.path).name, Path(pair.candidate.path).name, data["runtime"],
                         data["engine"], data["precision"], *["–"] * 9, f"FAIL: {problem}"])
    lines += _table(["source", "copy", "runtime", "engine", "precision", "max abs", "mean abs", "p99 abs",
                     "cosine", "argmax agreement", "atol / rtol", "max abs (Iris)", "max abs (grid)",
                     "same class (grid)", "verdict"], rows)
    return lines


def engines_section(result: DemoResult) -> list[str]:
    import interop

    formats = set(result.runtimes)
    rows = []
    for row in runtime_rows(interop.list_plugins(), formats):
        used = any(choice.runtime == row["runtime"] for choice in result.runtimes.values())
        status = "used" if used else ("available, not needed" if row["available"] else f"unavailable: {row['reason']}")
        rows.append([row["runtime"], ", ".join(row["formats"]), row["engine"], row["plugin"], status])
    lines = ["## Engines and versions", ""]
    lines += _table(["runtime", "formats", "engine", "plugin", "here"], rows)
    for choice in result.runtimes.values():
        for name, why in choice.passed_over:
            lines += ["", f"**{name}** cannot run on this machine: {why}. Its place is taken by "
                          f"**{choice.runtime}** ({choice.declared_engine}), and the plots and tables say so."]
    versions = dict(result.check.versions)
    versions.setdefault("python", platform.python_version())
    versions.setdefault("numpy", np.__version__)
    try:
        import matplotlib

        versions.setdefault("matplotlib", matplotlib.__version__)
    except ImportError:  # pragma: no cover - the figures could not have been drawn
        pass
    lines += ["", "Versions: " + ", ".join(f"{name} {version}" for name, version in sorted(versions.items())),
              "", f"Machine: {platform.system()} {platform.machine()}, Python {platform.python_version()}."]
    return lines


def timing_section(result: DemoResult) -> list[str]:
    lines = ["## Time", ""]
    rows = [[title, f"{seconds:.1f} s"] for title, seconds in result.durations.items()]
    rows.append(["**total** (until this report was written)", f"**{result.total_seconds:.1f} s**"])
    lines += _table(["stage", "elapsed"], rows)
    met = "met" if result.total_seconds <= TARGET_SECONDS else "missed"
    lines += ["", f"Target: under {TARGET_SECONDS:.0f} s on a 2-core machine — {met}."]
    imports = sum(lineage.import_seconds for lineage in result.lineages)
    if imports:
        lines += ["", f"Importing the frameworks took {imports:.1f} s of that "
                      f"({', '.join(f'{l.framework} {l.import_seconds:.1f} s' for l in result.lineages if l.import_seconds)}); "
                      "training and saving took "
                      f"{', '.join(f'{l.framework} {l.source.seconds - l.import_seconds:.1f} s' for l in result.lineages if l.import_seconds)}. "
                      "Work in another environment runs in the background while the others train."]
    steps = [f"{m.path.name} {m.seconds:.1f} s" for lineage in result.lineages for m in lineage.models]
    lines += ["", "Time to make each model (training, or conversion from the file before it; work in "
                  "another environment overlaps the rest): " + ", ".join(steps) + "."]
    return lines


def reproduce_section(result: DemoResult) -> list[str]:
    q = shlex.quote
    folder = str(result.folder)
    lines = ["## Reproduce", "", "Everything above, in one command:", "", "```sh",
             f"interop demo -o {q(folder)} --force", "```", "",
             "Step by step, with the same defaults (the demo checks both data sets in one pass):", "", "```sh"]
    for setup in dict.fromkeys(l.environment_setup for l in result.lineages if l.environment_setup):
        lines.append(f"# create the plugin's own Python environment first: {setup}")
    for lineage in result.lineages:
        source, first, *others = (str(m.path) for m in lineage.models)
        if lineage.design is not None:
            lines.append(f"interop train --framework {lineage.design_framework} --epochs 0 -o {q(str(lineage.design))}")
            lines.append(f"interop train --framework {lineage.framework} --init {q(str(lineage.design))} -o {q(source)}")
        else:
            lines.append(f"interop train --framework {lineage.framework} -o {q(source)}")
        lines.append(f"interop convert {q(source)} -o {q(first)}")
        lines += [f"interop convert {q(first)} -o {q(other)}" for other in others]
        models = " ".join(q(f"{m.path}@{m.runtime}") for m in lineage.models)
        for dataset in ("iris", "iris-grid"):
            lines.append(f"interop check {models} --dataset {dataset}")
    lines += ["```"]
    return lines


def write_report(result: DemoResult, path: Path) -> Path:
    """Write report.md at ``path``."""
    names = framework_names(result.lineages)
    copies = sum(len(l.copies) for l in result.lineages)
    formats = " and ".join(dict.fromkeys(FORMAT_LABELS.get(c.format, c.format) for l in result.lineages
                                         for c in l.copies))
    lines = [
        "# interop demo: one network, several frameworks, every copy checked", "",
        f"The reference Iris MLP (petal length and width → Dense(64, ReLU) → Dense(3) logits) was trained in "
        f"{names}; each model was converted to {formats}, and each of the {copies} copies was run and "
        "compared with its own source.", "",
        f"**Verdict: {verdict(result)}** ({len(result.check.pairs)} pairs checked, "
        f"{len(result.check.failures)} failure(s)).", "",
        "![decision regions](decision_boundaries.png)", "", "![differences](errors.png)", "",
    ]
    for section in (accuracy_section, metrics_section, engines_section, timing_section, reproduce_section):
        lines += section(result) + [""]
    files = sorted(p.name for p in result.folder.iterdir())
    lines += ["## Files", "", ", ".join(f"`{name}`" for name in files + (["report.md"] if "report.md" not in files else [])), ""]
    path.write_text("\n".join(lines))
    return path
