"""Running a suite: select entries, reuse cached results, run the rest in parallel, collect.

Locally, ``jobs`` threads each drive one worker process at a time
(:func:`interop.suite.process.run_entry`); with a scheduler address the same
function runs as Dask tasks on the cluster's workers
(:mod:`interop.suite.distributed`). Either way results come back as documents,
are stored in the cache folder under the entry's key and returned in manifest
order, whatever order they finished in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.plugin_api import InteropError
from interop.suite import manifest as manifest_module
from interop.suite.cache import Cache, entry_key, environment_fingerprint
from interop.suite.manifest import Entry, Manifest
from interop.suite.results import EntryResult, SuiteResult


@dataclass
class Job:
    """An entry ready to run: its worker spec, cache key and files."""

    entry: Entry
    spec: dict[str, Any]
    key: str


@dataclass
class SuiteOptions:
    """How to run a manifest (the ``interop suite`` options, as values)."""

    keyword: str | None = None
    jobs: int | None = None
    threads: int | None = None
    no_cache: bool = False
    update_golden: bool = False
    scheduler: str | None = None
    shared_path: bool = False
    on_result: Callable[[EntryResult, int, int], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- -k


_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def keyword_matches(expression: str, name: str) -> bool:
    """pytest's ``-k``: words match as case-insensitive substrings, joined by and/or/not and parentheses."""
    tokens = [t for t in _TOKEN.findall(expression) if t]
    if not tokens:
        return True
    position = 0
    lowered = name.lower()

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def expr() -> bool:
        value = term()
        while peek() == "or":
            take()
            value = term() or value
        return value

    def term() -> bool:
        value = factor()
        while peek() == "and":
            take()
            value = factor() and value
        return value

    def factor() -> bool:
        token = peek()
        if token is None:
            raise InteropError(f"-k {expression!r} ends too early", hint='for example -k "iris and not fp16"')
        take()
        if token == "not":
            return not factor()
        if token == "(":
            value = expr()
            if peek() != ")":
                raise InteropError(f"-k {expression!r}: a '(' is not closed")
            take()
            return value
        if token in ("and", "or", ")"):
            raise InteropError(f"-k {expression!r}: unexpected {token!r}", hint='for example -k "iris and not fp16"')
        return token.lower() in lowered

    result = expr()
    if position != len(tokens):
        raise InteropError(f"-k {expression!r}: unexpected {tokens[position]!r}")
    return result


def select(entries: Iterable[Entry], keyword: str | None) -> list[Entry]:
    """The entries whose id (``model[target]``) matches ``keyword``."""
    entries = list(entries)
    if not keyword:
        return entries
    keyword_matches(keyword, "")  # a malformed expression fails even when nothing would match
    return [entry for entry in entries if keyword_matches(keyword, entry.id)]


# --------------------------------------------------------------------------- specs and jobs


def make_spec(entry: Entry, manifest: Manifest, update_golden: bool) -> dict[str, Any]:
    """The JSON document the worker process gets for ``entry``."""
    target = None
    if entry.target is not None:
        target = {"name": entry.target.name, "format": entry.target.format, "options": entry.target.options,
                  "runtime": entry.target.runtime, "tolerance": entry.target.tolerance}
    return {
        "id": entry.id,
        "model": str(entry.path.resolve()),
        "source_format": entry.source_format,
        "target": target,
        "check": entry.check,
        "golden": str(entry.golden.resolve()) if entry.golden is not None else None,
        "update_golden": bool(update_golden and entry.target is None),
        "pyproject": str(manifest.pyproject) if manifest.pyproject else None,
    }


def project_check_table(manifest: Manifest) -> Any:
    if manifest.pyproject is None:
        return None
    from interop.checker.tolerances import load_toml, table_at

    return table_at(load_toml(manifest.pyproject), ("tool", "interop", "check"), manifest.pyproject)


def plan(manifest: Manifest, options: SuiteOptions, registry: Any) -> tuple[list[Job], dict[str, Any]]:
    """Every selected entry as a job with its cache key; and the environment fingerprint."""
    fingerprint = environment_fingerprint(registry)
    check_table = project_check_table(manifest)
    jobs = [make_job(entry, manifest, options.update_golden, fingerprint, check_table)
            for entry in select(manifest.entries, options.keyword)]
    return jobs, fingerprint


def make_job(entry: Entry, manifest: Manifest, update_golden: bool, fingerprint: dict[str, Any],
             check_table: Any) -> Job:
    """``entry`` with its worker spec and cache key (this hashes the files it reads)."""
    spec = make_spec(entry, manifest, update_golden)
    files = {role: path for role, path in entry.files.items() if not (role == "golden" and spec["update_golden"])}
    return Job(entry, spec, entry_key(spec, files, fingerprint, check_table))


# --------------------------------------------------------------------------- running


