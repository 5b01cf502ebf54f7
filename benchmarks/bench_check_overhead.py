"""Overhead of `interop check` itself: checking the reference MLP on 100,000 samples vs bare inference.

Trains the reference MLP (Keras by default), converts it to ONNX, then measures, interleaved
and repeated (medians):

* bare: the sum of the two runtimes' ``Session.run`` times on exactly the inputs and
  batches the check feeds (sessions loaded beforehand, not timed);
* check: ``interop.check(model.keras, model.onnx, samples=100_000)`` in this process
  (frameworks already imported), less the time it spends loading and releasing the two
  models (its own ``timings["open"]`` and ``["close"]``): the goal of issue 14 is <= 1.5x bare. Its other stages
  (generating inputs, running, comparing, the fp64 oracle) are printed beside it;
* check --oracle fp64: the same with the oracle forced on (16 samples in float64);
* cli: ``interop check model.keras model.onnx --samples 100000`` as a fresh process
  (includes starting Python and importing TensorFlow).

Usage::

    python benchmarks/bench_check_overhead.py [--samples 100000] [--framework keras|torch] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--framework", default="keras", choices=["keras", "torch"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    benchlib.quiet_libraries()

    import interop
    from interop.checker.inputs import random_inputs
    from interop.checker.models import open_model, parse_model_arg
    from interop.plugin_registry import get_registry

    folder = Path(tempfile.mkdtemp(prefix="bench-check-"))
    try:
        source = folder / ("mlp.keras" if args.framework == "keras" else "mlp.pt2")
        converted = folder / "mlp.onnx"
        with benchlib.silenced_stderr():  # TensorFlow's and torch's start-up lines
            interop.train(args.framework, source, epochs=2)
            interop.convert(source, converted)
            interop.check(source, [converted], samples=100, project_config=False)  # warm-up: imports, first graphs

        registry = get_registry()
        models = [open_model(parse_model_arg(str(path), registry), {}, registry) for path in (source, converted)]
        input_set = random_inputs(models[0].session.inputs, samples=args.samples)

        def bare() -> None:
            for model in models:
                for feeds in input_set.runs():
                    model.session.run(feeds)

        reports: dict[str, list] = {"auto": [], "fp64": []}

        def check(oracle: str):  # type: ignore[no-untyped-def]
            def run() -> None:
                report = interop.check(source, [converted], samples=args.samples, project_config=False,
                                       oracle=oracle)
                assert report.passed, report.format_table()
                reports[oracle].append(report)
            return run

        bare_s, auto_s, fp64_s = benchlib.interleaved_medians([bare, check("auto"), check("fp64")], args.repeats)

        def median_stage(oracle: str, stage: str) -> float:
            return statistics.median(r.timings.get(stage, 0.0) for r in reports[oracle])

        load = median_stage("auto", "open") + median_stage("auto", "close")
        auto_net = auto_s - load
        fp64_net = fp64_s - median_stage("fp64", "open") - median_stage("fp64", "close")

        interop_cli = Path(sys.executable).with_name("interop")
        command = [str(interop_cli) if interop_cli.exists() else sys.executable, *([] if interop_cli.exists()
                   else ["-m", "interop"]), "check", str(source), str(converted),
                   "--samples", str(args.samples), "--quiet", "--no-project-config"]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=folder)
        cli = time.perf_counter() - started
        runs = reports["auto"][-1].inputs[0]["runs"][:4]
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    table = benchlib.Table(
        f"interop check overhead: reference MLP ({args.framework} vs its ONNX conversion), {args.samples} samples, "
        f"runs {runs}..., medians of {args.repeats}",
        ["measure", "seconds", "x bare", "goal"],
    )
    verdict = benchlib.goal("interop.check in process (without loading) / bare inference", auto_net / bare_s, 1.5)
    table.add("bare inference (sum of Session.run, both runtimes)", bare_s, "1.00x", "-")
    table.add("interop.check in process, without loading the models", auto_net, f"{auto_net / bare_s:.2f}x",
              f"<= 1.5x: {verdict}")
    for stage in ("inputs", "run", "compare", "oracle"):
        seconds = median_stage("auto", stage)
        table.add(f"  of which {stage}", seconds, f"{seconds / bare_s:.2f}x", "-")
    table.add("  loading and releasing the two models (not counted)", load, f"{load / bare_s:.2f}x", "-")
    table.add("interop.check --oracle fp64, without loading", fp64_net, f"{fp64_net / bare_s:.2f}x", "-")
    table.add("interop check CLI (fresh process)", cli, f"{cli / bare_s:.2f}x", "-")
    table.note("the fp64 oracle runs by default only when an output fails; a passing check never pays for it")
    table.note(benchlib.machine_load())
    table.print()


if __name__ == "__main__":
    main()
