"""Run one entry in its own worker process, with a timeout; a crash or a hang fails that entry only.

:func:`run_entry` is what every executor calls — the local pool of ``--jobs N``
threads and each Dask task on a cluster worker — so an entry runs the same way
everywhere: ``python -m interop.suite.worker`` in a new session (its process
group is killed whole on timeout, converters' own subprocesses included), with
``threads`` compute threads, stdout and stderr in ``OUT_DIR/worker.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from interop.suite.worker import RESULT_FILE

LOG_FILE = "worker.log"
SPEC_FILE = "spec.json"
#: Variables that size the thread pools of numpy's BLAS, OpenMP and the frameworks' own.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
_LOG_TAIL = 4000

_running: set[subprocess.Popen] = set()
_lock = threading.Lock()


def worker_environment(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INTEROP_DEBUG"}
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_entry(spec: dict[str, Any], out_dir: Path, timeout: float, threads: int = 1) -> dict[str, Any]:
    """Run ``spec`` in a fresh worker process writing into ``out_dir``; the result document.

    A worker killed by a signal is status ``crashed``, one past ``timeout`` seconds
    ``timeout``; both carry the end of the worker's log.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1))
    started = time.perf_counter()
    with open(out_dir / LOG_FILE, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interop.suite.worker", str(out_dir / SPEC_FILE), str(out_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=worker_environment(threads),
            start_new_session=True,
        )
        with _lock:
            _running.add(proc)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
        finally:
            if proc.poll() is None:  # interrupted while waiting
                _kill(proc)
            with _lock:
                _running.discard(proc)
    seconds = round(time.perf_counter() - started, 3)
    result_path = out_dir / RESULT_FILE
    if timed_out:
        return _failure("timeout", f"timed out after {timeout:g} s (the entry's timeout); the worker was killed",
                        out_dir, seconds, hint="raise timeout = ... for this model in the manifest")
    if result_path.is_file():
        try:
            return json.loads(result_path.read_text())
        except ValueError:
            pass
    code = proc.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"the worker crashed ({name})"
    else:
        what = f"the worker exited with code {code} without a result"
    return _failure("crashed", what, out_dir, seconds)


def _failure(status: str, message: str, out_dir: Path, seconds: float, hint: str | None = None) -> dict[str, Any]:
    tail = ""
    try:
        text = (out_dir / LOG_FILE).read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace")
        tail = "\n".join(line for line in text.splitlines()[-15:])
    except OSError:
        pass
    return {
        "status": status,
        "error": {"stage": "worker", "type": status, "message": message, "hint": hint, "exit_code": 4,
                  "log_tail": tail},
        "conversion": None,
        "check": None,
        "seconds": seconds,
    }


def _kill(proc: subprocess.Popen) -> None:
    """End the worker and everything it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def kill_all() -> None:
    """Kill every worker this process started (on Ctrl-C)."""
    with _lock:
        running = list(_running)
    for proc in running:
        _kill(proc)
