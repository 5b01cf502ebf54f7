"""The fp64 oracle: the exact answer a copy of the model should give, to tell which copy is off.

An ONNX copy of the model (the reference when it is ONNX, else an ONNX candidate, or with
``--oracle fp64`` the reference converted to ONNX) is rewritten to compute in float64 and
run on a few samples: in the best installed runtime of ONNX models (a plugin's, opened
through the plugin API like any model) when it runs every op in float64, else in onnx's
reference evaluator (numpy). Each copy's error against it is reported per output,
so a failing check says which copy is off, by how much, and on which engine.

A candidate is *as accurate as the reference* when its error against the oracle is at
most :data:`ACCURACY_FACTOR` times the reference's own (never judged below one unit of
rounding of the pair's precision). When the oracle is the reference itself in float64,
an output that fails its tolerance but whose candidate is as accurate as the reference,
on every sample that failed, passes: the difference is the reference's own rounding.
An oracle made from a candidate only informs, it never changes a verdict. An oracle that
both copies miss by more than :data:`CREDIBLE_ERROR` of the output's scale computes
another function (an op its engine gets wrong, more likely than two copies wrong alike):
it is reported as not credible and decides nothing.

The reference evaluator's ``BatchNormalization`` before opset 14 fills in the
``momentum`` attribute's default and then normalises by the *batch's* statistics mixed
with the stored ones (onnx 1.23); the oracle runs it with the specification's
inference formula instead (:class:`_InferenceBatchNormalization`).

"Cheap", the default (``--oracle auto``): the oracle runs when an output fails and the
group holds an ONNX model, on at most :data:`DEFAULT_ORACLE_SAMPLES` samples plus the samples that fail (up
to :data:`MAX_FAILING_SAMPLES`), in that runtime, or in the reference evaluator when the
model's estimated work for those samples stays under :data:`CHEAP_MACS` multiply-adds.
Its cost does not grow with ``--samples``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.checker.metrics import sample_scale
from interop.errors import remove_folder_at_sudden_exit
from interop.plugin_api import InteropError
from interop.plugin_registry import Registry, get_registry

ORACLE_MODES = ("auto", "fp64", "none")
#: Samples the oracle computes besides the failing ones (the first ones of the check).
DEFAULT_ORACLE_SAMPLES = 16
#: Failing samples the oracle computes at most; with more, it cannot vouch for every one.
MAX_FAILING_SAMPLES = 64
#: A candidate whose error against the oracle is at most this many times the reference's is as accurate.
ACCURACY_FACTOR = 8.0
#: The reference evaluator runs by default only below this many multiply-adds in all (about a second).
CHEAP_MACS = 4e8
#: One unit of rounding per precision: errors below it are not told apart.
UNIT_ROUNDING = {"fp64": 2.0 ** -52, "fp32": 2.0 ** -23, "fp16": 2.0 ** -10, "bf16": 2.0 ** -7}
#: An oracle both copies miss by more than this (of the output's scale) is not credible: it decides nothing.
CREDIBLE_ERROR = {"fp64": 1e-2, "fp32": 1e-2, "fp16": 1e-1, "bf16": 2.5e-1}

_FLOATS = None  # TensorProto FLOAT, FLOAT16, BFLOAT16, filled on first use


class OracleUnavailable(Exception):
    """The oracle cannot be computed here (the message says why)."""


# --------------------------------------------------------------------------- float64 model


def _float_types() -> set[int]:
    from onnx import TensorProto

    return {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def _tensor_to_double(tensor: Any) -> None:
    from onnx import TensorProto, numpy_helper

    if tensor.data_type in _float_types():
        array = numpy_helper.to_array(tensor).astype(np.float64)
        tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
        tensor.data_type = TensorProto.DOUBLE


def _value_info_to_double(value: Any) -> None:
    from onnx import TensorProto

    if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type in _float_types():
        value.type.tensor_type.elem_type = TensorProto.DOUBLE


def _graph_to_double(graph: Any) -> None:
    from onnx import AttributeProto, TensorProto, defs, helper

    floats = _float_types()
    for init in graph.initializer:
        _tensor_to_double(init)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        _value_info_to_double(value)
    nodes = []
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.TENSOR:
                _tensor_to_double(attribute.t)
            elif attribute.type == AttributeProto.GRAPH:
                _graph_to_double(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    _graph_to_double(sub)
            elif attribute.name in ("to", "dtype") and attribute.type == AttributeProto.INT and attribute.i in floats:
                attribute.i = TensorProto.DOUBLE
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value_float":
                    value = attribute.f
                    node.ClearField("attribute")
                    node.attribute.append(helper.make_attribute(
                        "value", helper.make_tensor("value", TensorProto.DOUBLE, [], [value])))
                    break
                if attribute.name == "value_floats":
                    values = list(attribute.floats)
                    node.ClearField("attribute")
                    node.attribute.append(helper.make_attribute(
                        "value", helper.make_tensor("value", TensorProto.DOUBLE, [len(values)], values)))
                    break
        # Inputs whose type the operator fixes to float (Resize's scales) stay float: cast them back.
        try:
            schema = defs.get_schema(node.op_type, domain=node.domain or "")
        except Exception:  # noqa: BLE001 - an unknown (custom) op: leave it as it is
            schema = None
        if schema is not None:
            for index, name in enumerate(node.input):
                formal = schema.inputs[min(index, len(schema.inputs) - 1)] if schema.inputs else None
                if name and formal is not None and formal.type_str in ("tensor(float)", "tensor(float16)"):
                    cast = f"{name}__interop_float_{len(nodes)}"
                    target = TensorProto.FLOAT if formal.type_str == "tensor(float)" else TensorProto.FLOAT16
                    nodes.append(helper.make_node("Cast", [name], [cast], to=target))
                    node.input[index] = cast
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def to_float64(model: Any) -> Any:
    """A copy of the ONNX ``model`` computing in float64 (float32/16 and bfloat16 tensors widened)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    _graph_to_double(copy.graph)
    return copy


