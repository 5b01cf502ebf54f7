"""Benchmark: ONNX -> PyTorch import time and trainable parameters, interop's importer against onnx2torch's.

Imports ResNet-50 (the zoo graph shipped in the onnx wheel, random weights in place of its
constant fills, up to its logits) with ``interop_torch.onnx_import.import_onnx`` and with onnx2torch 1.5.15's
``convert`` in the same process, prints the median times, their ratio, both modules'
trainable-parameter counts and the largest difference between their outputs. A Dense
network written as MatMul + Add (what tf2onnx exports for Keras) shows where the counts part.

onnx2torch depends on torchvision, whose registry wheels are CUDA builds that do not load
next to the CPU torch, so it is installed with ``--no-deps`` (``make bench`` does). Its
package then fails to import; the script names the modules that import torchvision and,
when neither is needed by the models here, gives onnx2torch a stand-in ``torchvision`` (in
this process only) whose ops raise if called.

Run:  python benchmarks/bench_onnx_to_torch.py [--repeats N]   (make bench runs every benchmark)
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import time
import types
from pathlib import Path

import benchlib

#: What importing onnx2torch needed, for the table's notes.
_NOTES: list[str] = []


def _modules_needing_torchvision() -> list[str]:
    """onnx2torch modules whose source imports torchvision (read as text, nothing imported)."""
    spec = importlib.util.find_spec("onnx2torch")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    pattern = re.compile(r"^\s*(import torchvision|from torchvision)", re.MULTILINE)
    return sorted(str(p.relative_to(root.parent)) for p in root.rglob("*.py") if pattern.search(p.read_text()))


def _onnx2torch():  # type: ignore[no-untyped-def]
    """onnx2torch's convert, or None; prints what importing it needed."""
    if importlib.util.find_spec("onnx2torch") is None:
        _NOTES.append("onnx2torch is not installed: pip install --no-deps onnx2torch==1.5.15 (make bench does)")
        return None
    try:
        from onnx2torch import convert

        _NOTES.append("onnx2torch imports without torchvision")
        return convert
    except ModuleNotFoundError as error:
        if error.name != "torchvision":
            raise
    needing = _modules_needing_torchvision()
    _NOTES.append(f"onnx2torch cannot import without torchvision: {', '.join(needing)} import it "
                  "(its NonMaxSuppression and RoiAlign converters)")
    for name in [n for n in sys.modules if n.startswith("onnx2torch")]:
        del sys.modules[name]

    def unavailable(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("torchvision is not installed (stand-in used by the benchmark)")

    stand_in = types.ModuleType("torchvision")
    stand_in.ops = types.ModuleType("torchvision.ops")  # type: ignore[attr-defined]
    stand_in.ops.roi_align = unavailable  # type: ignore[attr-defined]
    stand_in.ops.nms = stand_in.ops.batched_nms = unavailable  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = stand_in, stand_in.ops  # type: ignore[attr-defined]
    from onnx2torch import convert

    _NOTES.append("so onnx2torch runs with a stand-in torchvision in this process (its ops raise if called); "
                  "the models here use neither op")
    return convert


def _trainable(module) -> int:  # type: ignore[no-untyped-def]
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _logits(model):  # type: ignore[no-untyped-def]
    """The graph without its closing Softmax, which random weights saturate (the outputs would all agree)."""
    graph = model.graph
    softmax = next(n for n in graph.node if n.op_type == "Softmax" and n.output[0] == graph.output[0].name)
    producer = next(n for n in graph.node if softmax.input[0] in n.output)
    producer.output[:] = [graph.output[0].name if o == softmax.input[0] else o for o in producer.output]
    graph.node.remove(softmax)
    return model


def _dense_mlp():  # type: ignore[no-untyped-def]
    """Dense(2 -> 64, relu) -> Dense(3) as tf2onnx writes Keras Dense layers: MatMul then Add."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in
             (("dense/kernel", (2, 64)), ("dense/bias", (64,)), ("logits/kernel", (64, 3)), ("logits/bias", (3,)))]
    nodes = [helper.make_node("MatMul", ["x", "dense/kernel"], ["h0"]), helper.make_node("Add", ["h0", "dense/bias"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "logits/kernel"], ["l0"]),
             helper.make_node("Add", ["l0", "logits/bias"], ["logits"])]
    graph = helper.make_graph(nodes, "dense_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])], inits)
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _repeats(fn, at_least: int) -> int:  # type: ignore[no-untyped-def]
    """Enough rounds for about half a second of ``fn``: a median of 3 millisecond runs is mostly noise."""
    started = time.perf_counter()
    fn()
    return max(at_least, min(501, int(0.5 / max(time.perf_counter() - started, 1e-4))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    benchlib.quiet_libraries()

    import numpy as np
    import torch

    from interop.testing.zoo import zoo_model
    from interop_torch.onnx_import import import_onnx

    with benchlib.silenced_stderr():
        convert = _onnx2torch()
    torch.set_num_threads(1)
    table = benchlib.Table(
        f"ONNX -> PyTorch import, interop vs onnx2torch 1.5.15 (torch {torch.__version__}; median of at least "
        f"{args.repeats}, interleaved, more for models that import in milliseconds; 1 thread)",
        ["model", "interop [s]", "onnx2torch [s]", "onnx2torch / interop", "interop params", "onnx2torch params",
         "source weights", "max |diff|", "goal"],
    )
    for note in _NOTES:
        table.note(note)
    for name, model in (("resnet50", _logits(zoo_model("resnet50", seed=0))), ("dense_mlp", _dense_mlp())):
        imported = import_onnx(model)
        ours = imported.module.eval()
        shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
        params_met = benchlib.goal(f"{name}: interop trainable params / source weights",
                                   _trainable(ours) / imported.weight_count, 1.0, higher_is_better=True)
        if convert is None:
            (ours_s,) = benchlib.interleaved_medians([lambda: import_onnx(model)], args.repeats)
            table.add(name, ours_s, "n/a", "n/a", _trainable(ours), "n/a", imported.weight_count, "n/a",
                      f"params: {params_met}")
            continue
        ours_s, theirs_s = benchlib.interleaved_medians([lambda: import_onnx(model), lambda: convert(model)],
                                                        _repeats(lambda: import_onnx(model), args.repeats))
        theirs = convert(model).eval()
        with torch.no_grad():
            diff = float((ours(x) - theirs(x)).abs().max())
        speed = benchlib.goal(f"{name}: onnx2torch / interop import time", theirs_s / ours_s, 1.0,
                              higher_is_better=True)
        table.add(name, ours_s, theirs_s, f"{theirs_s / ours_s:.2f}x", _trainable(ours), _trainable(theirs),
                  imported.weight_count, f"{diff:.2e}", f"time >= 1x: {speed}; params: {params_met}")
    table.note("params: trainable parameters (requires_grad). onnx2torch keeps MatMul's constant operand as a buffer, "
               "so a Dense layer exported as MatMul + Add gives an optimizer nothing to train (onnx2torch #194).")
    table.note(benchlib.machine_load())
    table.print()


if __name__ == "__main__":
    main()
