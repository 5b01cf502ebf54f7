"""Overhead of `interop check` itself: checking the reference MLP on 100,000 samples vs bare inference.

Trains the reference MLP (Keras by default), converts it to ONNX, then measures, interleaved
and repeated (medians), in wall time and in CPU time (all threads of this process):

* bare: the sum of the two runtimes' ``Session.run`` times on exactly the inputs and
  batches the check feeds, on sessions opened (not timed) just before, as a script that
  loads the two models and runs them once would; the same on sessions kept warm from the
  earlier rounds is printed beside it (a session's first run at a batch size costs more);
* check: ``interop.check(model.keras, model.onnx, samples=100_000)`` in this process
  (frameworks already imported), without loading and releasing the two models: the wall
  and CPU time of its work on the opened models (``runner.check_group``: generating the
  inputs, running both, comparing, the oracle, the report's entries), timed around that
  function. The whole call (loading included) is printed too. The goal of issue 14 is
  <= 1.5x bare, judged in CPU time (the machine is shared; wall time is printed beside it);
  the stages are printed beside it;
* check --oracle fp64: the same with the oracle forced on (16 samples in float64, from the
  reference converted to ONNX). The default oracle (``auto``) runs only when an output fails,
  so a passing check never pays for it and bare inference does not include it;
* cli: ``interop check model.keras model.onnx --samples 100000`` as a fresh process
  (includes starting Python and importing TensorFlow).

Usage::

    python benchmarks/bench_check_overhead.py [--samples 100000] [--framework keras|torch] [--repeats 15]
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
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    benchlib.quiet_libraries()

    import interop
    from interop.checker import runner
    from interop.checker.inputs import random_inputs
    from interop.checker.models import open_model, parse_model_arg, plan_model
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

        def bare_warm() -> None:
            for model in models:
                for feeds in input_set.runs():
                    model.session.run(feeds)

        fresh: dict[str, list[float]] = {"wall": [], "cpu": [], "load_cpu": []}

        def bare() -> None:
            """Plan, open and release the two models as the check's "open" and "close" stages do (CPU-timed
            apart: the check's loading) and run each once over the inputs (the baseline)."""
            started_cpu = time.process_time()
            requests = [parse_model_arg(str(path), registry) for path in (source, converted)]
            for request in requests:
                plan_model(request, {}, registry)
            opened = [open_model(request, {}, registry) for request in requests]
            load_cpu = time.process_time() - started_cpu
            started, started_cpu = time.perf_counter(), time.process_time()
            for model in opened:
                for feeds in input_set.runs():
                    model.session.run(feeds)
            fresh["cpu"].append(time.process_time() - started_cpu)
            fresh["wall"].append(time.perf_counter() - started)
            started_cpu = time.process_time()
            opened.clear()
            fresh["load_cpu"].append(load_cpu + time.process_time() - started_cpu)

        reports: dict[str, list] = {"auto": [], "fp64": []}
        # The check without loading, measured where it happens: the check's work on its opened models
        # (inputs, runs, comparison, oracle, report entries) is runner.check_group, looked up per call.
        groups: dict[str, list[tuple[float, float]]] = {"auto": [], "fp64": []}
        check_group = runner.check_group

        def check(oracle: str):  # type: ignore[no-untyped-def]
            def timed_group(*group_args, **group_kwargs):  # type: ignore[no-untyped-def]
                started, started_cpu = time.perf_counter(), time.process_time()
                try:
                    return check_group(*group_args, **group_kwargs)
                finally:
                    groups[oracle].append((time.perf_counter() - started, time.process_time() - started_cpu))

            def run() -> None:
                runner.check_group = timed_group
                try:
                    report = interop.check(source, [converted], samples=args.samples, project_config=False,
                                           oracle=oracle)
                finally:
                    runner.check_group = check_group
                assert report.passed, report.format_table()
                reports[oracle].append(report)
            return run

        (warm_s, warm_cpu), _, (auto_s, auto_cpu), (fp64_s, fp64_cpu) = benchlib.interleaved_wall_and_cpu(
            [bare_warm, bare, check("auto"), check("fp64")], args.repeats)
        bare_s, bare_cpu, load_cpu = (statistics.median(fresh[key][-args.repeats:]) for key in ("wall", "cpu", "load_cpu"))
        (auto_net, auto_net_cpu), (fp64_net, fp64_net_cpu) = (
            (statistics.median(w for w, _ in groups[o][-args.repeats:]),
             statistics.median(c for _, c in groups[o][-args.repeats:])) for o in ("auto", "fp64"))

        def median_stage(oracle: str, stage: str) -> float:
            return statistics.median(r.timings.get(stage, 0.0) for r in reports[oracle])

        load = median_stage("auto", "open") + median_stage("auto", "close")

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
        ["measure", "wall s", "x bare", "CPU s", "x bare CPU", "goal"],
    )
    ratio = auto_net_cpu / bare_cpu
    verdict = benchlib.goal("interop.check in process (without loading) / bare inference, CPU time", ratio, 1.5)
    table.add("bare inference (sum of Session.run, both runtimes, sessions just opened)", bare_s, "1.00x", bare_cpu,
              "1.00x", "-")
    table.add("  the same on sessions warm from earlier rounds", warm_s, f"{warm_s / bare_s:.2f}x", warm_cpu,
              f"{warm_cpu / bare_cpu:.2f}x", "-")
    table.add("interop.check in process, without loading the models", auto_net, f"{auto_net / bare_s:.2f}x",
              auto_net_cpu, f"{ratio:.2f}x", f"<= 1.5x (CPU): {verdict}")
    for stage in ("inputs", "run", "compare", "oracle"):
        seconds = median_stage("auto", stage)
        table.add(f"  of which {stage}", seconds, f"{seconds / bare_s:.2f}x", "-", "-", "-")
    table.add("interop.check, the whole call", auto_s, f"{auto_s / bare_s:.2f}x", auto_cpu,
              f"{auto_cpu / bare_cpu:.2f}x", "-")
    table.add("  of which loading and releasing the two models", load, f"{load / bare_s:.2f}x", load_cpu,
              f"{load_cpu / bare_cpu:.2f}x", "-")
    table.add("interop.check --oracle fp64, without loading", fp64_net, f"{fp64_net / bare_s:.2f}x", fp64_net_cpu,
              f"{fp64_net_cpu / bare_cpu:.2f}x", "-")
    extra, extra_cpu = fp64_net - auto_net, fp64_net_cpu - auto_net_cpu
    table.add(f"  more than the default check (the {args.framework} reference converted to ONNX, its oracle)",
              extra, f"{extra / bare_s:.2f}x", extra_cpu, f"{extra_cpu / bare_cpu:.2f}x", "-")
    oracle_s = median_stage("fp64", "oracle")
    table.add("  of which the oracle's 16 samples in float64", oracle_s, f"{oracle_s / bare_s:.2f}x", "-", "-", "-")
    table.add("interop check CLI (fresh process)", cli, f"{cli / bare_s:.2f}x", "-", "-", "-")
    table.note("the fp64 oracle runs by default only when an output fails: a passing check never pays for it, "
               "so bare inference leaves it out")
    table.note(f"against the warm sessions the check takes {auto_net / warm_s:.2f}x (wall), {auto_net_cpu / warm_cpu:.2f}x "
               "(CPU): a session's first run at each batch size costs more, in the check as after any load")
    table.note("stages are wall time (the report's timings); CPU time counts every thread of this process; "
               "loading in CPU time is bare's, which opens the same two models")
    table.note(benchlib.machine_load())
    table.print()


if __name__ == "__main__":
    main()
