"""`interop check REFERENCE CANDIDATE...`: compare copies of a model on every runtime; exit 1 on a mismatch."""

from __future__ import annotations

from pathlib import Path

import click

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


def default_failures_folder(json_path: str | None, junit_path: Path | None) -> Path:
    """Next to the report file when one is written, else in the working directory."""
    for report_path in (json_path if json_path not in (None, "-") else None, junit_path):
        if report_path is not None:
            return Path(report_path).parent / FAILURES_FOLDER
    return Path(FAILURES_FOLDER)


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
    reads: list[Path], json_path: str | None, junit_path: Path | None, save_golden: Path | None,
    save_failures: Path,
) -> None:
    """Refuse, before any model runs, a report path whose writing would destroy something (exit 2)."""
    from interop.outputs import check_report_destination, refuse_overlap, same_file, same_or_inside
    from interop.plugin_api import InteropError

    reports = [(what, Path(path)) for what, path in (
        ("--json", json_path if json_path != "-" else None), ("--junit", junit_path),
        ("--save-golden", save_golden)) if path is not None]
    for index, (what, path) in enumerate(reports):
        check_report_destination(path, what)
        refuse_overlap(path, reads, what)
        for other_what, other in reports[:index]:
            if same_file(path, other):
                raise InteropError(f"{other_what} and {what} name the same file {path}",
                                   hint="give each report its own file")
    if save_failures.is_symlink() or (save_failures.exists() and not save_failures.is_dir()):
        raise InteropError(f"--save-failures {save_failures} is not a folder",
                           hint="name a folder (it is created when a failure is saved)")
    for source in reads:
        if same_or_inside(save_failures, source):
            raise InteropError(f"--save-failures {save_failures} is inside {source}, which this check reads",
                               hint="name another folder")


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
@click.option("--range", "value_range", default="-1,1", show_default=True, metavar="LOW,HIGH",
              help="Range of random input values.")
@click.option("--samples", type=int, help="Number of samples (random inputs; first N of a data set).")
@click.option("--batch-sizes", default="1,7,64", show_default=True, metavar="N,N,...",
              help="Batch sizes of the first runs when the batch axis is dynamic.")
@click.option("--max-batch", default=4096, show_default=True, type=int,
              help="Batch size of the runs after --batch-sizes.")
@click.option("--atol", type=float, help="Absolute tolerance for every output.")
@click.option("--rtol", type=float, help="Relative tolerance for every output.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="NAME=ATOL,RTOL",
              help="Tolerance of one output (repeatable).")
@click.option("--no-project-config", is_flag=True,
              help="Ignore [tool.interop.check] in the nearest pyproject.toml.")
@click.option("--runtime", "runtimes", multiple=True, metavar="FORMAT=RUNTIME",
              help="Runtime for every model of a format (repeatable); MODEL@RUNTIME picks one model's.")
@click.option("--allow-missing-runtime", is_flag=True,
              help="Skip (with a warning) a candidate no runtime here can run, instead of exit 3.")
@click.option("--json", "json_path", metavar="PATH", help="Write the JSON report to PATH ('-' for stdout).")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), help="Write a JUnit XML report.")
@click.option("--save-failures", type=click.Path(path_type=Path),
              help=f"Folder for the worst samples of failures (default: {FAILURES_FOLDER} next to the report).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict line.")
def command(
    models: tuple[str, ...], golden: Path | None, save_golden: Path | None, inputs_path: Path | None,
    dataset: str | None, seed: int, value_range: str, samples: int | None, batch_sizes: str,
    max_batch: int, atol: float | None, rtol: float | None, tolerances: tuple[str, ...],
    no_project_config: bool, runtimes: tuple[str, ...], allow_missing_runtime: bool,
    json_path: str | None, junit_path: Path | None, save_failures: Path | None, quiet: bool,
) -> int:
    """Check that every CANDIDATE computes the same outputs as REFERENCE.

    \b
    Each model runs on a runtime of its format (MODEL@RUNTIME or --runtime
    FORMAT=RUNTIME to choose). Several lineages in one run: separate groups
    with '+', e.g.  interop check a.keras a.onnx + b.pt2 b.onnx
    Exit codes: 0 all pass, 1 a mismatch, 2 bad usage or input, 3 no runtime
    for a model here (unless --allow-missing-runtime), 4 a runtime failed.
    """
    import json

    from interop.checker import junit
    from interop.checker.runner import make_options, run_groups
    from interop.cli.common import registry_with_warnings
    from interop.outputs import atomic_output

    failures_folder = save_failures or default_failures_folder(json_path, junit_path)
    check_report_paths(model_paths(models, golden, inputs_path), json_path, junit_path, save_golden,
                       failures_folder)
    registry = registry_with_warnings()
    groups = split_groups(models, golden)
    to_stdout = json_path == "-"

    def progress(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    options = make_options(
        inputs=inputs_path, dataset=dataset, seed=seed, value_range=value_range, samples=samples,
        batch_sizes=batch_sizes, max_batch=max_batch, atol=atol, rtol=rtol, tolerances=list(tolerances),
        project_config=not no_project_config, runtimes=list(runtimes), save_golden=save_golden,
        allow_missing_runtime=allow_missing_runtime,
        save_failures=failures_folder,
        on_progress=progress,
    )
    report = run_groups(groups, options, golden_path=golden, registry=registry)

    table = report.format_table()
    if quiet:  # the verdict and the warnings only
        table = "\n".join(line for line in table.splitlines() if line.startswith(("warning:", "PASSED", "FAILED")))
    click.echo(table, err=to_stdout)
    if save_golden is not None:
        click.echo(f"saved golden file {save_golden}", err=True)
    document = json.dumps(report.to_dict(), indent=2)
    if to_stdout:
        click.echo(document)
    elif json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)  # CI report folders often do not exist yet
        with atomic_output(Path(json_path), force=True) as tmp:
            tmp.write_text(document + "\n")
    if junit_path is not None:
        junit_path.parent.mkdir(parents=True, exist_ok=True)
        junit.write(report, junit_path)
    return 0 if report.passed else 1
