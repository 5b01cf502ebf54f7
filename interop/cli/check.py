"""`interop check REFERENCE CANDIDATE...`: compare copies of a model on every runtime; exit 1 on a mismatch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from interop.cli.console import Console, output_options

if TYPE_CHECKING:
    from interop.checker.report import Report

GROUP_SEPARATOR = "+"
FAILURES_FOLDER = "interop-check-failures"


def split_groups(models: tuple[str, ...], golden: Path | None) -> list[tuple[str | None, list[str]]]:
    """``a b + c d`` -> ``[(a, [b]), (c, [d])]``; with --golden every model is a candidate."""
    from interop.plugin_api import InteropError

    groups: list[list[str]] = [[]]
    for item in models:
        if item == GROUP_SEPARATOR:
            groups.append([])
        else:
            groups[-1].append(item)
    if any(not group for group in groups):
        raise InteropError(f"an empty group around {GROUP_SEPARATOR!r}", hint="write REF CAND... + REF CAND...")
    if golden is not None:
        if len(groups) > 1:
            raise InteropError("--golden is the one reference: groups separated by '+' cannot be used with it")
        return [(None, groups[0])]
    if not models:
        raise InteropError("no models given", hint="interop check REFERENCE CANDIDATE [CANDIDATE ...]")
    return [(group[0], group[1:]) for group in groups]


def default_failures_folder(json_file: Path | None, junit_path: Path | None) -> Path | None:
    """Next to the report file when one is written; otherwise nothing is saved unless asked for."""
    for report_path in (json_file, junit_path):
        if report_path is not None:
            return Path(report_path).parent / FAILURES_FOLDER
    return None


def model_paths(models: tuple[str, ...], *more: Path | None) -> list[Path]:
    """The existing files and folders the check reads (MODEL@RUNTIME stripped to MODEL)."""
    paths: list[Path] = []
    for item in models:
        if item == GROUP_SEPARATOR:
            continue
        path = Path(item)
        if not path.exists() and not path.is_symlink() and "@" in item:
            path = Path(item.rpartition("@")[0])
        if path.exists():
            paths.append(path)
    paths.extend(p for p in more if p is not None and Path(p).exists())
    return paths


def check_report_paths(
    reads: list[Path], json_file: Path | None, junit_path: Path | None, save_golden: Path | None,
    save_failures: Path | None,
) -> None:
    """Refuse, before any model runs, a report path whose writing would destroy something (exit 2)."""
    from interop.output_files import check_report_destination, refuse_overlap, same_file, same_or_inside
    from interop.plugin_api import InteropError

    reports = [(what, Path(path)) for what, path in (
        ("--json-file", json_file), ("--junit", junit_path), ("--save-golden", save_golden)) if path is not None]
    for index, (what, path) in enumerate(reports):
        check_report_destination(path, what)
        refuse_overlap(path, reads, what)
        for other_what, other in reports[:index]:
            if same_file(path, other):
                raise InteropError(f"{other_what} and {what} name the same file {path}",
                                   hint="give each report its own file")
    if save_failures is None:
        return
    if save_failures.is_symlink() or (save_failures.exists() and not save_failures.is_dir()):
        raise InteropError(f"--save-failures {save_failures} is not a folder",
                           hint="name a folder (it is created when a failure is saved)")
    for source in reads:
        if same_or_inside(save_failures, source):
            raise InteropError(f"--save-failures {save_failures} is inside {source}, which this check reads",
                               hint="name another folder")


def quiet_lines(report: "Report") -> list[str]:
    """With -q: one line per failure (pair, output, why), the warnings and the verdict."""
    lines = []
    for pair, output in report.failures:
        if output is None:
            continue
        lines.append(f"FAIL {pair.name}: {output.name}: {output.message}")
    for pair in report.pairs:
        lines.extend(f"FAIL {pair.name}: {problem}" for problem in pair.problems)
        if pair.located is not None:
            lines.append(f"LOCATE {pair.name}: {pair.located.message}")
    table = report.format_table().splitlines()
    lines.extend(line for line in table if line.startswith("warning:"))
    lines.append(table[-1])
    return lines


@click.command(name="check")
@click.argument("models", nargs=-1)
@click.option("--golden", type=click.Path(path_type=Path),
              help="Use the outputs saved in this golden .npz as the reference.")
@click.option("--save-golden", type=click.Path(path_type=Path),
              help="Save the inputs and the reference's outputs as a golden .npz.")
@click.option("--inputs", "inputs_path", type=click.Path(path_type=Path),
              help="An .npz of inputs named like the model's inputs.")
@click.option("--dataset", type=click.Choice(["iris", "iris-grid"]),
              help="A built-in data set for 2-feature models (the reference MLP).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of random inputs.")
@click.option("--range", "value_ranges", multiple=True, metavar="[NAME=]LOW,HIGH",
              help="Range of random input values: LOW,HIGH for every input (default -1,1; integers 0,1 "
                   "or an embedding's index range), NAME=LOW,HIGH for one input (repeatable).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,...",
              help="Shape of an input's random values, for its dynamic dimensions; axis 0 is the batch "
                   "size of each run (repeatable).")
@click.option("--samples", type=int, help="Number of samples (random inputs; first N of a data set).")
@click.option("--batch-sizes", metavar="N,N,...",
              help="Batch sizes of the first runs when the batch axis is dynamic [default: 1,7,64, "
                   "or --input-shape's axis 0].")
@click.option("--max-batch", default=4096, show_default=True, type=int,
              help="Batch size of the runs after --batch-sizes.")
@click.option("--atol", type=float, help="Absolute tolerance for every output.")
@click.option("--rtol", type=float, help="Relative tolerance for every output.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="NAME=ATOL,RTOL",
              help="Tolerance of one output (repeatable).")
@click.option("--check-error-stat", "error_stats", multiple=True, metavar="[NAME=]STAT",
              help="Error statistic judged: scaled (default), elementwise, max, mean, median or p99; "
                   "NAME=STAT for one output (repeatable).")
@click.option("--no-project-config", is_flag=True,
              help="Ignore [tool.interop.check] in the nearest pyproject.toml.")
@click.option("--runtime", "runtimes", multiple=True, metavar="FORMAT=RUNTIME",
              help="Runtime for every model of a format (repeatable); MODEL@RUNTIME picks one model's.")
@click.option("--allow-missing-runtime", is_flag=True,
              help="Skip (with a warning) a candidate no runtime here can run, instead of exit 3.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write a JUnit XML report.")
@click.option("--save-failures", type=click.Path(path_type=Path),
              help=f"Save the failing samples in this folder (default: {FAILURES_FOLDER} next to "
                   "--json-file/--junit; none without a report).")
@click.option("--oracle", type=click.Choice(["auto", "fp64", "none"]), default="auto", show_default=True,
              help="Judge each copy against the model computed in float64: auto where cheap, fp64 always "
                   "(converting the reference to ONNX if needed), none never.")
@click.option("--oracle-samples", type=int, default=None,
              help="Samples the fp64 oracle computes besides the failing ones [default: 16].")
@click.option("--locate", is_flag=True,
              help="For a failing pair, find the first operation whose output diverges while its inputs agree.")
@output_options(reads=lambda params: model_paths(params["models"], params.get("golden"), params.get("inputs_path")))
def command(
    models: tuple[str, ...], golden: Path | None, save_golden: Path | None, inputs_path: Path | None,
    dataset: str | None, seed: int, value_ranges: tuple[str, ...], input_shapes: tuple[str, ...],
    samples: int | None, batch_sizes: str | None,
    max_batch: int, atol: float | None, rtol: float | None, tolerances: tuple[str, ...],
    error_stats: tuple[str, ...], no_project_config: bool, runtimes: tuple[str, ...], allow_missing_runtime: bool,
    junit_path: Path | None, save_failures: Path | None, oracle: str,
    oracle_samples: int | None, locate: bool, console: Console,
) -> int:
    """Check that every CANDIDATE computes the same outputs as REFERENCE.

    \b
    Each model runs on a runtime of its format (MODEL@RUNTIME or --runtime
    FORMAT=RUNTIME to choose). Several lineages in one run: separate groups
    with '+', e.g.  interop check A A.onnx + B B.onnx  (A and B trained
    in two frameworks, each with its ONNX copy)
    With -q only the failures (one line each), warnings and the verdict.
    Exit codes: 0 all pass, 1 a mismatch, 2 bad usage or input, 3 no runtime
    for a model here (unless --allow-missing-runtime), 4 a runtime failed.
    """
    from interop.checker import junit
    from interop.checker.runner import make_options, run_groups
    from interop.cli.common import registry_with_warnings
    from interop.plugin_api import InteropError

    json_file, quiet = console.json_file, console.quiet
    failures_folder = save_failures or default_failures_folder(json_file, junit_path)
    check_report_paths(model_paths(models, golden, inputs_path), json_file, junit_path, save_golden,
                       failures_folder)
    registry = registry_with_warnings()
    groups = split_groups(models, golden)
    if save_golden is None and all(not candidates for _, candidates in groups):
        raise InteropError("no candidate to compare with the reference",
                           hint="interop check REFERENCE CANDIDATE [CANDIDATE ...] "
                                "(or REFERENCE --save-golden FILE.npz to save its outputs)")

    options = make_options(
        inputs=inputs_path, dataset=dataset, seed=seed, value_range=list(value_ranges) or None,
        input_shapes=list(input_shapes), samples=samples,
        batch_sizes=batch_sizes, max_batch=max_batch, atol=atol, rtol=rtol, tolerances=list(tolerances),
        error_stats=list(error_stats), project_config=not no_project_config, runtimes=list(runtimes), save_golden=save_golden,
        allow_missing_runtime=allow_missing_runtime,
        save_failures=failures_folder,
        locate=locate,
        oracle=oracle,
        oracle_samples=oracle_samples,
        on_progress=console.announce,
    )
    console.start_step("loading the models")  # on a terminal; each run then names its model and engine
    report = run_groups(groups, options, golden_path=golden, registry=registry)
    console.end_steps()

    lines = quiet_lines(report) if quiet else report.format_table().splitlines()
    if not report.passed and failures_folder is None and not quiet:
        lines.append("hint: pass --save-failures DIR (or --json-file/--junit) to save the failing samples "
                     "and a command replaying each")
    console.result("\n".join(lines))
    if save_golden is not None:
        console.progress(f"saved golden file {save_golden}")
    if console.wants_document:
        console.document(report.to_dict())  # --json-file: its folder is made, CI report folders often do not exist yet
    if junit_path is not None:
        junit_path.parent.mkdir(parents=True, exist_ok=True)
        junit.write(report, junit_path)
    return 0 if report.passed else 1
