"""Benchmark: ONNX → Core ML conversion time, interop's exporter against onnxsim's.

Times the conversion of DenseNet-121 and Inception v2 (zoo graphs shipped in the
onnx wheel, random weights in place of their constant fills, static batch 1
because onnxsim's exporter refuses a dynamic one) with interop's translator and
with onnxsim 0.8.1's ``export_coreml`` in the same process, alternately, and prints
the ratios of the median CPU times (the goal) and wall times, then where each
conversion's time goes (interop's stages and slowest graph passes; for onnxsim,
its own translation against the time inside ``ct.convert``). Then reports ResNet-50's conversion time and peak memory (tracemalloc
peak of Python/numpy allocations, and the growth of the process's max RSS).

Run:  PYTHONPATH=plugins/interop-coreml/src:. python benchmarks/bench_onnx_to_coreml.py [--repeats N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import benchlib


def _cpu_and_wall(fn) -> tuple[float, float]:
    started, started_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.process_time() - started_cpu, time.perf_counter() - started


def _interleaved(ours, theirs, repeats: int) -> tuple[dict[str, list[float]], str | None]:
    """CPU and wall seconds of each exporter, run in turn each round (after one warm-up each)."""
    times: dict[str, list[float]] = {"ours_cpu": [], "ours_wall": [], "theirs_cpu": [], "theirs_wall": []}
    ours()
    try:
        theirs()
    except Exception as error:  # noqa: BLE001 - a failing exporter is reported, not fatal
        return times, f"{type(error).__name__}: {str(error)[:160]}"
    for _ in range(repeats):
        for key, fn in (("ours", ours), ("theirs", theirs)):
            cpu, wall = _cpu_and_wall(fn)
            times[f"{key}_cpu"].append(cpu)
            times[f"{key}_wall"].append(wall)
    return times, None


class _ConvertClock:
    """CPU seconds each call of ``fn`` spends inside ``ct.convert`` (graph passes + serialisation)."""

    def __init__(self, ct, fn):
        self.ct, self.fn, self.seconds = ct, fn, []

    def __call__(self) -> None:
        original = self.ct.convert
        spent = [0.0]

        def timed(*args, **kwargs):
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[0] += time.process_time() - started

        self.ct.convert = timed
        try:
            self.fn()
        finally:
            self.ct.convert = original
        self.seconds.append(spent[0])


def _onnxsim_exporter():
    """onnxsim 0.8.1's Core ML exporter, or the reason it is unavailable."""
    try:
        import onnxsim
        from onnxsim.coreml_export import export_coreml
    except Exception as error:  # noqa: BLE001
        return None, f"onnxsim is not importable ({type(error).__name__}: {error}); pip install onnxsim==0.8.1"
    version = str(getattr(onnxsim, "__version__", "?")).lstrip("v")
    if version != "0.8.1":
        return export_coreml, f"note: onnxsim {version} installed, the comparison was specified against 0.8.1"
    return export_coreml, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    benchlib.quiet_libraries()

    with benchlib.silenced_stderr():
        import coremltools as ct

        from interop_coreml.onnx2mil import convert_model
        from interop.testing.zoo import zoo_model

        export_coreml, note = _onnxsim_exporter()
    table = benchlib.Table(
        f"ONNX -> Core ML conversion, interop vs onnxsim's exporter (coremltools {ct.__version__}; median of "
        f"{args.repeats}; to an in-memory ML Program, fp32, iOS15)",
        ["model", "interop [cpu s]", "onnxsim [cpu s]", "onnxsim / interop", "wall ratio", "goal"],
    )
    if note:
        table.note(note)
    breakdowns = []
    for name in ("densenet121", "inception_v2"):
        model = zoo_model(name, seed=0)
        stages: dict[str, float] = {}

        def ours() -> None:
            stages.clear()
            convert_model(model, precision="fp32", minimum_deployment_target="iOS15", timings=stages)

        if export_coreml is None:
            table.add(name, statistics.median(_interleaved(ours, ours, args.repeats)[0]["ours_cpu"]),
                      "n/a", "n/a", "n/a", "-")
            continue
        theirs = _ConvertClock(ct, lambda: export_coreml(model, compute_precision=ct.precision.FLOAT32,
                                                         minimum_deployment_target="iOS15"))
        times, their_error = _interleaved(ours, theirs, args.repeats)
        if their_error:
            table.add(name, "-", "failed", "-", "-", "-")
            table.note(f"{name}: onnxsim failed: {their_error}")
            continue
        median = {key: statistics.median(values) for key, values in times.items()}
        ratio = median["theirs_cpu"] / median["ours_cpu"]
        verdict = benchlib.goal(f"{name}: onnxsim / interop (CPU time)", ratio, 2.0, higher_is_better=True)
        table.add(name, median["ours_cpu"], median["theirs_cpu"], f"{ratio:.2f}x",
                  f"{median['theirs_wall'] / median['ours_wall']:.2f}x", f">= 2x: {verdict}")
        # interop's last run by stage; onnxsim's medians, all and inside ct.convert.
        breakdowns.append((name, dict(stages), median["theirs_cpu"], statistics.median(theirs.seconds)))
    table.note("CPU time (user + system) of this process, the goal's measure: both exporters are single-threaded "
               "Python, and on a shared machine wall time follows the load")
    table.note(benchlib.machine_load())
    table.print()

    for name, stages, theirs_total, their_convert in breakdowns:
        detail = benchlib.Table(f"where the time goes, {name} (CPU seconds; interop: its last run, onnxsim: medians)",
                                ["stage", "interop [s]", "onnxsim [s]"])
        detail.add("ONNX shape inference, constant folding (interop's pre-pass)", stages["prepare"], "-")
        detail.add("building the MIL program", stages["build"], theirs_total - their_convert)
        detail.add("coremltools' graph passes", stages["passes"], "-")
        detail.add("serialisation (MIL -> protobuf, weights file, package)", stages["serialise"], "-")
        detail.add("  ct.convert in all (passes + serialisation)", stages["passes"] + stages["serialise"],
                   their_convert)
        slowest = sorted((k for k in stages if k.startswith("pass:")), key=lambda k: -stages[k])[:4]
        detail.note("slowest passes (interop): " + ", ".join(
            f"{k.removeprefix('pass:')} {stages[k]:.2f} s" for k in slowest))
        detail.note("interop runs ct.convert's passes without re-validating the program after each one and without "
                    "recomputing constexpr dependencies in programs that have none (onnx2mil/pass_manager.py)")
        detail.print()

    model = zoo_model("resnet50", seed=0, dynamic_batch=True)
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        convert_model(model).save(str(Path(tmp) / "resnet50.mlpackage"))
        elapsed = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(tmp) / "resnet50.mlpackage").rglob("*") if f.is_file())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    weights_mb = sum(init.ByteSize() for init in model.graph.initializer) / 2**20
    start = time.perf_counter()
    convert_model(model)
    alone = time.perf_counter() - start
    verdict = benchlib.goal("ResNet-50 conversion peak memory / weights", peak / 2**20 / weights_mb, 1.5)
    resnet = benchlib.Table(f"ResNet-50 conversion (dynamic batch, {weights_mb:.0f} MiB of weights, package "
                            f"{size / 2**20:.0f} MiB)", ["measure", "value", "goal"])
    resnet.add("conversion alone [s]", alone, "-")
    resnet.add("conversion + save, under tracemalloc [s]", elapsed, "-")
    resnet.add("peak traced allocations [MiB]", peak / 2**20, "-")
    resnet.add("peak traced allocations / weights", f"{peak / 2**20 / weights_mb:.1f}x", f"<= 1.5x: {verdict}")
    resnet.add("growth of the process's max RSS [MiB]", (rss_after - rss_before) / 1024, "-")
    from interop_coreml.onnx2mil.prepass import prepare

    tracemalloc.start()
    prepared = prepare(model)
    prepass_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del prepared
    resnet.add("  of which the pre-pass alone (shape inference, weights as arrays) [MiB]", prepass_peak / 2**20, "-")
    resnet.note("the peak is inside ct.convert: coremltools' conv fusions write new weights while the originals stay "
                "in the program as dead constants until its dead-code elimination")
    resnet.print()


if __name__ == "__main__":
    main()