def run_suite(manifest: str | Path | Manifest, options: SuiteOptions | None = None, registry: Any = None,
              **kwargs: Any) -> SuiteResult:
    """Run a manifest; returns the results of every selected entry (``kwargs`` are SuiteOptions fields)."""
    from interop.plugin_registry import get_registry

    started = time.perf_counter()
    options = options or SuiteOptions(**kwargs)
    registry = registry or get_registry()
    if not isinstance(manifest, Manifest):
        manifest = manifest_module.load(manifest)
        manifest_module.plan_entries(manifest, registry, options.update_golden)
    _check_counts(options)
    jobs, fingerprint = plan(manifest, options, registry)
    if not jobs:
        raise InteropError(f"-k {options.keyword!r} selects none of the {len(manifest.entries)} entries",
                           hint="interop suite --list shows their names")
    cache = Cache(manifest.cache_dir)
    results: dict[str, EntryResult] = {}
    pending: list[Job] = []
    for job in jobs:
        result = cached_result(job, cache, manifest, options)
        if result is not None:
            results[job.entry.id] = result
            _announce(options, result, len(results), len(jobs))
        else:
            pending.append(job)
    # Longest first (by the last run's time; never-run entries first): the last entries to
    # start are short, so the workers finish together.
    pending.sort(key=lambda job: -(cache.previous_seconds(job.key) or float("inf")))
    executor = "local"
    if pending:
        if options.scheduler:
            from interop.suite import distributed

            executor = f"dask {options.scheduler}"
            finished = distributed.run_jobs(pending, cache, options, fingerprint)
        else:
            finished = _run_local(pending, cache, options)
        for job, document, seconds in finished:
            result = _finish(job, document, seconds, cache, manifest)
            results[job.entry.id] = result
            _announce(options, result, len(results), len(jobs))
    suite = SuiteResult(manifest=str(manifest.path), environment=fingerprint, executor=executor)
    suite.entries = [results[job.entry.id] for job in jobs]
    suite.seconds = time.perf_counter() - started
    return suite


def _check_counts(options: SuiteOptions) -> None:
    for name in ("jobs", "threads"):
        value = getattr(options, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InteropError(f"--{name} must be a positive integer, got {value!r}")


def _announce(options: SuiteOptions, result: EntryResult, done: int, total: int) -> None:
    if options.on_result is not None:
        options.on_result(result, done, total)


def execute(job: Job, cache: Cache, threads: int, scratches: list[Path] | None = None,
            ) -> tuple[Job, dict[str, Any], float]:
    """Run one job in a worker process on this machine (in a scratch folder of the cache, listed in ``scratches``)."""
    from interop.suite.process import run_entry

    scratch = cache.scratch(job.key)
    if scratches is not None:
        scratches.append(scratch)
    started = time.perf_counter()
    document = run_entry(job.spec, scratch, job.entry.timeout, threads)
    document["_scratch"] = str(scratch)
    return job, document, time.perf_counter() - started


def cached_result(job: Job, cache: Cache, manifest: Manifest, options: SuiteOptions) -> EntryResult | None:
    """The stored result of ``job`` when the options allow reusing it and there is one."""
    stored = None if options.no_cache or job.spec["update_golden"] else cache.lookup(job.key)
    if stored is None:
        return None
    return _entry_result(job, stored, cache.entry_dir(job.key), manifest, cached=True)


def run_job(job: Job, cache: Cache, manifest: Manifest, options: SuiteOptions) -> EntryResult:
    """One job's result: from the cache when allowed and present, else run here and stored."""
    return cached_result(job, cache, manifest, options) or _finish(
        *execute(job, cache, options.threads or 1), cache, manifest)


def _run_local(jobs: list[Job], cache: Cache, options: SuiteOptions) -> Iterable[tuple[Job, dict[str, Any], float]]:
    """Run jobs on ``options.jobs`` threads, each driving one worker process; yields as they finish."""
    from interop.suite.process import kill_all

    workers = min(options.jobs or default_jobs(), len(jobs))
    threads = options.threads or 1
    scratches: list[Path] = []
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="interop-suite")
    futures = [pool.submit(execute, job, cache, threads, scratches) for job in jobs]
    try:
        for future in as_completed(futures):
            yield future.result()
    except BaseException:  # Ctrl-C, SIGTERM: stop the workers, leave no half-written folder
        for future in futures:
            future.cancel()
        kill_all()
        pool.shutdown(wait=True, cancel_futures=True)
        for scratch in scratches:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _finish(job: Job, document: dict[str, Any], seconds: float, cache: Cache, manifest: Manifest) -> EntryResult:
    """Store a finished run under its key (paths rewritten to the stored folder); install a new golden file."""
    scratch = Path(document.pop("_scratch"))
    renames = document.pop("_renames", {})
    final = cache.store(job.key, scratch)
    document = _rewrite(document, {**renames, str(scratch): str(final)})
    (final / "result.json").write_text(json.dumps(document, indent=1, default=str))
    result = _entry_result(job, document, final, manifest, cached=False)
    result.seconds = seconds
    written = document.get("golden_written")
    if written and job.entry.golden is not None and result.passed:
        _install_golden(final / written, job.entry.golden)
    return result


def _install_golden(source: Path, destination: Path) -> None:
    import shutil

    from interop.output_files import atomic_output

    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(destination, force=True) as tmp:
        shutil.copyfile(source, tmp)


def _rewrite(value: Any, renames: dict[str, str]) -> Any:
    """``value`` with every path prefix in ``renames`` replaced inside its strings."""
    if isinstance(value, str):
        for old, new in renames.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _rewrite(v, renames) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, renames) for v in value]
    return value


def _entry_result(job: Job, document: dict[str, Any], folder: Path, manifest: Manifest, cached: bool) -> EntryResult:
    entry = job.entry
    artifact = (document.get("conversion") or {}).get("artifact")
    route = (document.get("conversion") or {}).get("route") or entry.route
    return EntryResult(
        id=entry.id, model=entry.model, target=entry.target_name,
        format=entry.target.format if entry.target else entry.source_format,
        route=list(route), status=str(document.get("status", "error")), cached=cached,
        seconds=float(document.get("seconds") or 0.0), error=document.get("error"),
        conversion=document.get("conversion"), check=document.get("check"),
        artifact=_shown(folder / artifact, manifest.root) if artifact else None,
        folder=_shown(folder, manifest.root), key=job.key,
    )


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
