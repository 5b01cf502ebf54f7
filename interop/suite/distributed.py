"""Running suite entries on a Dask cluster: ``interop suite --scheduler ADDRESS``.

Dask distributed does the scheduling; interop only submits one task per entry. Each
task runs :func:`interop.suite.process.run_entry` on the worker's machine, so an
entry is a worker *process* there too, with the same timeout and crash isolation
as locally, and the same numbers (the same single-threaded worker).

Before any task is submitted, every connected worker reports its environment
(:func:`interop.suite.cache.environment_fingerprint`: interop's version, the
plugins' distributions and versions, the versions of what they require) and the run
stops (exit 2) when one differs from this machine. A worker that joins later is
checked by its first task, which then fails instead of running.

Files travel through Dask's own data transfer by default: each model is packed once
(a tar in memory), scattered to the cluster, unpacked into a temporary folder by the
task, and the converted model, result and log come back the same way into this
machine's cache. With ``--shared-path`` the workers see the same file system (NFS,
a shared volume): tasks read the models where they are and write straight into the
cache folder, and nothing goes through the scheduler.

``distributed`` is imported only here, and only when a scheduler is given
(``pip install 'interop[distributed]'``).
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interop.plugin_api import InteropError

#: How long to wait for the cluster to have at least one worker.
WAIT_FOR_WORKERS = 60.0


class ClusterError(InteropError):
    """The cluster cannot run this suite: unreachable, no workers, or workers unlike this machine (exit 2)."""

    exit_code = 2


def _client(address: str) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise InteropError(
            "--scheduler needs Dask distributed, which is not installed",
            hint="pip install 'interop[distributed]'",
        ) from None
    try:
        if Path(address).is_file():  # a scheduler file, as dask-jobqueue and dask-mpi write
            return Client(scheduler_file=address, timeout=30, set_as_default=False)
        _probe(address)
        return Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}",
                           hint="check the address (tcp://HOST:8786) and that the scheduler runs") from None


def _probe(address: str) -> None:
    """Fail at once when nothing listens at a tcp:// address (Dask would retry for its whole timeout)."""
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return
    parts = urlsplit(address)
    if parts.hostname is None:
        return
    with socket.create_connection((parts.hostname, parts.port or 8786), timeout=10):
        pass


# --------------------------------------------------------------------------- the environment check


def worker_fingerprint() -> dict[str, Any]:
    """Run on each worker: what it has installed (the same description as the cache key uses)."""
    from interop.plugin_registry import get_registry
    from interop.suite.cache import environment_fingerprint

    return environment_fingerprint(get_registry())


_checked: dict[str, Any] = {}


def _same_environment(expected: dict[str, Any]) -> list[str]:
    """On a worker: the differences from the submitting environment (computed once per process)."""
    from interop.suite.cache import fingerprint_differences

    if "mine" not in _checked:
        _checked["mine"] = worker_fingerprint()
    return fingerprint_differences(expected, _checked["mine"])


def check_workers(client: Any, fingerprint: dict[str, Any], address: str) -> int:
    """Compare every worker's environment with ``fingerprint``; the number of workers. Exit 2 on a difference."""
    from interop.suite.cache import fingerprint_differences

    try:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
    except (TimeoutError, OSError):
        raise ClusterError(f"the Dask cluster at {address} has no workers (waited {WAIT_FOR_WORKERS:g} s)",
                           hint="start workers: dask worker ADDRESS") from None
    try:
        reports = client.run(worker_fingerprint)
    except ModuleNotFoundError as exc:
        raise ClusterError(f"a worker of {address} cannot import interop ({exc})",
                           hint="install interop and the same plugins on every worker") from None
    problems = []
    for worker, theirs in sorted(reports.items()):
        for line in fingerprint_differences(fingerprint, theirs):
            problems.append(f"{worker}: {line}")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ClusterError(f"workers differ from this machine: {shown}",
                           hint="install the same interop, plugins and framework versions on every worker")
    return len(reports)


# --------------------------------------------------------------------------- files in and out


def pack(paths: dict[str, Path]) -> bytes:
    """A tar (in memory) of files and folders by role: role/NAME."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for role, path in sorted(paths.items()):
            archive.add(str(path), arcname=f"{role}/{Path(path).name}", recursive=True)
    return buffer.getvalue()


def unpack(blob: bytes, folder: Path) -> None:
    """Extract :func:`pack`'s tar into ``folder``; nothing may land outside it (tarfile's data filter)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as archive:
        archive.extractall(folder, filter="data")


