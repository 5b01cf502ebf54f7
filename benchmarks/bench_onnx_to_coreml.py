"""Benchmark: ONNX → Core ML conversion time, interop's exporter against onnxsim's.

Times the conversion of DenseNet-121 and Inception v2 (zoo graphs shipped in the
onnx wheel, random weights in place of their constant fills, static batch 1
because onnxsim's exporter refuses a dynamic one) with interop's translator and
with onnxsim 0.8.1's ``export_coreml`` in the same process, and prints the
ratios. Then reports ResNet-50's conversion time and peak memory (tracemalloc
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


def _time(fn, repeats: int) -> tuple[float, str | None]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - a failing exporter is reported, not fatal
            return float("nan"), f"{type(error).__name__}: {str(error)[:160]}"
        times.append(time.perf_counter() - start)
    return statistics.median(times), None


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
        ["model", "interop [s]", "onnxsim [s]", "onnxsim / interop", "goal"],
    )
    if note:
        table.note(note)
    for name in ("densenet121", "inception_v2"):
        model = zoo_model(name, seed=0)
        ours, error = _time(lambda: convert_model(model, precision="fp32", minimum_deployment_target="iOS15"), args.repeats)
        if error:
            table.add(name, "failed", "-", "-", "-")
            table.note(f"{name}: interop failed: {error}")
            continue
        if export_coreml is None:
            table.add(name, ours, "n/a", "n/a", "-")
            continue
        theirs, their_error = _time(
            lambda: export_coreml(model, compute_precision=ct.precision.FLOAT32, minimum_deployment_target="iOS15"),
            args.repeats,
        )
        if their_error:
            table.add(name, ours, "failed", "-", "-")
            table.note(f"{name}: onnxsim failed: {their_error}")
        else:
            verdict = benchlib.goal(f"{name}: onnxsim / interop", theirs / ours, 2.0, higher_is_better=True)
            table.add(name, ours, theirs, f"{theirs / ours:.2f}x", f">= 2x: {verdict}")
    table.note(benchlib.machine_load())
    table.print()

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
    resnet.print()


if __name__ == "__main__":
    main()
