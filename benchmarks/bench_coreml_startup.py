"""Benchmark: wall time and peak memory of `interop check a.onnx a.mlpackage` and `interop convert a.onnx -o a.mlpackage`.

Both commands run on the reference Iris MLP (trained with `interop train`, converted
with `interop convert`), each as a fresh process the way a user or a CI job runs
them, interleaved with a floor (`python -c "import numpy, onnx"`, the least any such
command must load) so that machine load affects all alike; medians of --repeats runs.
Peak memory is each process's own max RSS (wait4). Goals (issue 14): each command
<= 2.5 s wall and <= 300 MiB peak.

Then one `-X importtime` run of each command shows where the start-up goes, by
top-level package, and which ML frameworks were imported (goal: none), and one plain
`import coremltools` (TensorFlow and PyTorch pulled in) shows what the plugin avoids.

    python benchmarks/bench_coreml_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib

GOAL_SECONDS = 2.5
GOAL_MIB = 300.0
FRAMEWORKS = ("tensorflow", "keras", "torch", "transformers", "tf2onnx", "jax")


def interop_command() -> list[str]:
    script = Path(sys.executable).with_name("interop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "interop"]


_IN_PROCESS = """
import runpy, sys
sys.argv = ["interop", *{args!r}]
try:
    runpy.run_module("interop", run_name="__main__")
except SystemExit:
    pass
print("FRAMEWORKS:" + ",".join(sorted(m for m in {frameworks!r} if m in sys.modules)))
"""


def import_costs(args: list[str], cwd: Path) -> tuple[dict[str, float], list[str]]:
    """Self time (s) of every module `interop ARGS` imports, summed per top-level package
    (-X importtime), and the ML frameworks in sys.modules at its end."""
    code = _IN_PROCESS.format(args=args, frameworks=FRAMEWORKS)
    run = benchlib.run_measured([sys.executable, "-X", "importtime", "-c", code], cwd=str(cwd))
    per_package: dict[str, float] = collections.defaultdict(float)
    frameworks: list[str] = []
    for line in run.output.splitlines():
        if line.startswith("FRAMEWORKS:"):
            frameworks = [name for name in line[len("FRAMEWORKS:"):].split(",") if name]
        if not line.startswith("import time:"):
            continue
        self_us, _cumulative, name = (field.strip() for field in line[len("import time:"):].split("|"))
        if self_us.isdigit():
            per_package[name.split(".")[0]] += int(self_us) / 1e6
    return dict(per_package), frameworks


def main() -> int:
    benchlib.quiet_libraries()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    interop = interop_command()
    folder = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        for step in (["train", "--framework", "torch", "-o", "iris.pt2"], ["convert", "iris.pt2", "-o", "iris.onnx"],
                     ["convert", "iris.onnx", "-o", "iris.mlpackage"]):
            setup = benchlib.run_measured([*interop, *step], cwd=str(folder))
            if setup.returncode:
                print(f"set-up `interop {' '.join(step)}` failed:\n{setup.output}", file=sys.stderr)
                return 1

        commands = {
            "python -c 'import numpy, onnx' (floor)": [sys.executable, "-c", "import numpy, onnx"],
            "interop check iris.onnx iris.mlpackage": [*interop, "check", "iris.onnx", "iris.mlpackage"],
            "interop convert iris.onnx -o out.mlpackage": [*interop, "convert", "iris.onnx", "-o", "out.mlpackage",
                                                          "--force"],
        }
        for command in commands.values():  # warm the file cache and write the bytecode caches once
            benchlib.run_measured(command, cwd=str(folder))
        runs: dict[str, list[benchlib.ProcessRun]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                run = benchlib.run_measured(command, cwd=str(folder))
                if run.returncode:
                    print(f"`{name}` failed (exit {run.returncode}):\n{run.output}", file=sys.stderr)
                    return 1
                runs[name].append(run)

        floor = statistics.median(r.seconds for r in runs[next(iter(commands))])
        table = benchlib.Table(
            f"Start-up of ONNX <-> Core ML commands on the Iris MLP (fresh process each, median of {args.repeats}, "
            f"interleaved)",
            ["command", "wall [s]", "x floor", "cpu [s]", "peak RSS [MiB]", "goal", "verdict"],
        )
        for index, (name, measured) in enumerate(runs.items()):
            seconds = statistics.median(r.seconds for r in measured)
            cpu = statistics.median(r.cpu_seconds for r in measured)
            mib = statistics.median(r.peak_rss_mib for r in measured)
            if index == 0:
                table.add(name, seconds, "1.00x", cpu, f"{mib:.0f}", "-", "-")
                continue
            short = name.split(" ")[1]
            verdicts = (benchlib.goal(f"{short} wall", seconds, GOAL_SECONDS, "s"),
                        benchlib.goal(f"{short} peak RSS", mib, GOAL_MIB, "MiB"))
            # A single-threaded command's CPU time is its wall time on a quiet machine, near enough.
            benchlib.goal(f"{short} CPU time (quiet-machine wall)", cpu, GOAL_SECONDS, "s")
            table.add(name, seconds, f"{seconds / floor:.2f}x", cpu, f"{mib:.0f}",
                      f"<= {GOAL_SECONDS} s, <= {GOAL_MIB:.0f} MiB",
                      "met" if verdicts == ("met", "met") else f"time {verdicts[0]}, memory {verdicts[1]}")
        table.note(benchlib.machine_load() + "; cpu = user + system time of the process, which load inflates "
                   "far less than wall time")
        table.print()

        for name, command in list(commands.items())[1:]:
            # -v: interop otherwise sends the libraries' stderr (where -X importtime writes) to a log.
            costs, loaded = import_costs([*command[len(interop):], "-v"], folder)
            total = sum(costs.values())
            where = benchlib.Table(f"where `{name}` spends its imports (-X importtime, self time per top-level "
                                   f"package; {total:.2f} s of imports in all)", ["package", "import [s]", "share"])
            for package, seconds in sorted(costs.items(), key=lambda item: -item[1])[:8]:
                where.add(package, seconds, f"{100 * seconds / total:.0f}%")
            where.note(f"ML frameworks imported: {', '.join(loaded) if loaded else 'none'}")
            where.print()

        plain = benchlib.run_measured([sys.executable, "-c", "import coremltools"], cwd=str(folder))
        light = benchlib.run_measured(
            [sys.executable, "-c",
             "from interop_coreml.coremltools_import import import_coremltools; import_coremltools()"],
            cwd=str(folder))
        contrast = benchlib.Table("what interop_coreml.coremltools_import avoids (one run each)",
                                  ["import", "wall [s]", "peak RSS [MiB]"])
        contrast.add("import coremltools (pulls in TensorFlow, PyTorch, transformers)", plain.seconds,
                     f"{plain.peak_rss_mib:.0f}")
        contrast.add("import_coremltools() (frameworks kept out)", light.seconds, f"{light.peak_rss_mib:.0f}")
        contrast.print()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
