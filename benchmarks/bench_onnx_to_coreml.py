"""Benchmark: ONNX → Core ML conversion time, interop's exporter against onnxsim's.

Times the conversion of DenseNet-121 and Inception v2 (zoo graphs shipped in the
onnx wheel, random weights in place of their constant fills, static batch 1
because onnxsim's exporter refuses a dynamic one) with interop's translator and
with onnxsim 0.8.1's ``export_coreml`` in the same process, alternately, and prints
the ratios of the median CPU times (the goal) and wall times, then where each
conversion's time goes (interop's stages and slowest graph passes; for onnxsim,
its own translation against the time inside ``ct.convert``). Then reports ResNet-50's conversion time and peak memory
against its weight size: the tracemalloc peak of Python/numpy allocations above the loaded model, the stage
where it happens and each stage's peak, and the peak resident memory of `interop convert`'s whole path (load,
translate, write, read back) in fresh processes (both with goal <= 1.5x).

Run:  PYTHONPATH=plugins/interop-coreml/src:. python benchmarks/bench_onnx_to_coreml.py [--repeats N] [--memory-only]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
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
    parser.add_argument("--memory-only", action="store_true",
                        help="only ResNet-50's conversion memory, not the timing against onnxsim")
    args = parser.parse_args()
    benchlib.quiet_libraries()

    with benchlib.silenced_stderr():
        import coremltools as ct

        from interop_coreml.onnx2mil import convert_model
        from interop.testing.zoo import zoo_model

    if not args.memory_only:
        _time_table(args, ct, convert_model, zoo_model)
    _resnet_memory(convert_model, zoo_model)


def _time_table(args, ct, convert_model, zoo_model) -> None:
    with benchlib.silenced_stderr():
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


class _StagePeaks:
    """The peak of traced allocations (tracemalloc: Python objects and numpy arrays) in each stage of
    ``convert_model`` + ``save``: the pre-pass, building the MIL program, each coremltools graph pass, the
    rest of ``ct.convert`` (program checks, serialisation of the program and its weight blob) and saving
    the package. Stages are found by wrapping the driver's functions and each pass's ``apply`` for the
    duration of one conversion; each figure is the peak above the allocations when tracing started."""

    def __init__(self) -> None:
        # stage -> [peak, largest rise of a run above what was traced when it began, traced when it last
        # ended]; passes run more than once and the rest of ct.convert comes back between passes: one entry
        # each, in order of appearance.
        self.stages: dict[str, list[int]] = {}
        self.stage, self.began = "start", 0

    def enter(self, stage: str) -> None:
        current, peak = tracemalloc.get_traced_memory()
        entry = self.stages.setdefault(self.stage, [0, 0, 0])
        entry[0], entry[1], entry[2] = max(entry[0], peak), max(entry[1], peak - self.began), current
        tracemalloc.reset_peak()
        self.stage, self.began = stage, current

    def peak(self) -> tuple[str, int]:
        return max(((stage, entry[0]) for stage, entry in self.stages.items()), key=lambda item: item[1])

    @contextlib.contextmanager
    def wrapped(self):
        from coremltools.converters.mil.mil.passes.pass_registry import PassRegistry

        from interop_coreml.onnx2mil import driver

        saved = {name: getattr(driver, name) for name in ("prepare", "_build_program", "_ct_convert")}
        labels = {"prepare": "pre-pass", "_build_program": "building MIL", "_ct_convert": "ct.convert, not in a pass"}
        after = {"prepare": "between stages", "_build_program": "between stages", "_ct_convert": "metadata"}
        saved_getitem = PassRegistry.__getitem__
        tracker = self

        def wrap(name, fn):
            def stage(*args, **kwargs):
                tracker.enter(labels[name])
                try:
                    return fn(*args, **kwargs)
                finally:
                    tracker.enter(after[name])
            return stage

        def getitem(registry, pass_id):
            graph_pass = saved_getitem(registry, pass_id)
            apply = getattr(graph_pass, "apply", None)
            if apply is not None:
                def measured(prog):
                    tracker.enter(f"pass {pass_id}")
                    try:
                        return apply(prog)
                    finally:
                        tracker.enter(labels["_ct_convert"])
                graph_pass.apply = measured
            return graph_pass

        for name, fn in saved.items():
            setattr(driver, name, wrap(name, fn))
        PassRegistry.__getitem__ = getitem
        try:
            yield
        finally:
            PassRegistry.__getitem__ = saved_getitem
            for name, fn in saved.items():
                setattr(driver, name, fn)


# A fresh process measures `interop convert`'s path on the ONNX file: first the Core ML plugin's load_onnx alone
# (the checker by path, then onnx.load), then the whole converter (converter.onnx_to_coreml: load_onnx, the
# translation, writing the package and reading it back). It reports its resident memory after the imports and
# after the load, and the peak of each (VmHWM, restarted from the current size through clear_refs before each).
# The conversion is measured twice: as the first one in the process (its peak then includes the modules the
# translator imports on first use), and after a one-Conv model has been converted (those modules loaded: what
# the conversion itself needs, above a process that has converted before).
_RSS_CHILD = r"""
import gc, json, pathlib, sys
sys.path.insert(0, sys.argv[1])
import benchlib
benchlib.quiet_libraries()
with benchlib.silenced_stderr():
    from interop_coreml.coremltools_import import import_coremltools
    import_coremltools()
    from interop_coreml.converter import load_onnx, onnx_to_coreml

def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key + ":"))

def restart_peak():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")

src, out = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
gc.collect()
imports = status("VmRSS")
restart_peak()
if sys.argv[4] == "load":
    model = load_onnx(src)
    gc.collect()
    loaded, load_peak = status("VmRSS"), status("VmHWM")
    del model
    print(json.dumps({"imports": imports, "loaded": loaded, "load_peak": load_peak}))