def estimated_macs(model: Any) -> float:
    """Multiply-adds of one sample: Conv, ConvTranspose, Gemm and MatMul from inferred shapes (dynamic dims = 1)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - unknown ops or bad shapes: count what can be counted
        inferred = model
    graph = inferred.graph
    shapes: dict[str, list[int]] = {}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
                                  for d in value.type.tensor_type.shape.dim]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0.0
    for node in graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if out is None:
            continue
        if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] in shapes:
            weight = shapes[node.input[1]]
            total += math.prod(out) * math.prod(weight[1:])
        elif node.op_type in ("Gemm", "MatMul") and node.input[0] in shapes:
            total += math.prod(out) * (shapes[node.input[0]][-1] if shapes[node.input[0]] else 1)
    return total


# --------------------------------------------------------------------------- running


@dataclass
class Oracle:
    """A float64 copy of an ONNX model, ready to run samples (outputs cached by sample)."""

    label: str
    path: Path
    from_reference: bool
    engine: str = ""
    samples: list[int] = field(default_factory=list)
    input_dtypes: dict[str, Any] = field(default_factory=dict)
    _run: Any = None
    _cache: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    #: The folder of the float64 copy a runtime session reads (removed with the oracle).
    _folder: Any = None

    @classmethod
    def load(cls, path: Path, label: str, from_reference: bool, *, budget_samples: int | None,
             registry: Registry | None = None) -> "Oracle":
        """Load ``path`` in float64; ``budget_samples`` set: the reference evaluator only when cheap for them."""
        import onnx

        registry = registry or get_registry()
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001
            raise OracleUnavailable(f"cannot read {path}: {exc}") from None
        double = to_float64(model)
        oracle = cls(label, Path(path), from_reference)
        for value in double.graph.input:
            try:
                oracle.input_dtypes[value.name] = onnx.helper.tensor_dtype_to_np_dtype(
                    value.type.tensor_type.elem_type)
            except Exception:  # noqa: BLE001 - non-tensor or unknown types: fed as given
                pass
        reason = oracle._run_in_onnx_runtime(double, registry)
        if not reason:
            return oracle
        if budget_samples is not None:
            macs = estimated_macs(model) * budget_samples
            if macs > CHEAP_MACS:
                raise OracleUnavailable(
                    f"{reason}, and onnx's reference evaluator would need about {macs:.2g} multiply-adds for "
                    f"{budget_samples} samples (the default runs it below {CHEAP_MACS:.0e}); "
                    "--oracle fp64 runs it anyway")
        from onnx.reference import ReferenceEvaluator

        try:
            evaluator = ReferenceEvaluator(double, new_ops=[_inference_batch_normalization()])
        except Exception as exc:  # noqa: BLE001
            raise OracleUnavailable(f"{reason}; onnx's reference evaluator cannot load it either: {exc}") from None
        names = [o.name for o in double.graph.output]
        oracle._run = lambda feeds: dict(zip(names, evaluator.run(None, feeds)))
        oracle.engine = f"onnx {onnx.__version__} reference evaluator in float64"
        return oracle

    def _run_in_onnx_runtime(self, double: Any, registry: Registry) -> str:
        """Run ``double`` in the best installed runtime of ONNX models that runs here; "" or why it cannot.

        The runtime is a plugin's, reached through the plugin API like any model's: the
        float64 copy is written to a file the session keeps while the oracle lives.
        """
        import tempfile

        from interop.implementations import open_session
        from interop.runtime_choice import choose_runtime

        try:
            choice = choose_runtime("onnx", registry)
        except InteropError as exc:
            return exc.message
        self._folder = tempfile.TemporaryDirectory(prefix="interop-oracle-")
        remove_folder_at_sudden_exit(self._folder.name)
        path = Path(self._folder.name) / "fp64.onnx"
        try:
            path.write_bytes(double.SerializeToString())
            session = open_session(choice.provided, registry, path)
        except Exception as exc:  # noqa: BLE001 - a runtime without a float64 kernel for an op, mostly
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            text = text.removeprefix(f"{path}: ")
            self._folder.cleanup()
            self._folder = None
            return f"{choice.runtime} cannot run it in float64 ({text.split(' : ')[-1][:160]})"
        self._run = session.run
        version = dict(getattr(session, "versions", {}) or {}).get(choice.runtime)
        self.engine = f"{choice.runtime} {version} in float64" if version else \
            f"{getattr(session, 'engine', '') or choice.declared_engine} in float64"
        return ""

    def outputs(self, index: int, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The oracle's outputs for the feeds holding sample ``index`` (computed once)."""
        if index not in self._cache:
            widened = {name: np.asarray(value).astype(self.input_dtypes.get(name, np.asarray(value).dtype))
                       for name, value in feeds.items()}
            self._cache[index] = {name: np.asarray(value) for name, value in self._run(widened).items()}
            self.samples.append(index)
        return self._cache[index]

    def describe(self) -> dict[str, Any]:
        return {"model": self.label, "engine": self.engine, "from_reference": self.from_reference,
                "samples": sorted(self.samples)}


