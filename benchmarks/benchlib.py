"""What every script under benchmarks/ shares: quiet libraries, side-by-side timing, result tables.

A benchmark script starts with::

    import benchlib                      # benchmarks/ is on sys.path when a script runs
    benchlib.quiet_libraries()           # before any ML library is imported

and prints its numbers with :class:`Table`; each goal it measures goes through
:func:`goal`, which prints nothing itself but returns "met"/"NOT met" and records the
result for the summary table ``make bench`` prints at the end (benchmarks/run_all.py).

Libraries' chatter (TensorFlow's C++ start-up lines, coremltools' "Failed to load
_MLModelProxy", tqdm progress bars, onnxruntime and Python warnings) is noise in a
benchmark's output: :func:`quiet_libraries` turns off what can be turned off by
configuration and :func:`silenced_stderr` sends the rest (native code writes straight
to file descriptor 2) to a log that is shown only if the block fails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

# Environment that quiets libraries in this process (read when they are imported) and in children.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ logging (not the absl pre-init lines: silenced_stderr)
    "TQDM_DISABLE": "1",  # every tqdm bar (coremltools' pass pipeline, onnxsim, transformers)
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_OFFLINE": "1",
    "PYTHONWARNINGS": "ignore",
}
_CHATTY_LOGGERS = ("coremltools", "tensorflow", "absl", "tf2onnx", "onnxsim", "torch", "transformers", "keras")
# OpenBLAS tuning variables set on this machine that slow numpy's BLAS (see GUIDE: tests never unset them).
_OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def quiet_libraries() -> None:
    """Quiet every library this process (and its children) will import. Call before importing them."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    warnings.simplefilter("ignore")
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def quiet_onnxruntime() -> None:
    """onnxruntime logs through its own C++ logger: errors only (call after importing it)."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 to a log while the block runs; replay the log if the block raises.

    Native libraries (TensorFlow's absl, onnxruntime, protobuf) write there directly, so
    Python-level redirection cannot catch them.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def use_untuned_openblas() -> None:
    """Re-run this script without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (call before importing numpy).

    Both are read when OpenBLAS loads, so the only way to drop them is a fresh process.
    Benchmarks may do this for their own run; tests never do.
    """
    if any(name in os.environ for name in _OPENBLAS_TUNING):
        if "numpy" in sys.modules:
            raise RuntimeError("use_untuned_openblas() must run before numpy is imported")
        environment = {k: v for k, v in os.environ.items() if k not in _OPENBLAS_TUNING}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], environment)


def blas_description() -> str:
    """Which BLAS numpy uses, its kernel (architecture) and thread count, from threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "BLAS: unknown (threadpoolctl is not installed)"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return "BLAS: none found"
    return "; ".join(
        f"{p.get('internal_api')} {p.get('version')} kernel {p.get('architecture')}, {p.get('num_threads')} threads"
        for p in pools
    )


def machine_load() -> str:
    """The 1-minute load average and CPU count: how busy the machine was while measuring."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def interleaved_medians(callables: Sequence[Callable[[], object]], repeats: int, warmup: int = 1) -> list[float]:
    """Median wall seconds of each callable, timed in turn each round so that load from other
    processes on the machine affects all of them alike."""
    return [wall for wall, _ in interleaved_wall_and_cpu(callables, repeats, warmup)]


def interleaved_wall_and_cpu(
    callables: Sequence[Callable[[], object]], repeats: int, warmup: int = 1,
) -> list[tuple[float, float]]:
    """(median wall seconds, median CPU seconds of this process, all threads) of each callable,
    timed in turn each round. On a shared machine the CPU time is the steadier of the two; it
    counts every thread, so a runtime whose idle threads spin pays for the spinning."""
    for _ in range(warmup):
        for fn in callables:
            fn()
    wall: list[list[float]] = [[] for _ in callables]
    cpu: list[list[float]] = [[] for _ in callables]
    for _ in range(repeats):
        for index, fn in enumerate(callables):
            started, started_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[index].append(time.process_time() - started_cpu)
            wall[index].append(time.perf_counter() - started)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


@dataclass
class ProcessRun:
    """Wall time, CPU time (user + system), peak resident memory and outcome of one child process.

    On a busy machine wall time grows with the load while CPU time mostly does not, so a
    single-threaded command's CPU time estimates its wall time on a quiet machine.
    """

    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    returncode: int
    output: str


def child_environment(**extra: str) -> dict[str, str]:
    """This environment for a measured child process, run as installed code runs: with bytecode caches.

    A PYTHONDONTWRITEBYTECODE in the shell would make every module of a source checkout compile
    from source on every start (installed packages have their caches), which is not what users pay.
    """
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment.update(extra)
    return environment


# Runs argv[2:] in a forked child and writes the child's wait4 numbers to file descriptor argv[1]. The
# launcher exists for the memory figure: on Linux a child started by vfork (what subprocess uses)
# or fork carries its parent's peak RSS into its own ru_maxrss across exec, so a command started
# straight from a large process (pytest, a benchmark holding models) would report that process's
# peak. This small launcher is the parent instead: its own few MiB are the floor of the figure.
_LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.close(int(sys.argv[1]))
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
os.write(int(sys.argv[1]), ("%r %r %r %r" % (seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss,
                             os.waitstatus_to_exitcode(status))).encode())
"""


