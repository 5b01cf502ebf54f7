"""`interop suite [MANIFEST]`: convert and check every model of a manifest, in parallel; exit 1 on any failure."""

from __future__ import annotations

from pathlib import Path

import click

from interop.cli.console import Console, output_options


@click.command(name="suite")
@click.argument("manifest", required=False, type=click.Path(path_type=Path))
@click.option("-k", "keyword", metavar="EXPRESSION",
              help="Run only entries whose name (MODEL[TARGET]) matches, as pytest's -k: "
                   "words, and/or/not, parentheses.")
@click.option("-j", "--jobs", type=int, metavar="N",
              help="Entries run at the same time, each in its own worker process (default: the CPUs here).")
@click.option("--threads", type=int, metavar="N",
              help="Compute threads of each worker process (manifest: threads; default 1).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the entries on a Dask cluster: its scheduler address (tcp://host:8786) or "
                   "scheduler file. Needs interop[distributed].")
@click.option("--shared-path", is_flag=True,
              help="With --scheduler: the workers see this machine's paths (a shared file system), "
                   "so models and results are not sent through the scheduler.")
@click.option("--no-cache", is_flag=True, help="Run every entry again (results are still stored).")
@click.option("--update-golden", is_flag=True, help="Write the golden files from the models' current outputs.")
@click.option("--list", "list_only", is_flag=True, help="List the selected entries and exit.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Write JUnit XML: one test case per (model, target, output).")
@output_options()
def command(
    manifest: Path | None, keyword: str | None, jobs: int | None, threads: int | None, scheduler: str | None,
    shared_path: bool, no_cache: bool, update_golden: bool, list_only: bool,
    junit_path: Path | None, console: Console,
) -> int:
    """Convert and check every model of a manifest (interop.toml or [tool.interop.suite]).

    \b
    Each entry -- one model converted into one target, or a model against its
    golden file -- runs in its own worker process with its own timeout, so a
    crashing or hanging converter fails that entry only. Results are cached by
    the content of the model, the options and the installed plugin versions.
    Exit codes: 0 every entry passed, 1 an entry failed (mismatch, conversion
    error, crash or timeout), 2 bad manifest or usage, 3 no converter route.
    With -q only the failures and the verdict line.
    """
    from interop.cli.common import registry_with_warnings
    from interop.output_files import check_report_destination
    from interop.plugin_api import InteropError
    from interop.suite import manifest as manifest_module
    from interop.suite.runner import SuiteOptions, run_suite, select

    json_file = console.json_file
    if junit_path is not None:
        check_report_destination(junit_path, "--junit")
    if json_file is not None and junit_path is not None and json_file.resolve() == junit_path.resolve():
        raise InteropError("--json-file and --junit name the same file", hint="give each report its own file")
    if shared_path and not scheduler:
        raise InteropError("--shared-path is an option of --scheduler", hint="add --scheduler ADDRESS")
    if jobs is not None and scheduler:
        raise InteropError("--jobs and --scheduler both given: on a cluster, the workers' threads decide",
                           hint="drop --jobs")
    path = manifest if manifest is not None else manifest_module.find_manifest()
    registry = registry_with_warnings()
    loaded = manifest_module.load(path)
    manifest_module.plan_entries(loaded, registry, update_golden)
    if list_only:
        for entry in select(loaded.entries, keyword):
            console.result(f"{entry.id}  {' -> '.join(entry.route)}")
        return 0

    def on_result(result, done: int, total: int) -> None:
        timing = "cached" if result.cached else f"{result.seconds:.1f} s"
        status = "PASS" if result.passed else result.status.upper()
        line = f"[{done}/{total}] {status:<7} {result.id} ({timing})"
        if result.passed:
            console.progress(line)
        else:
            console.failure(line)

    options = SuiteOptions(
        keyword=keyword, jobs=jobs, threads=threads or loaded.threads, no_cache=no_cache,
        update_golden=update_golden, scheduler=scheduler, shared_path=shared_path, on_result=on_result,
    )
    console.start_step("running the suite")  # on a terminal: the elapsed time under the entries' lines
    suite = run_suite(loaded, options, registry=registry)
    console.end_steps()
    if console.quiet:
        console.result("\n".join([*suite.failure_details(), suite.verdict()]))
    else:
        console.result(suite.format_table())
    if console.wants_document:
        console.document(suite.to_dict(), default=str)
    if junit_path is not None:
        suite.write_junit(junit_path)
    return 0 if suite.passed else 1