def _inference_batch_normalization() -> type:
    """The reference evaluator's op class for ``BatchNormalization`` of every opset, by the spec's formulas.

    Inference (one output, or ``training_mode`` 0): y = scale·(x − mean)/√(var + ε) + B with
    the stored statistics; ``training_mode`` 1 normalises by the batch's own statistics.
    ``spatial`` 0 (opset < 9) has per-activation statistics of shape (C, D1, ...).
    """
    from onnx.reference.op_run import OpRun

    class BatchNormalization(OpRun):  # the class name is the op type the evaluator overrides
        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None,  # type: ignore[no-untyped-def]
                 training_mode=None, spatial=None, is_test=None, consumed_inputs=None):
            epsilon = 1e-5 if epsilon is None else epsilon
            if spatial == 0:
                shape = (1, *np.shape(scale))
            else:
                shape = (1, -1) + (1,) * (x.ndim - 2)
            if training_mode == 1:
                axes = tuple(a for a in range(x.ndim) if a != 1)
                mean, var = x.mean(axis=axes), x.var(axis=axes)
            y = (x - np.reshape(mean, shape)) / np.sqrt(np.reshape(var, shape) + epsilon)
            y = y * np.reshape(scale, shape) + np.reshape(bias, shape)
            outputs = [y.astype(x.dtype)]
            if len(self.onnx_node.output) > 1:  # running statistics (training): returned as given
                outputs += [np.asarray(mean, dtype=x.dtype), np.asarray(var, dtype=x.dtype)]
            return tuple(outputs[: len(self.onnx_node.output)])

    BatchNormalization.__name__ = "BatchNormalization"
    return BatchNormalization


