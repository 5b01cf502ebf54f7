"""Run every benchmarks/bench_*.py in turn and end with one table of every goal they measured.

Each script runs in its own process (quiet libraries, its own imports) and prints its
tables as it goes; the goals it records through ``benchlib.goal`` are collected and
printed together at the end. Exit status 1 when a script failed (not when a goal is
missed: goals are for people to read, the machine may be busy).

    python benchmarks/run_all.py [NAME ...]     # NAME: bench_x.py or x, default all
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

HERE = Path(__file__).resolve().parent


def _scripts(names: list[str]) -> list[Path]:
    available = sorted(HERE.glob("bench_*.py"))
    if not names:
        return available
    chosen = []
    for name in names:
        stem = name.removesuffix(".py")
        stem = stem if stem.startswith("bench_") else f"bench_{stem}"
        matches = [p for p in available if p.stem == stem]
        if not matches:
            raise SystemExit(f"no benchmark {name!r}; have: {', '.join(p.stem for p in available)}")
        chosen += matches
    return chosen


def main(argv: list[str]) -> int:
    scripts = _scripts(argv)
    failed = []
    durations = benchlib.Table("benchmark scripts", ["script", "wall [s]", "status"])
    with tempfile.TemporaryDirectory() as tmp:
        summary = Path(tmp) / "summary.jsonl"
        environment = benchlib.child_environment(**benchlib.QUIET_ENVIRONMENT,
                                                 **{benchlib.SUMMARY_VARIABLE: str(summary)})
        for script in scripts:
            print(f"=== {script.name} ===", flush=True)
            started = time.perf_counter()
            code = subprocess.call([sys.executable, str(script)], env=environment, cwd=HERE.parent)
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            if code:
                failed.append(script.name)
            durations.add(script.name, time.perf_counter() - started, status)
            print(flush=True)
        records = [json.loads(line) for line in summary.read_text().splitlines()] if summary.exists() else []

    goals = benchlib.Table("=== summary: every goal, as measured in this run ===",
                           ["benchmark", "goal", "measured", "limit", "verdict", "load"])
    for r in records:
        goals.add(r["benchmark"], r["goal"], benchlib.format_value(r["measured"], r["unit"]),
                  f"{r['comparison']} {benchlib.format_value(r['limit'], r['unit'])}", r["verdict"], f"{r['load']:.1f}")
    goals.note(f"load: 1-minute load average when the goal was measured ({os.cpu_count()} CPUs); "
               "timings on a busy machine are pessimistic")
    durations.print()
    goals.print()
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
