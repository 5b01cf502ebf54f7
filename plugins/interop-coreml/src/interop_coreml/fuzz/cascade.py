"""Verify a rounding cascade: an ulp-level difference that a discontinuous op turns into a different result.

numpy's float32 kernels (the interpreter's) and onnxruntime's round differently now and then
(``asin``, ``tanh``: 1 ulp). Both are correct to float32 precision, but an op that is
discontinuous in its float input (``Greater``, ``Floor``, ``ArgMin``, a cast to an integer,
...) turns that ulp into a different boolean, integer or choice, and everything after it
differs by far more than any tolerance. Such a mismatch is explained only when, on that very
graph,

1. the float inputs of the discontinuous ops that differ between the interpreter and
   onnxruntime differ by at most :data:`MAX_ULPS` ulps, element by element (rule
   ``float-rounding-cascade``), or, for a tensor summed from many terms in another order,
   agree within the fuzzer's float tolerance, the test every graph output passes (rule
   ``float-tolerance-cascade``: an fmod of a sum of 144 terms keeps the sum's absolute
   error on a result a hundred times smaller); anything else is a real difference upstream;
   and
2. onnxruntime, running the graph with exactly those tensors fed with the interpreter's
   values, reproduces the interpreter's value of every differing output (so the translator
   computed everything downstream of the rounding as the spec says).

The interpreter's values of those tensors come from converting and running the graph with
them as extra outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

#: Ops whose output jumps when a float input moves by an ulp across a threshold
#: (comparisons, rounding, choices, casts to integers, data-dependent shapes).
DISCONTINUOUS = frozenset({
    "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal",
    "Floor", "Ceil", "Round", "Sign", "Mod",
    "ArgMax", "ArgMin", "Hardmax", "TopK",
    "Cast", "CastLike", "NonZero", "Range", "OneHot",
    "Shrink", "ThresholdedRelu", "Pow",
})

#: Ops that divide by a statistic of their input (a standard deviation, a norm): where it is
#: small they multiply a difference within tolerance in their input by as much as 1/std.
AMPLIFYING = frozenset({
    "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LpNormalization",
    "MeanVarianceNormalization",
})

#: The largest difference, in float32 ulps of the larger magnitude, still called rounding.
MAX_ULPS = 8

#: Ops that add many terms: where the terms cancel, the sum's rounding error (bounded by the
#: number of terms times an ulp of the sum of their magnitudes) may exceed any tolerance relative
#: to the small result, and two correct engines that add in another order differ by more.
SUMMING = frozenset({"ReduceSum", "ReduceMean"})


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise distance in ulps of ``a``'s type (float16, else float32): how many such values lie between.

    0 for equal values (NaN and NaN included), inf where only one is finite or NaN.
    """
    half = np.asarray(a).dtype == np.float16
    kind, bits_type, sign = (np.float16, np.int16, 0x7FFF) if half else (np.float32, np.int32, 0x7FFFFFFF)
    a = np.asarray(a, dtype=kind)
    b = np.asarray(b, dtype=kind)

    def ordered(x: np.ndarray) -> np.ndarray:  # bit patterns as integers in the floats' order
        bits = x.view(bits_type).astype(np.int64)
        return np.where(bits < 0, -(bits & sign), bits)

    distance = np.abs(ordered(a) - ordered(b)).astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.where(same, 0.0, np.where(np.isfinite(a) & np.isfinite(b), distance, np.inf))


def rounding_tensors(model: onnx.ModelProto, values: dict[str, np.ndarray],
                     ops: frozenset[str] = DISCONTINUOUS) -> list[str]:
    """The float tensors (not constants, not graph inputs) that discontinuous ops read, in graph order.

    ``values`` (every tensor, as onnxruntime computed it) tells the dtypes: a Cast or CastLike is
    discontinuous only into an integer or bool.
    """
    constants = {init.name for init in model.graph.initializer} | {i.name for i in model.graph.input}  # the same in both
    found: list[str] = []
    for node in model.graph.node:
        if node.op_type not in ops:
            continue
        if node.op_type in ("Cast", "CastLike") and np.asarray(values.get(node.output[0], 0.0)).dtype.kind == "f":
            continue
        found += [name for name in node.input if name and name not in constants and name not in found
                  and name in values and np.asarray(values[name]).dtype.kind == "f"]
    return list(dict.fromkeys(found))  # once each: Greater(t, t) reads t twice