def run_measured(command: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None) -> ProcessRun:
    """Run ``command`` to completion and measure it alone: wall and CPU time and its own peak RSS.

    The numbers come from wait4 in a small launcher process (see ``_LAUNCHER``), so neither this
    process's memory nor the children's maximum leaks into them. The default environment is
    :func:`child_environment`.
    """
    env = child_environment() if env is None else env
    read_end, write_end = os.pipe()
    try:
        with tempfile.TemporaryFile() as output:
            process = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, str(write_end), *command],
                                       cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                       pass_fds=(write_end,))
            os.close(write_end)
            write_end = -1
            with os.fdopen(read_end, "rb") as numbers:
                read_end = -1
                measured = numbers.read().decode()
            process.wait()
            output.seek(0)
            text = output.read().decode(errors="replace")
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    if process.returncode != 0 or not measured:
        raise RuntimeError(f"the measuring launcher failed (exit {process.returncode}): {text[-2000:]}")
    seconds, cpu_seconds, maxrss_kib, returncode = (float(v) for v in measured.split())
    return ProcessRun(seconds, cpu_seconds, maxrss_kib / 1024, int(returncode), text)


class Table:
    """A plain-text table: a title, aligned columns (numbers right-aligned), optional notes."""

    def __init__(self, title: str, columns: Sequence[str]):
        self.title = title
        self.columns = list(columns)
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([_cell(c) for c in cells])

    def note(self, text: str) -> None:
        self.notes.append(text)

    def render(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.columns)]
        numeric = [all(_numeric(r[i]) for r in self.rows) and bool(self.rows) for i in range(len(self.columns))]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

        parts = [self.title, line(self.columns), "  ".join("-" * w for w in widths)]
        parts += [line(r) for r in self.rows]
        parts += [f"  {n}" for n in self.notes]
        return "\n".join(parts)

    def print(self) -> None:
        print(self.render() + "\n", flush=True)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _numeric(text: str) -> bool:
    text = text.rstrip("x%").replace(",", "")
    try:
        float(text)
    except ValueError:
        return text in ("", "-", "n/a")
    return True


# run_all.py points this variable at a JSON-lines file and prints its content as the summary.
SUMMARY_VARIABLE = "INTEROP_BENCH_SUMMARY"


def goal(name: str, measured: float, limit: float, unit: str = "x", higher_is_better: bool = False) -> str:
    """Record one goal (``measured`` against ``limit``) for the summary; returns "met" or "NOT met"."""
    met = measured >= limit if higher_is_better else measured <= limit
    verdict = "met" if met else "NOT met"
    path = os.environ.get(SUMMARY_VARIABLE)
    if path:
        record = {
            "benchmark": os.path.basename(sys.argv[0]),
            "goal": name,
            "measured": measured,
            "limit": limit,
            "unit": unit,
            "comparison": ">=" if higher_is_better else "<=",
            "verdict": verdict,
            "load": os.getloadavg()[0],
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    return verdict


def format_value(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.3g} {unit}"
