"""Start-up cost of the light commands: `interop --help` and `interop plugins` against `python -c "import click"`.

Goal (issue 14): each at most 2x the bare click import, i.e. no numpy and no
framework on the way to a help text or a plugin listing. Every command runs as
a fresh process, interleaved round by round so a busy machine slows all of them
alike; the median of the rounds is compared. Also prints which heavy modules
each command imported (it must be none).

Usage::

    python benchmarks/bench_cli_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import benchlib

HEAVY = ("numpy", "tensorflow", "torch", "coremltools", "onnxruntime", "onnx")

GOALS = ("interop --help", "interop plugins")
GOAL = 2.0

COMMANDS = {
    "python -c 'import click'": ["-c", "import click"],
    "interop --help": ["-m", "interop", "--help"],
    "interop plugins": ["-m", "interop", "plugins"],
    "interop plugins --json": ["-m", "interop", "plugins", "--json"],
    "interop convert --help": ["-m", "interop", "convert", "--help"],
}

_PROBE = """
import runpy, sys
sys.argv = ["interop", *sys.argv[1:]]
try:
    runpy.run_module("interop", run_name="__main__")
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


#: Children run as installed code runs: with bytecode caches (a PYTHONDONTWRITEBYTECODE in this
#: shell would make every interop module compile from source on every start, click's not).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _seconds(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): CPU time is what a busy machine disturbs least."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=CHILD_ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def _heavy_modules(args: list[str]) -> str:
    if args[:2] != ["-m", "interop"]:
        return "-"
    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args[2:]],
                          capture_output=True, text=True, check=True, env=CHILD_ENV)
    line = next(l for l in done.stderr.splitlines() if l.startswith("HEAVY:"))
    return line[len("HEAVY:"):] or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache and write the bytecode caches once
        _seconds(command)
    wall: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            seconds, used = _seconds(command)
            wall[name].append(seconds)
            cpu[name].append(used)
    base_name = next(iter(COMMANDS))
    base_wall, base_cpu = statistics.median(wall[base_name]), statistics.median(cpu[base_name])
    table = benchlib.Table(
        f"start-up of fresh processes, medians of {args.rounds} interleaved rounds "
        f"(goal: {' and '.join(GOALS)} <= {GOAL:.2f}x the click import, in CPU time)",
        ["command", "wall ms", "ratio", "CPU ms", "ratio", "goal", "heavy modules imported"],
    )
    for name, command in COMMANDS.items():
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        verdict = "-"
        if name in GOALS:
            verdict = f"<= {GOAL:.1f}x: " + benchlib.goal(f"{name} / python -c 'import click', CPU time",
                                                         c / base_cpu, GOAL)
        table.add(name, w * 1000, f"{w / base_wall:.2f}x", c * 1000, f"{c / base_cpu:.2f}x", verdict,
                  _heavy_modules(command))
    table.note("CPU time, user + system, is the measure a machine shared with other work disturbs least")
    table.note(benchlib.machine_load())
    table.print()

if __name__ == "__main__":
    main()