def summation_tensors(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> list[str]:
    """The float outputs of the summing ops (:data:`SUMMING`), in graph order."""
    return [node.output[0] for node in model.graph.node if node.op_type in SUMMING
            and np.asarray(values.get(node.output[0], 0)).dtype.kind == "f"]


def within_summation_bound(model: onnx.ModelProto, values: dict[str, np.ndarray], name: str,
                           candidates: list[np.ndarray]) -> bool:
    """True when every value in ``candidates`` is a correct float summation of the op that makes ``name``.

    The op runs again in float64 (onnxruntime, one node) on its input from ``values`` and on the
    input's magnitudes: a recursive or pairwise sum of n terms in precision u is within
    n·u·Σ|x| of the exact sum, plus the rounding of the result itself (u·|sum|); a mean divides both by n.
    """
    from interop_coreml.fuzz.oracle import run_onnxruntime

    node = next(n for n in model.graph.node if n.output[0] == name)
    x = np.asarray(values[node.input[0]])
    u = 2.0**-11 if x.dtype == np.float16 else 2.0**-24
    constants = {i.name: i for i in model.graph.initializer}
    extra = [n for n in node.input[1:] if n]
    if any(n not in values and n not in constants for n in extra):
        return False
    one = helper.make_node(node.op_type, ["x", *extra], ["y"], **{
        a.name: helper.get_attribute_value(a) for a in node.attribute})
    graph = helper.make_graph(
        [one], "sum", [helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, None)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, None)],
        [constants[n] if n in constants else onnx.numpy_helper.from_array(np.asarray(values[n]), n) for n in extra])
    single = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        exact = run_onnxruntime(single, {"x": x.astype(np.float64)})["y"]
        magnitude = run_onnxruntime(single, {"x": np.abs(x.astype(np.float64))})["y"]
    except Exception:  # noqa: BLE001
        return False
    terms = x.size / max(np.size(exact), 1)
    bound = terms * u * magnitude + u * np.abs(exact)
    for value in candidates:
        value = np.asarray(value, dtype=np.float64)
        if value.size != exact.size or not np.all(np.abs(value.reshape(exact.shape) - exact) <= bound):
            return False
    return True


def feed_tensors(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``model`` in which the consumers of each tensor in ``values`` read a new graph input instead."""
    fed = onnx.ModelProto()
    fed.CopyFrom(model)
    renamed = {name: f"{name}__fed" for name in values}
    for node in fed.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    for name, value in values.items():
        fed.graph.input.append(helper.make_tensor_value_info(
            renamed[name], helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
    del fed.graph.value_info[:]
    for output in fed.graph.output:  # a data-dependent shape may change with the fed values
        output.type.tensor_type.ClearField("shape")
    return fed


def verify_rounding_cascade(model: onnx.ModelProto, feeds: dict, got: dict, differing: list[str],
                            notes: list[str] | None = None, within: str = "ulps",
                            ops: frozenset[str] = DISCONTINUOUS) -> bool:
    """True when the outputs ``differing`` are a rounding cascade (module docstring), verified on this graph.

    Tensors are fed one at a time in graph order: the first discontinuous-op input on which
    onnxruntime (already fed the interpreter's earlier values) and the interpreter differ must
    differ by at most MAX_ULPS (``within="ulps"``) or agree within the float tolerance
    (``within="tolerance"``), and is fed next; with ``within="summation"`` the tensors are the
    outputs of the summing ops, and both engines' values must be within the summation error
    bound of the exact sum (:func:`within_summation_bound`); a later one is compared only once everything
    before it is fed, since before that it legitimately carries the cascade's result.
    """
    from interop_coreml.fuzz.oracle import _bad_elements, compare_output, run_coreml
    from interop_coreml.fuzz.shrink import _declare_outputs, intermediate_values

    graph_inputs = {i.name for i in model.graph.input}
    base = {k: v for k, v in feeds.items() if k in graph_inputs}
    theirs = {**feeds, **intermediate_values(model, feeds)}
    candidates = summation_tensors(model, theirs) if within == "summation" else rounding_tensors(model, theirs, ops)
    if not candidates:
        return False
    probe = _declare_outputs(model, [*(o.name for o in model.graph.output), *candidates])
    if probe is None:
        return False
    try:
        ours = run_coreml(probe, feeds)
    except Exception:  # noqa: BLE001
        return False
    fed: dict[str, np.ndarray] = {}
    worst = 0.0
    while True:
        for name in candidates:
            if name in fed:
                continue
            if name not in theirs or name not in ours or np.size(ours[name]) != np.size(theirs[name]):
                return False
            reference = np.asarray(theirs[name])
            value = np.asarray(ours[name]).reshape(reference.shape).astype(reference.dtype)
            distance = ulps(reference, value)
            if distance.any():
                break
        else:
            if not fed:
                # No such tensor differs as the graph declares it, yet the outputs do: onnxruntime
                # runs float16 ops that lack a float16 kernel in float32 and drops the casts between
                # them, so the next op read a value never rounded to float16. Feeding the tensors
                # (equal in both engines) rounds them as the graph says.
                fed = {name: np.asarray(ours[name]).reshape(np.shape(theirs[name])).astype(
                    np.asarray(theirs[name]).dtype) for name in candidates}
                rerun = feed_tensors(model, fed)
                theirs = {**feeds, **intermediate_values(rerun, {**base, **{f"{k}__fed": v for k, v in fed.items()}})}
                if not all(o.name in theirs for o in model.graph.output):
                    return False
            break  # every discontinuous op now reads what it read in the interpreter
        worst = max(worst, float(distance.max()))
        if within == "summation":
            if not within_summation_bound(model, {**theirs, **fed}, name, [reference, value]):
                return False
        elif worst > MAX_ULPS if within == "ulps" else _bad_elements(reference, value).any():
            return False
        fed[name] = value
        rerun = feed_tensors(model, fed)
        theirs = {**feeds, **intermediate_values(rerun, {**base, **{f"{k}__fed": v for k, v in fed.items()}})}
        if not all(o.name in theirs for o in model.graph.output):
            return False
    # an output that is itself a fed tensor is the interpreter's value, just checked
    if not fed or not all(compare_output(n, fed.get(n, theirs[n]), got.get(n)) is None for n in differing):
        return False
    if notes is not None:
        notes.append(f"rounding cascade through {', '.join(fed)} (at most {worst:g} ulps apart)")
    return True
