"""Shrink a failing graph to a minimal one that fails the same way (delta debugging).

Reductions, tried greedily until none applies:

1. keep a single graph output (and drop the nodes nothing needs any more);
2. make an intermediate tensor the only output (drops everything after it);
3. cut at an intermediate tensor: it becomes a graph input fed with the value it had
   (drops everything before it that nothing else needs);
4. turn a graph input into a constant with the same value;
5. shrink a graph input's shape (halve one dim, or make it 1) when the graph stays valid.

A candidate is kept when it is valid ONNX (checker and strict shape inference) and
``still_fails(model, feeds)`` is true: the caller's predicate compares the failure
signature, so the minimal graph shows the same bug, not another one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

Feeds = dict[str, np.ndarray]
Predicate = Callable[[onnx.ModelProto, Feeds], bool]


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    return clone


def prune(model: onnx.ModelProto, feeds: Feeds) -> tuple[onnx.ModelProto, Feeds]:
    """Drop nodes, initializers and inputs that no graph output depends on."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    kept.reverse()
    pruned = _copy(model)
    del pruned.graph.node[:]
    pruned.graph.node.extend(kept)
    inits = [i for i in graph.initializer if i.name in needed]
    del pruned.graph.initializer[:]
    pruned.graph.initializer.extend(inits)
    inputs = [i for i in graph.input if i.name in needed]
    del pruned.graph.input[:]
    pruned.graph.input.extend(inputs)
    del pruned.graph.value_info[:]
    return pruned, {n: v for n, v in feeds.items() if n in {i.name for i in inputs}}


def _declare_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto | None:
    """``model`` with exactly ``names`` as outputs, typed by strict shape inference."""
    candidate = _copy(model)
    del candidate.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(candidate, check_type=True, strict_mode=True, data_prop=True)
    except Exception:  # noqa: BLE001
        return None
    types = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    del candidate.graph.output[:]
    for name in names:
        if name not in types:
            return None
        candidate.graph.output.append(types[name])
    return candidate


def _valid(model: onnx.ModelProto) -> bool:
    if not model.graph.node or not model.graph.output:
        return False
    if any(o.name in {i.name for i in model.graph.input} for o in model.graph.output):
        return False
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception:  # noqa: BLE001
        return False
    return True


def intermediate_values(model: onnx.ModelProto, feeds: Feeds) -> dict[str, np.ndarray]:
    """Every tensor's value for ``feeds`` (onnxruntime without graph optimisations).

    Where onnxruntime cannot run a Resize (cubic over other than the inner two axes) or a
    recurrent op of layout 1, the graph runs rewritten into the spec's same function
    (:data:`interop_coreml.fuzz.rewrites.ONNXRUNTIME_COMPATIBLE`; every original tensor keeps its name).
    """
    from interop_coreml.fuzz.oracle import run_onnxruntime
    from interop_coreml.fuzz.rewrites import ONNXRUNTIME_COMPATIBLE

    names = [name for node in model.graph.node for name in node.output if name]
    probe = _declare_outputs(model, names)
    if probe is None:
        return {}
    try:
        return run_onnxruntime(probe, feeds, optimize=False)
    except Exception:  # noqa: BLE001
        pass
    # A node no output needs may be one onnxruntime cannot run (a float16 ScatterElements with
    # reduction 'mul'), which it never meets on the graph itself: the tensors the outputs need.
    from interop_coreml.fuzz.oracle import upstream

    try:
        live, live_feeds = upstream(model, feeds, [o.name for o in model.graph.output])
        live_probe = _declare_outputs(live, [name for node in live.graph.node for name in node.output if name])
        if live_probe is not None and len(live.graph.node) < len(model.graph.node):
            return run_onnxruntime(live_probe, live_feeds, optimize=False)
    except Exception:  # noqa: BLE001
        pass
    for rewrite in ONNXRUNTIME_COMPATIBLE:
        try:
            rewritten = rewrite(probe, feeds)
            if rewritten is not None:
                return run_onnxruntime(rewritten, feeds, optimize=False)
        except Exception:  # noqa: BLE001
            continue
    return {}  # then only output-level reductions are possible