# --------------------------------------------------------------------------- judging


def scaled_error(value: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(max |x - o| / max(|o|, RMS of o), max |x - o|) over the finite elements; RMS over the whole sample."""
    value = np.asarray(value, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    finite = np.isfinite(value) & np.isfinite(exact)
    if not finite.any():
        return 0.0, 0.0
    diff = np.abs(value - exact)[finite]
    den = np.maximum(np.abs(exact), sample_scale(exact, sample_axis=False))[finite]
    return float(np.max(diff / np.maximum(den, 1e-300))), float(diff.max())


@dataclass
class OracleJudgement:
    """One output's errors against the oracle, over the samples the oracle computed."""

    reference_error: float
    candidate_error: float
    reference_max_abs: float
    candidate_max_abs: float
    ratio: float
    as_accurate: bool
    samples: int
    covers_failures: bool
    verdict: str
    #: False when both copies miss the oracle by more than CREDIBLE_ERROR: it then decides nothing.
    credible: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def judge(
    reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], exact: Sequence[np.ndarray],
    precision: str, covers_failures: bool,
) -> OracleJudgement:
    """Compare the reference's and the candidate's error against ``exact``, sample by sample."""
    ref_err = cand_err = ref_abs = cand_abs = 0.0
    for r, c, o in zip(reference, candidate, exact):
        rs, ra = scaled_error(r, o)
        cs, ca = scaled_error(c, o)
        ref_err, ref_abs = max(ref_err, rs), max(ref_abs, ra)
        cand_err, cand_abs = max(cand_err, cs), max(cand_abs, ca)
    unit = UNIT_ROUNDING.get(precision, UNIT_ROUNDING["fp32"])
    ratio = cand_err / max(ref_err, unit)
    as_accurate = ratio <= ACCURACY_FACTOR
    if as_accurate:
        verdict = f"candidate as accurate as the reference ({ratio:.2g}x its error)"
    elif ref_err <= unit and cand_err > unit:
        verdict = f"candidate is off ({cand_err:.2g} of the output's scale; the reference is exact to rounding)"
    else:
        verdict = f"candidate is off: {ratio:.3g}x the reference's error"
    if ref_err > ACCURACY_FACTOR * max(cand_err, unit):
        verdict = f"reference is off: {ref_err / max(cand_err, unit):.3g}x the candidate's error"
    credible = min(ref_err, cand_err) <= CREDIBLE_ERROR.get(precision, CREDIBLE_ERROR["fp32"])
    if not credible:
        verdict = (f"not credible: both copies differ from the oracle by {min(ref_err, cand_err):.2g} of the "
                   "output's scale or more, so its engine computes another function (an op it gets wrong?); "
                   "it decides nothing")
    return OracleJudgement(ref_err, cand_err, ref_abs, cand_abs, ratio, as_accurate and credible, len(exact),
                           covers_failures, verdict, credible)