def _unpacked(folder: Path, role: str) -> Path:
    entries = list((folder / role).iterdir())
    return entries[0]


# --------------------------------------------------------------------------- the task


def run_task(spec: dict[str, Any], model_blob: bytes | None, other_blob: bytes | None, timeout: float,
             threads: int, expected: dict[str, Any], out_dir: str | None) -> dict[str, Any]:
    """The Dask task of one entry: check the environment, unpack, run the worker process, pack the results."""
    from interop.suite.process import run_entry

    problems = _same_environment(expected)
    if problems:
        return {"status": "error", "conversion": None, "check": None, "seconds": 0.0, "error": {
            "stage": "worker", "type": "EnvironmentMismatch", "exit_code": 2,
            "message": "this Dask worker differs from the submitting machine: " + "; ".join(problems[:6]),
            "hint": "install the same interop, plugins and framework versions on every worker"}}
    if out_dir is not None:  # a shared file system: read and write in place
        return {"document": run_entry(spec, Path(out_dir), timeout, threads)}
    work = Path(tempfile.mkdtemp(prefix="interop-suite-"))
    try:
        renames = {}
        spec = dict(spec)
        for blob in (model_blob, other_blob):
            if blob:
                unpack(blob, work / "in")
        for role in ("model", "inputs", "golden", "pyproject"):
            if (work / "in" / role).is_dir():
                local = _unpacked(work / "in", role)
                original = spec["check"]["inputs"] if role == "inputs" else spec[role]
                renames[str(local)] = original
                if role == "inputs":
                    spec["check"] = {**spec["check"], "inputs": str(local)}
                else:
                    spec[role] = str(local)
        out = work / "out"
        document = run_entry(spec, out, timeout, threads)
        (out / "spec.json").unlink(missing_ok=True)
        return {"document": document, "blob": pack({"out": out}), "out_dir": str(out), "renames": renames}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- the client side


def run_jobs(jobs: list[Any], cache: Any, options: Any, fingerprint: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any], float]]:
    """Submit every job to the cluster; yield (job, result document, seconds) as they finish."""
    client = _client(options.scheduler)
    try:
        check_workers(client, fingerprint, options.scheduler)
        from distributed import as_completed

        threads = options.threads or 1
        models: dict[str, Any] = {}
        futures = {}
        started = {}
        for job in jobs:
            scratch = None
            model_blob = other_blob = None
            if options.shared_path:
                scratch = cache.scratch(job.key)
            else:
                model = job.spec["model"]
                if model not in models:  # each model crosses the network once, whatever its targets
                    models[model] = client.scatter(pack({"model": Path(model)}), hash=False)
                model_blob = models[model]
                others = {role: path for role, path in _other_files(job).items()}
                other_blob = pack(others) if others else None
            future = client.submit(run_task, job.spec, model_blob, other_blob, job.entry.timeout, threads,
                                   fingerprint, str(scratch) if scratch else None, pure=False,
                                   key=f"interop-suite-{job.key}-{time.monotonic_ns()}")
            futures[future] = (job, scratch)
            started[future] = time.perf_counter()
        try:
            for future in as_completed(list(futures), loop=client.loop):
                job, scratch = futures[future]
                reply = future.result()
                seconds = time.perf_counter() - started[future]
                if "document" not in reply:  # the environment check failed on the worker
                    document, reply = reply, {}
                else:
                    document = reply["document"]
                if scratch is None:
                    scratch = cache.scratch(job.key)
                    if reply.get("blob"):
                        unpack(reply["blob"], scratch / ".incoming")
                        for item in (scratch / ".incoming" / "out").iterdir():
                            item.rename(scratch / item.name)
                        shutil.rmtree(scratch / ".incoming")
                document["_scratch"] = str(scratch)
                renames = dict(reply.get("renames", {}))
                if reply.get("out_dir"):
                    renames[reply["out_dir"]] = str(scratch)
                document["_renames"] = renames
                yield job, document, seconds
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        client.close()


def _other_files(job: Any) -> dict[str, Path]:
    files = {}
    if isinstance(job.spec["check"].get("inputs"), str):
        files["inputs"] = Path(job.spec["check"]["inputs"])
    if job.spec.get("golden") and not job.spec.get("update_golden") and job.spec.get("target") is None:
        files["golden"] = Path(job.spec["golden"])
    if job.spec.get("pyproject"):
        files["pyproject"] = Path(job.spec["pyproject"])
    return files