def _candidates(model: onnx.ModelProto, feeds: Feeds, values: dict[str, np.ndarray]):
    graph = model.graph
    outputs = [o.name for o in graph.output]
    produced = [name for node in graph.node for name in node.output if name]
    if len(outputs) > 1:
        for name in outputs:
            yield "single output", _declare_outputs(model, [name]), feeds
    for name in reversed(produced):
        if name not in outputs:
            yield "earlier output", _declare_outputs(model, [name]), feeds
    for name in reversed(produced):
        if name in values and name not in outputs:
            yield "cut", _cut(model, name, values[name], outputs), {**feeds, name: values[name]}
    if len(graph.input) > 1:
        for value in graph.input:
            yield "input to constant", _to_constant(model, value.name, feeds[value.name]), feeds
    for value in graph.input:
        for smaller in _smaller_shapes(feeds[value.name].shape):
            candidate = _reshape_input(model, value.name, smaller)
            yield "smaller input", candidate, {**feeds, value.name: _crop(feeds[value.name], smaller)}


def _cut(model: onnx.ModelProto, name: str, value: np.ndarray, outputs: list[str]) -> onnx.ModelProto | None:
    candidate = _copy(model)
    graph = candidate.graph
    for node in graph.node:
        if name in node.output:
            index = list(node.output).index(name)
            node.output[index] = f"{name}__cut"  # its producer no longer feeds anybody
    elem = helper.np_dtype_to_tensor_dtype(value.dtype)
    graph.input.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    return _declare_outputs(candidate, outputs)


def _to_constant(model: onnx.ModelProto, name: str, value: np.ndarray) -> onnx.ModelProto | None:
    candidate = _copy(model)
    kept = [i for i in candidate.graph.input if i.name != name]
    del candidate.graph.input[:]
    candidate.graph.input.extend(kept)
    candidate.graph.initializer.append(numpy_helper.from_array(value, name))
    return _declare_outputs(candidate, [o.name for o in model.graph.output])


def _smaller_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    found = []
    for axis, dim in enumerate(shape):
        for smaller in sorted({1, dim // 2}):
            if 1 <= smaller < dim:
                found.append(shape[:axis] + (smaller,) + shape[axis + 1:])
    return found


def _crop(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(value[tuple(slice(0, d) for d in shape)])


def _reshape_input(model: onnx.ModelProto, name: str, shape: tuple[int, ...]) -> onnx.ModelProto | None:
    candidate = _copy(model)
    for value in candidate.graph.input:
        if value.name == name:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shape):
                if dim.HasField("dim_value"):
                    dim.dim_value = size
    for value in candidate.graph.output:
        value.type.tensor_type.ClearField("shape")
    return _declare_outputs(candidate, [o.name for o in model.graph.output])


def shrink(model: onnx.ModelProto, feeds: Feeds, still_fails: Predicate,
           budget_seconds: float = 60.0, max_checks: int = 400) -> tuple[onnx.ModelProto, Feeds]:
    """The smallest graph found within the budget for which ``still_fails`` holds.

    The budget is CPU time of this process, so a loaded machine shrinks as far as an idle one.
    """
    deadline = time.process_time() + budget_seconds
    checks = 0
    best, best_feeds = prune(model, feeds)
    if not still_fails(best, best_feeds):  # pruning alone changed the failure: start from the original
        best, best_feeds = model, feeds
    progress = True
    while progress and time.process_time() < deadline and checks < max_checks:
        progress = False
        values = intermediate_values(best, best_feeds)
        for _, candidate, candidate_feeds in _candidates(best, best_feeds, values):
            if candidate is None or time.process_time() > deadline or checks >= max_checks:
                continue
            candidate, candidate_feeds = prune(candidate, candidate_feeds)
            if not _valid(candidate) or not _smaller(candidate, best, candidate_feeds, best_feeds):
                continue
            checks += 1
            if still_fails(candidate, candidate_feeds):
                best, best_feeds = candidate, candidate_feeds
                progress = True
                break
    return best, best_feeds


def _smaller(a: onnx.ModelProto, b: onnx.ModelProto, a_feeds: Feeds, b_feeds: Feeds) -> bool:
    """Fewer nodes, or as many with fewer graph inputs, or as many with fewer input elements."""
    size_a = (len(a.graph.node), len(a.graph.input), sum(v.size for v in a_feeds.values()))
    size_b = (len(b.graph.node), len(b.graph.input), sum(v.size for v in b_feeds.values()))
    return size_a < size_b
