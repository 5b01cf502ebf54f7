"""Benchmark: `interop suite` with --jobs 1 against --jobs 2, and a re-run of an unchanged manifest.

The manifest holds real conversions of the kind a CI suite runs: five model-zoo
architectures with random weights (onnx -> coreml, checked by the reference
interpreter against onnxruntime) and the reference MLP of the numpy-mlp example
plugin into ONNX and Core ML. Each run is a fresh `interop suite` process with
--no-cache, so every entry is converted and checked; the --jobs 1 and --jobs 2 runs
alternate round by round so that load from other processes hits both alike, and
the medians are compared. Then the same manifest runs again unchanged: every entry
comes from the cache.

Goals (issue 17): --jobs 1 / --jobs 2 >= 1.7x on a 2-core machine; the unchanged
re-run < 5 % of the first (--jobs 2) run. CPU seconds (the suite and all its worker
processes) show the work is the same in both modes.

    python benchmarks/bench_suite.py [--rounds 1] [--models squeezenet,shufflenet,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib

DEFAULT_MODELS = ("squeezenet", "shufflenet", "inception_v1", "inception_v2", "resnet50")
GOAL_RATIO = 1.7
GOAL_CACHED = 0.05


def build(folder: Path, names: list[str]) -> None:
    import onnx

    from interop.testing.zoo import zoo_model

    models = folder / "models"
    models.mkdir()
    for name in names:
        onnx.save(zoo_model(name, seed=0, dynamic_batch=True), str(models / f"{name}.onnx"))
    done = subprocess.run([sys.executable, "-m", "interop", "train", "--framework", "numpy-mlp", "-o",
                           str(models / "iris.npmlp")], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    (folder / "interop.toml").write_text(
        "seed = 0\n\n"
        '[[models]]\npath = "models/*.onnx"\nto = ["coreml"]\nsamples = 2\nbatch_sizes = [1, 1]\n'
        "atol = 1e-4\nrtol = 1e-3\n\n"
        '[[models]]\npath = "models/iris.npmlp"\nto = ["onnx", "coreml"]\ndataset = "iris"\n')


def suite(folder: Path, *args: str) -> tuple[benchlib.ProcessRun, dict]:
    report = folder / "suite.json"
    run = benchlib.run_measured([sys.executable, "-m", "interop", "suite", "-q", "--json-file", str(report), *args],
                                cwd=str(folder))
    if run.returncode != 0:
        raise SystemExit(f"interop suite {' '.join(args)} failed:\n{run.output}")
    return run, json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating --jobs 1 / --jobs 2 runs (median)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="zoo models to convert")
    args = parser.parse_args()
    benchlib.quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        folder = Path(tmp)
        build(folder, [n for n in args.models.split(",") if n])
        runs: dict[int, list[benchlib.ProcessRun]] = {1: [], 2: []}
        last: dict = {}
        for _ in range(args.rounds):
            for jobs in (1, 2):
                run, last = suite(folder, "--no-cache", "--jobs", str(jobs))
                runs[jobs].append(run)
        cached = [suite(folder)[0] for _ in range(3)]
        hits = sum(entry["cached"] for entry in suite(folder)[1]["entries"])

    wall = {jobs: statistics.median(r.seconds for r in runs[jobs]) for jobs in runs}
    cpu = {jobs: statistics.median(r.cpu_seconds for r in runs[jobs]) for jobs in runs}
    cached_wall = statistics.median(r.seconds for r in cached)
    ratio = wall[1] / wall[2]
    share = cached_wall / wall[2]

    entries = benchlib.Table(f"interop suite: {len(last['entries'])} entries (their own time, --jobs 2 run)",
                             ["entry", "route", "seconds"])
    for entry in sorted(last["entries"], key=lambda e: -e["seconds"]):
        entries.add(entry["id"], " -> ".join(entry["route"]), f"{entry['seconds']:.1f}")
    entries.print()
    table = benchlib.Table(f"interop suite wall time ({benchlib.machine_load()}; {args.rounds} round(s), medians)",
                           ["run", "wall s", "cpu s", "ratio", "goal", "verdict"])
    table.add("--jobs 1 --no-cache", f"{wall[1]:.1f}", f"{cpu[1]:.1f}", "", "", "")
    table.add("--jobs 2 --no-cache", f"{wall[2]:.1f}", f"{cpu[2]:.1f}",
              f"{ratio:.2f}x", f">= {GOAL_RATIO}x",
              benchlib.goal("suite --jobs 1 / --jobs 2 wall time", ratio, GOAL_RATIO, "x", higher_is_better=True))
    table.add(f"unchanged manifest ({hits} cached)", f"{cached_wall:.2f}", f"{statistics.median(r.cpu_seconds for r in cached):.1f}",
              f"{share:.1%}", f"< {GOAL_CACHED:.0%}",
              benchlib.goal("suite cache hit / first run", share * 100, GOAL_CACHED * 100, "%"))
    table.note("each entry runs in its own worker process with 1 compute thread; ratio = --jobs 1 wall / --jobs 2 wall")
    table.note("the cached run still starts Python, reads the manifest and plugins and hashes every model")
    table.print()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