elif sys.argv[4] == "first":
    onnx_to_coreml(src, out, {})
    print(json.dumps({"imports": imports, "peak": status("VmHWM")}))
else:
    onnx_to_coreml(pathlib.Path(sys.argv[5]), out.with_name("warm-up.mlpackage"), {})
    gc.collect()
    warm = status("VmRSS")
    restart_peak()
    onnx_to_coreml(src, out, {})
    print(json.dumps({"imports": imports, "warm": warm, "peak": status("VmHWM")}))
"""


def _one_conv_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "warm_up",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _fresh_process(path: Path, mode: str, *extra: str) -> dict | str:
    """The child's numbers, or what went wrong."""
    out = path.parent / f"{mode}.mlpackage"
    child = benchlib.run_measured([sys.executable, "-c", _RSS_CHILD, str(Path(__file__).parent), str(path),
                                   str(out), mode, *extra])
    if child.returncode != 0:
        return f"exit {child.returncode}: {child.output[-300:]}"
    return json.loads(child.output.strip().splitlines()[-1])


def _resnet_memory(convert_model, zoo_model) -> None:
    import onnx

    model = zoo_model("resnet50", seed=0, dynamic_batch=True)
    weights = sum(init.ByteSize() for init in model.graph.initializer)
    weights_mib = weights / 2**20
    start = time.perf_counter()
    convert_model(model)
    alone = time.perf_counter() - start
    gc.collect()
    stages = _StagePeaks()
    tracemalloc.start()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        with stages.wrapped():
            mlmodel = convert_model(model)
        stages.enter("save")
        mlmodel.save(str(Path(tmp) / "resnet50.mlpackage"))
        stages.enter("end")
        elapsed = time.perf_counter() - start
        size = sum(f.stat().st_size for f in (Path(tmp) / "resnet50.mlpackage").rglob("*") if f.is_file())
        del mlmodel
    tracemalloc.stop()
    peak_stage, peak = stages.peak()
    ratio = peak / weights
    verdict = benchlib.goal("ResNet-50 conversion peak memory / weights", ratio, 1.5)
    resnet = benchlib.Table(f"ResNet-50 conversion memory (dynamic batch, fp32, {weights_mib:.0f} MiB of weights, "
                            f"package {size / 2**20:.0f} MiB)", ["measure", "value", "goal"])
    resnet.add("conversion alone [s]", alone, "-")
    resnet.add("conversion + save, traced [s]", elapsed, "-")
    resnet.add("peak traced above the loaded model [MiB]", peak / 2**20, "-")
    resnet.add("peak traced / weights", f"{ratio:.2f}x", f"<= 1.5x: {verdict}")
    resnet.add("  where: the stage of the peak", peak_stage, "-")
    for stage, (stage_peak, rise, ended) in stages.stages.items():
        if stage == "start" or (stage.startswith("pass ") and rise < 0.02 * weights):
            continue  # passes that allocate nothing worth showing
        resnet.add(f"  {stage}: peak / held after", f"{stage_peak / weights:.2f}x / {ended / weights:.2f}x", "-")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        onnx.save(model, str(path))
        del model
        _one_conv_model(Path(tmp) / "one_conv.onnx")
        runs = {mode: _fresh_process(path, mode, str(Path(tmp) / "one_conv.onnx"))
                for mode in ("load", "first", "warm")}
    failed = {mode: run for mode, run in runs.items() if isinstance(run, str)}
    for mode, error in failed.items():
        resnet.note(f"the fresh-process measurement '{mode}' failed ({error})")
    if not failed:
        load, first, warm = runs["load"], runs["first"], runs["warm"]
        resnet.add("fresh process: load_onnx alone, peak / held above the imports",
                   f"{(load['load_peak'] - load['imports']) / weights:.2f}x / "
                   f"{(load['loaded'] - load['imports']) / weights:.2f}x", "-")
        resnet.add("fresh process: interop convert's path, first conversion, peak RSS above the imports",
                   f"{(first['peak'] - first['imports']) / weights:.2f}x", "-")
        ratio = (warm["peak"] - warm["warm"]) / weights
        resnet.add("fresh process: interop convert's path after a one-Conv conversion, peak RSS above it",
                   f"{ratio:.2f}x", f"<= 1.5x: {benchlib.goal('ResNet-50 convert peak RSS / weights', ratio, 1.5)}")
    resnet.note("traced: Python objects and numpy arrays allocated during convert_model + save (the caller's ONNX "
                "ModelProto is C++ memory and not among them); stages: pre-pass (ONNX shape inference, initializers "
                "as numpy arrays), building the MIL program, each graph pass that allocates >= 2% of the weights, "
                "the rest of ct.convert (program checks, MIL -> protobuf, weight blob), metadata, save")
    resnet.note("the weights live as the pre-pass's numpy arrays, then as MIL consts; each weight-folding fusion "
                "(conv + batch norm, ...) releases the const it replaces at once (onnx2mil/passes.py)")
    resnet.note("fresh process: resident memory (with the allocator's retained pages) of the Core ML plugin's "
                "load_onnx (onnx's checker by path, then onnx.load), and of converter.onnx_to_coreml (load_onnx, "
                "the translation, writing the package, reading it back) in two more processes: as the first "
                "conversion (its peak includes the modules imported on first use), and after a one-Conv model "
                "was converted (the goal: what converting ResNet-50 adds to a process that has converted before)")
    resnet.note("the large weights are mapped one by one from the ONNX file (onnx2mil/weights.py); the converter "
                "then frees the translation and returns its heap (interop_coreml/memory.py) before reading the "
                "package back, whose weights are read once each (interpreter/blobs.py)")
    resnet.print()


if __name__ == "__main__":
    main()
