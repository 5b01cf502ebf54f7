"""`interop suite [MANIFEST]`: convert and check every model of a manifest, in parallel; exit 1 on any failure."""

from __future__ import annotations

from pathlib import Path

import click

from interop.cli.console import library_log_options


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
@click.option("--json", "json_stdout", is_flag=True, help="Print the JSON results on stdout (the table goes to stderr).")
@click.option("--json-file", type=click.Path(path_type=Path), metavar="PATH", help="Write the JSON results to PATH.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path), metavar="PATH",
              help="Write JUnit XML: one test case per (model, target, output).")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the verdict line.")
@library_log_options()
def command(
    manifest: Path | None, keyword: str | None, jobs: int | None, threads: int | None, scheduler: str | None,
    shared_path: bool, no_cache: bool, update_golden: bool, list_only: bool, json_stdout: bool,
    json_file: Path | None, junit_path: Path | None, quiet: bool,
) -> int:
    """Convert and check every model of a manifest (interop.toml or [tool.interop.suite]).

    \b
    Each entry -- one model converted into one target, or a model against its
    golden file -- runs in its own worker process with its own timeout, so a
    crashing or hanging converter fails that entry only. Results are cached by
    the content of the model, the options and the installed plugin versions.
    Exit codes: 0 every entry passed, 1 an entry failed (mismatch, conversion
    error, crash or timeout), 2 bad manifest or usage, 3 no converter route.
    """
    import json

    from interop.cli.common import registry_with_warnings
    from interop.output_files import atomic_output, check_report_destination
    from interop.plugin_api import InteropError
    from interop.suite import manifest as manifest_module
    from interop.suite.runner import SuiteOptions, run_suite, select

    for what, path in (("--json-file", json_file), ("--junit", junit_path)):
        if path is not None:
            check_report_destination(path, what)
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
    manifest_module.resolve(loaded, registry, update_golden)
    if list_only:
        for entry in select(loaded.entries, keyword):
            click.echo(f"{entry.id}  {' -> '.join(entry.route)}")
        return 0
    table_stream_err = json_stdout

    def on_result(result, done: int, total: int) -> None:
        if quiet and result.passed:
            return
        timing = "cached" if result.cached else f"{result.seconds:.1f} s"
        status = "PASS" if result.passed else result.status.upper()
        click.echo(f"[{done}/{total}] {status:<7} {result.id} ({timing})", err=True)

    options = SuiteOptions(
        keyword=keyword, jobs=jobs, threads=threads or loaded.threads, no_cache=no_cache,
        update_golden=update_golden, scheduler=scheduler, shared_path=shared_path, on_result=on_result,
    )
    suite = run_suite(loaded, options, registry=registry)
    table = suite.format_table()
    if quiet:
        table = "\n".join([*suite.failure_details(), suite.verdict()])
    click.echo(table, err=table_stream_err)
    document = json.dumps(suite.to_dict(), indent=2, default=str)
    if json_stdout:
        click.echo(document)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(json_file, force=True) as tmp:
            tmp.write_text(document + "\n")
    if junit_path is not None:
        suite.write_junit(junit_path)
    return 0 if suite.passed else 1
