"""Benchmark: an ONNX model past 2 GB (external data) to Core ML, peak memory against the weight size.

Builds a model of ``--gigabytes`` of float32 weights (default 2.5) from one repeated block,
``x -> MatMul(W_i) -> Add(b_i) -> Relu`` with W_i of ``--hidden`` x ``--hidden`` random values,
writing the weights straight to one external-data file (never all in memory), then converts it
with ``interop convert model.onnx -o model.mlpackage`` in a child process and prints that
process's peak resident memory (from wait4) divided by the weight size; the goal is <= 2.5x.
The child's resident memory right after its imports is printed too, so the part the model
itself costs can be read off.

Memory is shared with other people's work on this machine: run the full size only when the
number is wanted (``make test`` proves the code path on a small external-data model).

Run:  python benchmarks/bench_large_onnx_to_coreml.py [--gigabytes 2.5] [--hidden 4096] [--verify]
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib

GOAL = 2.5

# The child converts, and reports its resident memory after the imports (before any model).
_CHILD = """
import resource, sys
import interop
from interop_coreml.coremltools_import import import_coremltools
import_coremltools()
from interop_coreml import converter, onnx2mil  # noqa: F401 - everything convert imports
print("BASELINE_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
interop.convert(sys.argv[1], sys.argv[2])
"""


def build(folder: Path, gigabytes: float, hidden: int, seed: int = 0) -> tuple[Path, int]:
    """model.onnx + weights.bin in ``folder``; returns (model path, weight bytes)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    block_bytes = (hidden * hidden + hidden) * 4
    blocks = max(1, math.ceil(gigabytes * 1e9 / block_bytes))
    rng = np.random.default_rng(seed)
    initializers, nodes = [], []
    offset = 0
    with open(folder / "weights.bin", "wb") as data:
        def external(name: str, array: np.ndarray) -> TensorProto:
            nonlocal offset
            raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
            data.write(raw)
            tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(array.shape))
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(raw)
            return tensor

        x = "x"
        for i in range(blocks):
            weight = (rng.standard_normal((hidden, hidden), dtype=np.float32) * np.float32(math.sqrt(2.0 / hidden)))
            initializers += [external(f"w{i}", weight), external(f"b{i}", rng.uniform(-0.1, 0.1, hidden))]
            nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
                      helper.make_node("Relu", [f"a{i}"], [f"h{i}"])]
            x = f"h{i}"
            del weight
    graph = helper.make_graph(nodes, "repeated_blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", hidden])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", hidden])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())  # small: the weights are in weights.bin
    onnx.checker.check_model(str(path))
    return path, offset


def verify(model: Path, package: Path, hidden: int) -> str:
    """Max |Core ML (interpreter) - onnxruntime| on a batch of 2 (loads the weights twice: big)."""
    import numpy as np
    import onnxruntime as ort

    from interop_coreml.runtime import load_interpreter

    x = np.random.default_rng(1).standard_normal((2, hidden)).astype(np.float32)
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = next(iter(load_interpreter(package).run({"x": x}).values()))
    scale = float(np.max(np.abs(expected))) or 1.0
    return f"max |difference| {float(np.max(np.abs(got - expected))):.3g} (output scale {scale:.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.5)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--verify", action="store_true", help="also compare with onnxruntime (needs ~3x the memory)")
    parser.add_argument("--folder", type=Path, default=None, help="where to build (default: a temporary folder)")
    args = parser.parse_args()
    benchlib.quiet_libraries()

    folder = Path(tempfile.mkdtemp(prefix="bench-large-", dir=args.folder))
    try:
        model, weight_bytes = build(folder, args.gigabytes, args.hidden)
        package = folder / "model.mlpackage"
        run = benchlib.run_measured([sys.executable, "-c", _CHILD, str(model), str(package)])
        if run.returncode:
            print(run.output[-3000:])
            raise SystemExit(f"conversion failed (exit {run.returncode})")
        baseline_mib = next((int(line.split()[1]) / 1024 for line in run.output.splitlines()
                             if line.startswith("BASELINE_KIB")), float("nan"))
        weights_mib = weight_bytes / 2**20
        blob = sum(p.stat().st_size for p in (package / "Data").rglob("*") if p.is_file()) / 2**20
        ratio = run.peak_rss_mib / weights_mib
        table = benchlib.Table(f"ONNX with external data -> .mlpackage ({args.hidden} x {args.hidden} blocks)",
                               ["quantity", "value"])
        table.add("weights (external data) [MiB]", weights_mib)
        table.add("package size [MiB]", blob)
        table.add("conversion wall time [s]", run.seconds)
        table.add("conversion CPU time [s]", run.cpu_seconds)
        table.add("child RSS after imports [MiB]", baseline_mib)
        table.add("child peak RSS [MiB]", run.peak_rss_mib)
        table.add("peak RSS / weight size", ratio)
        table.add("(peak RSS - imports) / weight size", (run.peak_rss_mib - baseline_mib) / weights_mib)
        verdict = benchlib.goal("peak RSS / weight size (2.5 GB ONNX with external data -> Core ML)", ratio, GOAL)
        table.note(f"goal: peak RSS <= {GOAL}x the weight size: {verdict}")
        table.note(benchlib.machine_load())
        if args.verify:
            table.note(verify(model, package, args.hidden))
        table.print()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
