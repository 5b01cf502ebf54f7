"""Judge one ONNX graph: translate it, run it in the interpreter, compare with onnxruntime.

Outcomes (``Outcome.status``):

- ``ok``        every output agrees;
- ``refused``   the translator refused the graph cleanly (UnsupportedModelError, exit 3):
                not a bug, counted apart;
- ``skipped``   neither onnxruntime nor onnx's reference evaluator could run the graph;
- ``crash``     ``crash[convert]`` (the translator raised anything else), ``crash[run]``
                (the interpreter raised) or ``crash[timeout]``;
- ``mismatch``  ``mismatch[shape|dtype|value|nonfinite]`` for the first output that differs.

When the interpreter and onnxruntime disagree, ``onnx.reference.ReferenceEvaluator``
is asked as a third opinion, and :data:`KNOWN_DEVIATIONS` lists the known ways the engines
legitimately differ (onnxruntime departing from the spec, float32 rounding turned into a
different result by a discontinuous op); a mismatch is *explained* only when a rule matches
and is verified on that very graph (each rule says how: onnxruntime on a spec-equivalent
rewrite of the graph (:mod:`interop_coreml.fuzz.rewrites`), the reference evaluator, or
onnxruntime fed the interpreter's values (:mod:`interop_coreml.fuzz.cascade`)). The
reference evaluator has bugs of its own (:func:`reference_bugs`): where one of those ops is
upstream of an output, its verdict on that output counts for nothing. When onnxruntime
cannot run the whole graph, each output is judged on its own upstream subgraph
(onnxruntime, then onnxruntime with each Resize done one axis at a time, then the reference
evaluator where it is trustworthy). The outputs of TopK (indices), ArgMax, ArgMin and
Hardmax are compared through the values they select (:mod:`interop_coreml.fuzz.ties`).
"""

from __future__ import annotations

import contextvars
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from interop_coreml.fuzz.cascade import AMPLIFYING, DISCONTINUOUS, SUMMING, verify_rounding_cascade
from interop_coreml.fuzz.rewrites import (
    ONNXRUNTIME_COMPATIBLE,
    align_corners_as_crop,
    attr,
    expand_mvn,
    explicit_convtranspose_pads,
    explicit_pool_pads,
    reference_compatible,
    separable_resize,
    tensor_values,
)
from interop_coreml.fuzz.ties import index_ties

#: Allowed error of a float element: ATOL + RTOL·|r| + SCALE·max|r| over the output.
ATOL, RTOL, SCALE = 1e-6, 1e-4, 1e-4
#: The same for a float16 output. One float16 ulp is 2⁻¹⁰ ≈ 1e-3 relative, and every op of a
#: float16 graph rounds its result to float16 where onnxruntime's kernels often keep float32
#: between ops (it inserts casts around ops it has no float16 kernel for): about ten ulps
#: relative, five ulps of the output's largest magnitude, one ulp at 1.0 absolute.
ATOL_HALF, RTOL_HALF, SCALE_HALF = 1e-3, 1e-2, 5e-3


#: True while :func:`evaluate` judges a graph that computes in float16 (even where its outputs
#: are cast to float32 at the end): every comparison then uses the float16 tolerances.
_JUDGING_HALF: contextvars.ContextVar[bool] = contextvars.ContextVar("judging_half", default=False)


def is_half(model: onnx.ModelProto) -> bool:
    """True for a graph with float16 inputs, initializers or computation (a float16 graph)."""
    half = onnx.TensorProto.FLOAT16
    return (any(v.type.tensor_type.elem_type == half for v in model.graph.input)
            or any(i.data_type == half for i in model.graph.initializer)
            or any(a.name == "to" and a.i == half for n in model.graph.node if n.op_type == "Cast" for a in n.attribute))


def allowed_error(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """The error each element of a float output may have: float16 tolerances when either side is
    float16 or the graph being judged computes in float16."""
    half = _JUDGING_HALF.get() or np.float16 in (np.asarray(ref).dtype, np.asarray(got).dtype)
    atol, rtol, scale = (ATOL_HALF, RTOL_HALF, SCALE_HALF) if half else (ATOL, RTOL, SCALE)
    r = np.asarray(ref, dtype=np.float64)
    c = np.asarray(got, dtype=np.float64)
    both = np.isfinite(r) & np.isfinite(c)
    max_ref = float(np.abs(r[both]).max()) if both.any() else 0.0
    return atol + rtol * np.abs(np.where(both, r, 0.0)) + scale * max_ref


@dataclass(frozen=True)
class Deviation:
    """A known way onnxruntime departs from the ONNX specification."""

    name: str
    reason: str
    ops: frozenset[str]  # the rule applies when the graph holds one of these ops ...
    kinds: frozenset[str]  # ... and the mismatch is of one of these kinds
    #: How a case is verified: "reference" (onnx's reference evaluator agrees with the interpreter,
    #: or, for a rule that also has a ``rewrite``, onnxruntime agrees on the rewritten graph where the
    #: reference evaluator cannot judge), "ort-unoptimized" (onnxruntime with ORT_DISABLE_ALL agrees),
    #: "ort-node-by-node" (onnxruntime run one node at a time, every tensor in its declared type,
    #: agrees), "ort-rewritten" (onnxruntime agrees on the graph ``rewrite`` makes: the spec's
    #: function body instead of an op's kernel, the spec's explicit pads instead of auto_pad),
    #: "normalization-noise" (see normalization_noise_explains), "mvn-slices" (every differing element is fed
    #: by an ill-conditioned MVN slice), "undefined-cast" (every differing element depends on a
    #: float→int cast the spec leaves undefined), "rounding-cascade", "tolerance-cascade",
    #: "amplified-cascade" and "summation-cascade"
    #: (:mod:`interop_coreml.fuzz.cascade`).
    verify: str = "reference"
    when: Callable[[onnx.ModelProto, dict], bool] | None = None  # a narrower condition on graph and feeds
    rewrite: Callable[[onnx.ModelProto, dict], onnx.ModelProto | None] | None = None  # "ort-rewritten", "reference"


def _nan_reaches(op_types: set[str]) -> Callable[[onnx.ModelProto, dict], bool]:
    """True when a NaN flows into one of ``op_types`` (tensor values from onnxruntime, unoptimised)."""
    def test(model: onnx.ModelProto, feeds: dict) -> bool:
        values = tensor_values(model, feeds)
        return any(node.op_type in op_types and node.input[0] in values
                   and np.isnan(np.asarray(values[node.input[0]], dtype=np.float64)).any()
                   for node in model.graph.node)
    return test


def _hasattr(op_type: str, name: str, values: set) -> Callable[[onnx.ModelProto, dict], bool]:
    def test(model: onnx.ModelProto, feeds: dict) -> bool:  # noqa: ARG001
        return any(node.op_type == op_type and any(
            a.name == name and onnx.helper.get_attribute_value(a) in values for a in node.attribute)
            for node in model.graph.node)
    return test


def _align_corners_fractional(model: onnx.ModelProto, feeds: dict) -> bool:
    """True when an align_corners Resize by scales gives some axis a fractional length (dim · scale)."""
    if not any(node.op_type == "Resize" for node in model.graph.node):
        return False
    try:
        values = tensor_values(model, feeds)
    except Exception:  # noqa: BLE001 - onnxruntime cannot run it: the rule cannot be verified
        return False
    for node in model.graph.node:
        if node.op_type != "Resize" or attr(node, "coordinate_transformation_mode") not in (
                b"align_corners", "align_corners"):
            continue
        scales = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        data = values.get(node.input[0])
        if scales is None or data is None or np.size(scales) != np.ndim(data):
            continue
        lengths = np.asarray(np.shape(data), dtype=np.float32) * np.asarray(scales, dtype=np.float32)
        if np.any(lengths != np.floor(lengths)):
            return True
    return False


#: The normalisations an ill-conditioned slice makes noisy (see normalization_noise_explains).
NORMALIZATIONS = frozenset({"MeanVarianceNormalization", "LayerNormalization", "InstanceNormalization",
                            "GroupNormalization"})


#: Known deviations (also listed in docs/fuzzing.md). Each is verified per case, as its ``verify`` says.
KNOWN_DEVIATIONS = (
    Deviation(
        "ort-graph-optimizer",
        "onnxruntime's graph optimizer rewrites the graph into one that computes something else "
        "(e.g. Transpose folded into a MatMul with a 1-D operand); onnxruntime with "
        "graph_optimization_level=ORT_DISABLE_ALL agrees with the interpreter",
        frozenset(), frozenset({"value", "shape", "nonfinite"}), verify="ort-unoptimized",
    ),
    Deviation(
        "ort-mvn-zero-variance",
        "MeanVarianceNormalization: the spec's function body divides by sqrt(variance) + 1e-9; "
        "onnxruntime's kernel divides by sqrt(variance) alone and returns NaN where the variance is 0 "
        "(a single element, or a constant slice, along the normalised axes); verified by running "
        "the function body in onnxruntime",
        frozenset({"MeanVarianceNormalization"}), frozenset({"nonfinite", "value", "shape"}),
        verify="ort-rewritten", rewrite=lambda model, feeds: expand_mvn(model),
    ),
    Deviation(
        "mvn-ill-conditioned",
        "MeanVarianceNormalization over a constant or near-constant slice (variance at most 1e-6 "
        "times the squared mean): x − mean is float32 rounding noise divided by a tiny deviation, so "
        "every engine returns noise (or NaN) there; verified by computing each slice's variance in "
        "float64 from the MVN input onnxruntime computed and checking that every differing output "
        "element is fed by such a slice",
        frozenset({"MeanVarianceNormalization"}), frozenset({"nonfinite", "value"}), verify="mvn-slices",
    ),
    Deviation(
        "ort-pool-same-dilations",
        "MaxPool/AveragePool with auto_pad SAME_UPPER/SAME_LOWER and a dilation > 1: onnxruntime "
        "computes the SAME padding from the undilated kernel and returns a shorter output (sometimes "
        "of size 0) than the spec's ceil(input / stride); verified by rewriting each such pool with "
        "the explicit pads the spec gives and running onnxruntime on that graph",
        frozenset({"MaxPool", "AveragePool"}), frozenset({"shape", "value", "nonfinite"}),
        verify="ort-rewritten", rewrite=lambda model, feeds: explicit_pool_pads(model, feeds),
    ),
    Deviation(
        "ort-argminmax-nan",
        "ArgMax/ArgMin over data holding NaN: the spec says nothing about NaN; onnx's reference "
        "evaluator (numpy) and the interpreter return the NaN's index, onnxruntime skips NaN "
        "(its comparisons with NaN are false)",
        frozenset({"ArgMax", "ArgMin"}), frozenset({"value"}), when=_nan_reaches({"ArgMax", "ArgMin"}),
    ),
    Deviation(
        "ort-instancenorm-cancellation",
        "InstanceNormalization: onnxruntime computes the variance as E[x²] − E[x]² in float32, which "
        "cancels catastrophically when |mean| is large against the spread (one element of 29.9 gets "
        "a variance of about 1e-6 instead of 0, so the output is not B); the spec's "
        "mean((x − mean)²) does not",
        frozenset({"InstanceNormalization"}), frozenset({"value"}),
    ),
    Deviation(
        "normalization-ill-conditioned",
        "LayerNormalization, InstanceNormalization or GroupNormalization over a constant or "
        "near-constant slice (variance at most 1e-6 times the squared mean): x − mean is rounding "
        "noise (the engines round the mean differently) divided by sqrt(variance + epsilon); "
        "verified when every differing output element is within twice what moving those slices' "
        "outputs by that noise bound (4·n·u·max|x| / sqrt(variance + epsilon) · max|scale|, "
        "variance in float64 from the input onnxruntime computed) moves it in onnxruntime, plus "
        "the tolerance: a wrong epsilon or a dropped scale stays a mismatch",
        NORMALIZATIONS - {"MeanVarianceNormalization"}, frozenset({"value"}), verify="normalization-noise",
    ),
    Deviation(
        "ort-resize-align-corners-fractional",
        "Resize with align_corners by a scale that gives a fractional length: the spec defines "
        "scale = length_resized / length_original, so length_resized = scale * length_original "
        "(fractional), as the ONNX conformance cases resize_downsample_scales_*_align_corners have "
        "it; onnxruntime uses the rounded output length; verified by the reference evaluator, which "
        "generates those conformance cases, agreeing with the interpreter, or else by onnxruntime "
        "on the Resize written as tf_crop_and_resize to the same sizes with the spec's coordinates",
        frozenset({"Resize"}), frozenset({"value"}), when=_align_corners_fractional,
        rewrite=align_corners_as_crop,
    ),
    Deviation(
        "ort-convtranspose-same-negative-pad",
        "ConvTranspose with auto_pad SAME_UPPER/SAME_LOWER: the spec makes the output "
        "input_shape * strides even when that needs a negative total padding (kernel smaller than "
        "the stride); onnxruntime (and onnx's shape inference) clamp the padding at 0 and return a "
        "shorter output; verified by writing each such ConvTranspose out with the spec's padding "
        "(explicit non-negative pads, a zero Pad for the negative part, the bias added after) and "
        "running onnxruntime on that graph",
        frozenset({"ConvTranspose"}), frozenset({"shape", "value"}), verify="ort-rewritten",
        when=_hasattr("ConvTranspose", "auto_pad", {b"SAME_UPPER", b"SAME_LOWER"}),
        rewrite=lambda model, feeds: explicit_convtranspose_pads(model, feeds),
    ),
    Deviation(
        "undefined-float-to-int-cast",
        "not a bug of either engine: ONNX's Cast from a float type to an integer type is undefined "
        "for NaN, ±Inf and values out of the target's range; onnxruntime (x86) returns the integer "
        "type's minimum there, the interpreter another value (NaN where the translator keeps a float "
        "round trip through int64 in float); verified when every differing output element changes "
        "with the value of such a cast element (the graph cut at the cast and run in onnxruntime "
        "with those elements set to 0 and to 7)",
        frozenset({"Cast", "CastLike"}), frozenset({"value", "nonfinite"}), verify="undefined-cast",
    ),
    Deviation(
        "float-rounding-cascade",
        "not a bug of either engine: numpy's and onnxruntime's float32 kernels differ by an ulp now "
        "and then (asin, tanh), and an op discontinuous in its input (a comparison, Floor, ArgMin, a "
        "cast to an integer) turns that ulp into a different result; verified when the inputs of the "
        "discontinuous ops differ between the engines by at most a few ulps and onnxruntime, fed the "
        "interpreter's values of exactly those tensors, reproduces the interpreter's outputs",
        frozenset(DISCONTINUOUS), frozenset({"value", "shape", "nonfinite"}), verify="rounding-cascade",
    ),
    Deviation(
        "float-tolerance-cascade",
        "not a bug of either engine: a tensor both engines compute within float tolerance of each "
        "other but more than a few ulps apart (a sum of many terms added in another order) feeds an op "
        "that is discontinuous or keeps the absolute error on a much smaller result (fmod of a large "
        "sum); verified when those inputs agree within the fuzzer's tolerance (the test every output "
        "passes) and onnxruntime, fed the interpreter's values of exactly those tensors, reproduces "
        "the interpreter's outputs",
        frozenset(DISCONTINUOUS), frozenset({"value", "shape", "nonfinite"}), verify="tolerance-cascade",
    ),
    Deviation(
        "float-amplified-by-normalization",
        "not a bug of either engine: a normalization (LayerNorm, InstanceNorm, GroupNorm, LpNorm, "
        "MVN) over a slice of small spread divides by it, so an input the engines compute within "
        "the float tolerance of each other (float16: an ulp apart) comes out up to 1/std times "
        "further apart; verified when those inputs agree within the tolerance and onnxruntime, fed "
        "the interpreter's values of exactly those tensors, reproduces the interpreter's outputs",
        frozenset(AMPLIFYING), frozenset({"value", "nonfinite"}), verify="amplified-cascade",
    ),
    Deviation(
        "float-summation-cancellation",
        "not a bug of either engine: a ReduceSum or ReduceMean whose terms cancel (sixty terms of "
        "magnitude up to 1.41 summing to 7e-7) has a rounding error of up to n ulps of the sum of "
        "the magnitudes, far beyond a tolerance relative to the small result, and the engines add "
        "in another order; verified when both engines' sums are within n·u·Σ|x| + u·|sum| of the "
        "exact sum (the op run in float64 on onnxruntime's input) and onnxruntime, fed the "
        "interpreter's sums, reproduces the interpreter's outputs",
        frozenset(SUMMING), frozenset({"value", "nonfinite"}), verify="summation-cascade",
    ),
    Deviation(
        "ort-float16-unrounded",
        "a float16 graph: onnxruntime runs a float16 op that has no float16 kernel in float32 "
        "between two Casts and removes the Cast pairs between two such ops, so a tensor the graph "
        "declares float16 is neither rounded to float16 nor overflows to ±Inf (ReduceProd of 2.0 "
        "twenty times gives 1048576, Floor of an Exp that float16 rounds to 19.0 gives 18, "
        "Greater(HardSigmoid(x), Transpose(HardSigmoid(x))) is true); verified by running the graph "
        "in onnxruntime one node at a time, every tensor held in the type the graph declares",
        frozenset(), frozenset({"value", "nonfinite"}), verify="ort-node-by-node",
        when=lambda model, feeds: is_half(model),
    ),
)


@dataclass
class Outcome:
    status: str
    kind: str = ""
    message: str = ""
    error_key: str = ""  # the normalised exception of a crash, part of its signature
    details: list[dict[str, Any]] = field(default_factory=list)
    reference_evaluator: dict[str, str] = field(default_factory=dict)
    explained: str | None = None  # the KNOWN_DEVIATIONS rule that explains a mismatch

    @property
    def failed(self) -> bool:
        return self.status in ("crash", "mismatch")

    @property
    def key(self) -> str:
        """What must stay the same while shrinking: status, kind, the crash's error, the explanation."""
        base = f"{self.status}[{self.kind}]" if self.kind else self.status
        if self.error_key:
            base += f" :: {self.error_key}"
        return base + (f" (explained: {self.explained})" if self.explained else "")


def signature(outcome: Outcome, model: onnx.ModelProto) -> str:
    """The readable failure signature: ``mismatch[shape] Greater+Where``, ``crash[convert] Trilu :: ...``."""
    ops = "+".join(sorted({n.op_type for n in model.graph.node})) or "(no nodes)"
    text = f"{outcome.status}[{outcome.kind}] {ops}" + (" (float16)" if is_half(model) else "")
    if outcome.error_key:
        text += f" :: {outcome.error_key}"
    if outcome.explained:
        text += f" [explained: {outcome.explained}]"
    return text


def normalize_error(error: BaseException | str) -> str:
    """An exception as a stable key: innermost type and message, names and numbers blanked."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    text = text.strip().splitlines()[0] if text.strip() else ""
    # "X node 'n_3' failed to convert: AttributeError: msg" -> "AttributeError: msg"
    parts = re.split(r":\s+(?=[A-Z][A-Za-z]*(?:Error|Exception)\b)", text)
    text = parts[-1] if len(parts) > 1 else text
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", text)
    text = re.sub(r"\(?\[[^\]]*\]\)?|\([0-9, ]*\)", "[_]", text)
    text = re.sub(r"-?\b\d+(\.\d+)?(e[-+]?\d+)?\b", "N", text)
    text = re.sub(r"\s+", " ", text)
    return text[:100]


# ====================================================================== engines


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray], optimize: bool = True) -> dict:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # an engine refusing a graph is a result, not console noise
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def run_onnxruntime_node_by_node(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict:
    """The graph's outputs computed by onnxruntime one node at a time, each node its own model.

    Every tensor between two nodes is then held in the type the graph declares for it. On the
    whole graph onnxruntime runs a float16 op that has no float16 kernel in float32 between two
    Casts and removes the Cast pairs between two such ops (at every optimisation level), so
    tensors the graph declares float16 are neither rounded to float16 nor overflow to ±Inf.
    Raises when a node cannot be run alone (a subgraph attribute, a type inference cannot give).
    """
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {v.name: v.type for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)}
    constants = {i.name: i for i in model.graph.initializer}
    values: dict[str, np.ndarray] = dict(feeds)
    for node in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError(f"{node.op_type} has a subgraph")
        inputs, initializers, node_feeds = [], [], {}
        for name in dict.fromkeys(n for n in node.input if n):
            if name in values:
                inputs.append(onnx.helper.make_tensor_value_info(
                    name, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(values[name]).dtype), None))
                node_feeds[name] = values[name]
            else:
                initializers.append(constants[name])
        outputs = []
        for name in node.output:
            if name:
                out = onnx.ValueInfoProto(name=name)
                out.type.tensor_type.elem_type = types[name].tensor_type.elem_type
                outputs.append(out)
        single = onnx.helper.make_model(
            onnx.helper.make_graph([node], "node", inputs, outputs, initializers),
            opset_imports=model.opset_import, ir_version=model.ir_version)
        values.update(run_onnxruntime(single, node_feeds, optimize=False))
    return {o.name: values[o.name] for o in model.graph.output}


def run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict:
    from onnx.reference import ReferenceEvaluator

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        evaluator = ReferenceEvaluator(model)
        names = [o.name for o in model.graph.output]
        return dict(zip(names, (np.asarray(v) for v in evaluator.run(None, feeds))))


class Refused(Exception):
    """The translator refused the graph with a clean UnsupportedModelError."""


class ConvertCrash(Exception):
    pass


class RunCrash(Exception):
    pass


def run_coreml(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict:
    """Translate ``model`` to an .mlpackage and run it in the reference interpreter."""
    from interop_coreml.coremltools_import import import_coremltools

    import_coremltools()  # as the plugin's entry points do: without TensorFlow and PyTorch (~800 MiB, ~8 s)
    from interop_coreml.onnx2mil.driver import convert_model
    from interop_coreml.onnx2mil.errors import UnsupportedModelError
    from interop_coreml.quiet import no_progress_bars, quiet_coremltools
    from interop_coreml.runtime import load_interpreter

    quiet_coremltools()
    with tempfile.TemporaryDirectory(prefix="interop-fuzz-") as tmp:
        path = Path(tmp) / "model.mlpackage"
        try:
            with warnings.catch_warnings(), no_progress_bars():
                warnings.simplefilter("ignore")
                convert_model(model).save(str(path))
        except UnsupportedModelError as error:
            raise Refused(error.message) from None
        except (KeyboardInterrupt, TimeoutError):
            raise
        except Exception as error:  # noqa: BLE001 - every other failure of the translator is a crash
            raise ConvertCrash(f"{type(error).__name__}: {error}") from error
        try:
            session = load_interpreter(path)
            shapes = {spec.name: tuple(spec.shape) for spec in session.inputs}
            fitted = {name: value.reshape(1) if value.ndim == 0 and shapes.get(name) == (1,) else value
                      for name, value in feeds.items()}
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                return {name: np.asarray(value) for name, value in session.run(fitted).items()}
        except (KeyboardInterrupt, TimeoutError):
            raise
        except Exception as error:  # noqa: BLE001
            raise RunCrash(f"{type(error).__name__}: {error}") from error


# ====================================================================== comparison


def compare_output(name: str, ref: np.ndarray, got: np.ndarray | None) -> tuple[str, str, dict] | None:
    """(kind, message, numbers) when ``got`` differs from ``ref``; None when they agree."""
    ref = np.asarray(ref)
    if got is None:
        return "shape", f"{name}: missing from the Core ML outputs", {"ref_dtype": str(ref.dtype)}
    got = np.asarray(got)
    if ref.ndim == 0 and got.size == 1:
        got = got.reshape(())  # Core ML outputs have rank >= 1
    numbers: dict[str, Any] = {"ref_dtype": str(ref.dtype), "cand_dtype": str(got.dtype), "shape": list(ref.shape)}
    if ref.shape != got.shape:
        return "shape", f"{name}: shape ref {ref.shape} vs coreml {got.shape}", numbers
    ref_int = ref.dtype.kind in "biu"
    got_int = got.dtype.kind in "biu"
    if ref_int != got_int:
        return "dtype", f"{name}: dtype ref {ref.dtype} vs coreml {got.dtype}", numbers
    if ref_int:  # int64 vs Core ML's int32, bool vs Core ML's int32 outputs: by value, exactly
        bad = ref.astype(np.int64) != got.astype(np.int64)
        numbers.update(n_bad=int(bad.sum()), size=int(ref.size))
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            return "value", (f"{name}: {int(bad.sum())}/{ref.size} integers differ (first at {first}: "
                             f"ref {ref[first]} vs coreml {got[first]})"), numbers
        return None
    r = ref.astype(np.float64)
    c = got.astype(np.float64)
    both = np.isfinite(r) & np.isfinite(c)
    same_nonfinite = ~np.isfinite(r) & ~np.isfinite(c) & ((r == c) | (np.isnan(r) & np.isnan(c)))
    nonfinite_bad = ~both & ~same_nonfinite
    max_ref = float(np.abs(r[both]).max()) if both.any() else 0.0
    err = np.where(both, np.abs(c - r), 0.0)
    bad = both & (err > allowed_error(ref, got))
    max_abs = float(err.max()) if err.size else 0.0
    numbers.update(max_abs=max_abs, max_ref=max_ref, scaled=max_abs / max_ref if max_ref else max_abs,
                   n_bad=int(bad.sum()), n_nonfinite_mismatch=int(nonfinite_bad.sum()), size=int(ref.size))
    if nonfinite_bad.any():
        return "nonfinite", f"{name}: {int(nonfinite_bad.sum())}/{ref.size} NaN/Inf on one side only", numbers
    if bad.any():
        return "value", (f"{name}: {int(bad.sum())}/{ref.size} beyond tol, max_abs {max_abs:.3g}, "
                         f"max_abs/max|ref| {numbers['scaled']:.3g}"), numbers
    return None


def _differences(expected: dict, got: dict) -> list[tuple[str, str, str, dict]]:
    found = []
    for name, ref in expected.items():
        problem = compare_output(name, ref, got.get(name))
        if problem:
            found.append((name, *problem))
    return found


# ====================================================================== the oracle


def upstream(model: onnx.ModelProto, feeds: dict, names: list[str]) -> tuple[onnx.ModelProto, dict]:
    """The subgraph that computes only the outputs ``names`` (and the feeds it still needs)."""
    from interop_coreml.fuzz.shrink import prune

    sub = onnx.ModelProto()
    sub.CopyFrom(model)
    kept = [o for o in model.graph.output if o.name in names]
    del sub.graph.output[:]
    sub.graph.output.extend(kept)
    return prune(sub, feeds)


def _shapes(model: onnx.ModelProto, feeds: dict) -> dict[str, tuple]:
    """Each tensor's shape as far as known: feeds, initializers, then onnx shape inference (None: unknown dim)."""
    shapes = {name: tuple(np.shape(v)) for name, v in feeds.items()}
    shapes.update({i.name: tuple(i.dims) for i in model.graph.initializer})
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001
        return shapes
    for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
            shapes.setdefault(v.name, tuple(d.dim_value if d.HasField("dim_value") else None
                                            for d in v.type.tensor_type.shape.dim))
    return shapes


def _constant_ints(model: onnx.ModelProto, name: str) -> list[int] | None:
    """The values of an integer initializer or Constant node output, or None."""
    for init in model.graph.initializer:
        if init.name == name:
            return [int(v) for v in onnx.numpy_helper.to_array(init).ravel()]
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name and node.attribute \
                and node.attribute[0].name == "value":
            return [int(v) for v in onnx.numpy_helper.to_array(node.attribute[0].t).ravel()]
    return None


_POOLS = ("MaxPool", "AveragePool", "LpPool")


def _resized_to_one(before: tuple | None, after: tuple | None) -> bool:
    """True when some axis may be resized from a length other than 1 to a length of 1 (None: unknown).

    An axis of length 1 reads the same element wherever it samples, so 1 → 1 (a batch axis left
    alone) is no case of the reference evaluator's pytorch_half_pixel bug.
    """
    if after is None or before is None or len(before) != len(after):
        return after is None or any(d in (1, None) for d in after)
    return any(a in (1, None) and b != 1 for b, a in zip(before, after))


def reference_bugs(model: onnx.ModelProto, feeds: dict) -> list[str]:
    """The nodes of ``model`` that onnx's reference evaluator (onnx 1.23) is known to compute wrongly.

    Such a result is never a verdict on its own (docs/fuzzing.md lists each bug).
    """
    shapes = _shapes(model, feeds)
    ranks = {name: len(shape) for name, shape in shapes.items()}
    found = []
    half = is_half(model)
    for node in model.graph.node:
        op = node.op_type
        if op == "Gelu" and half:
            found.append("Gelu in float16 (computed in float16: 1 + tanh/erf cancels, x < -3.5 gives -0)")
        elif op == "Resize" and attr(node, "coordinate_transformation_mode") == "pytorch_half_pixel" \
                and _resized_to_one(shapes.get(node.input[0]), shapes.get(node.output[0])):
            found.append("Resize pytorch_half_pixel to a length of 1 (samples -0.5, the spec 0)")
        elif op == "Slice" and len(node.input) > 4 and node.input[4]:
            steps, starts = _constant_ints(model, node.input[4]), _constant_ints(model, node.input[1])
            if (steps is None or min(steps, default=1) < 0) and (starts is None or min(starts, default=0) < 0):
                found.append("Slice with a negative step and a start that may be below -dim (not clamped to 0)")
        elif op == "GlobalMaxPool" and ranks.get(node.input[0]) != 4:  # GlobalAveragePool's axes are right
            found.append(f"{op} of rank {ranks.get(node.input[0], '?')} (reduces axes (ndim-2, ndim))")
        elif op == "LpNormalization" and (attr(node, "p", 2) == 1 or attr(node, "axis", -1) < 0):
            found.append("LpNormalization with p=1 or a negative axis")
        elif op == "LRN":
            found.append("LRN (the square sum is wrong for channels >= 1)")
        elif op in _POOLS and attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID") \
                and any(d > 1 for d in attr(node, "dilations", [])):
            found.append(f"{op} with auto_pad SAME_* and dilations (windows misplaced)")
        elif op in _POOLS and attr(node, "auto_pad", "NOTSET") != "NOTSET" and attr(node, "ceil_mode", 0):
            found.append(f"{op} with auto_pad and ceil_mode (asserts)")
        elif op in ("RNN", "GRU", "LSTM") and (attr(node, "clip") is not None
                                                or (len(node.input) > 4 and node.input[4])):
            found.append(f"{op} with clip or sequence_lens (it ignores both)")
    return found


def _expected_per_output(model: onnx.ModelProto, feeds: dict) -> tuple[dict, dict[str, str]]:
    """onnxruntime failed on the whole graph: judge each output on its own upstream subgraph.

    onnxruntime first; then onnx's reference evaluator, unless the subgraph holds an op the
    reference evaluator is known to get wrong (that output is then not compared).
    """
    expected: dict = {}
    judged: dict[str, str] = {}
    for output in model.graph.output:
        sub, sub_feeds = upstream(model, feeds, [output.name])
        try:
            expected[output.name] = run_onnxruntime(sub, sub_feeds)[output.name]
            judged[output.name] = "onnxruntime (on the output's own subgraph)"
            continue
        except Exception:  # noqa: BLE001
            pass
        # onnxruntime runs cubic Resize only on 2-D (or 4-D inner) axes, recurrent ops in layout 0 only
        rewritten = _onnxruntime_compatible(sub, sub_feeds, output.name)
        if rewritten is not None:
            expected[output.name], judged[output.name] = rewritten
            continue
        bugs = reference_bugs(sub, sub_feeds)
        if bugs:
            judged[output.name] = ("not compared: onnxruntime failed and the reference evaluator is "
                                   "unreliable for " + "; ".join(bugs))
            continue
        for candidate in (sub, reference_compatible(sub)):
            try:
                expected[output.name] = run_reference(candidate, sub_feeds)[output.name]
                judged[output.name] = "onnxruntime failed; compared with the reference evaluator"
                break
            except Exception:  # noqa: BLE001
                continue
    return expected, judged


_REWRITTEN = {"separable_resize": "each Resize one axis at a time",
              "time_major_recurrent": "each recurrent op of layout 1 run as layout 0 between Transposes"}


def _onnxruntime_compatible(sub: onnx.ModelProto, feeds: dict, name: str) -> tuple[np.ndarray, str] | None:
    """``name`` as onnxruntime computes it on a spec-equivalent rewrite of ``sub``, and how it was judged."""
    for rewrite in ONNXRUNTIME_COMPATIBLE:
        try:
            rewritten = rewrite(sub, feeds)
            if rewritten is not None:
                value = run_onnxruntime(rewritten, feeds)[name]
                return value, f"onnxruntime (on the output's own subgraph, {_REWRITTEN[rewrite.__name__]})"
        except Exception:  # noqa: BLE001
            continue
    return None


def _run_compatible(run: Callable[[onnx.ModelProto], dict], model: onnx.ModelProto, feeds: dict) -> dict:
    """``run(model)``, or where onnxruntime cannot run ``model`` as written (a cubic Resize over
    other than the inner two axes, a recurrent op of layout 1), ``run`` of its first spec-equivalent
    rewrite (:data:`ONNXRUNTIME_COMPATIBLE`, which keeps every tensor's name) that runs."""
    try:
        return run(model)
    except Exception as error:  # noqa: BLE001
        for rewrite in ONNXRUNTIME_COMPATIBLE:
            try:
                rewritten = rewrite(model, feeds)
                if rewritten is not None:
                    return run(rewritten)
            except Exception:  # noqa: BLE001
                continue
        raise error


def evaluate(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Outcome:
    """Convert, run and compare one graph; see the module docstring for the outcomes."""
    token = _JUDGING_HALF.set(is_half(model))
    try:
        return _evaluate(model, feeds)
    finally:
        _JUDGING_HALF.reset(token)


def _evaluate(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Outcome:
    # The translator first: a graph it refuses (or crashes on) needs no other engine, and some
    # graphs it refuses (an empty dilated MaxPool with ceil_mode) make onnxruntime segfault.
    try:
        got = run_coreml(model, feeds)
    except Refused as refusal:
        return Outcome("refused", message=str(refusal)[:300])
    except ConvertCrash as crash:
        return Outcome("crash", "convert", str(crash)[:500], normalize_error(str(crash)))
    except RunCrash as crash:
        return Outcome("crash", "run", str(crash)[:500], normalize_error(str(crash)))
    judged: dict[str, str] = {}
    try:
        expected = run_onnxruntime(model, feeds)
    except Exception as ort_error:  # noqa: BLE001 - onnxruntime cannot run it: judge output by output
        expected, judged = _expected_per_output(model, feeds)
        if not expected:
            why = "; ".join(sorted({j for j in judged.values()})) or "reference evaluator failed"
            return Outcome("skipped", message=f"onnxruntime: {normalize_error(ort_error)}; {why}"[:300])
    diffs = _differences(expected, got)
    notes: list[str] = []
    diffs = index_ties(model, feeds, got, diffs, notes)
    if not diffs:
        return Outcome("ok", message="; ".join(notes))
    name, kind, message, numbers = diffs[0]
    outcome = Outcome("mismatch", kind, message, details=[{n: d for n, _, _, d in diffs}])
    by_reference = [n for n, *_ in diffs if judged.get(n, "onnxruntime").startswith("onnxruntime failed")]
    if by_reference:
        outcome.reference_evaluator = {n: judged[n] for n in by_reference}
        return outcome
    if judged:  # onnxruntime ran each differing output's own subgraph: judge that part of the graph
        model, feeds = upstream(model, feeds, [n for n, *_ in diffs])
    _ask_reference(model, feeds, got, expected, diffs, outcome)
    _explain(model, feeds, got, diffs, outcome)
    return outcome


def _ask_reference(model, feeds, got, expected, diffs, outcome: Outcome) -> None:
    try:
        spec = run_reference(model, feeds)
    except Exception as error:  # noqa: BLE001
        try:
            spec = run_reference(reference_compatible(model), feeds)
        except Exception:  # noqa: BLE001
            outcome.reference_evaluator = {n: f"reference evaluator failed: {normalize_error(error)}"
                                           for n, *_ in diffs}
            return
    for name, *_ in diffs:
        if name not in spec:
            continue
        bugs = reference_bugs(*upstream(model, feeds, [name]))
        if bugs:  # its answer is no verdict: no "reference" rule may rest on it
            outcome.reference_evaluator[name] = "reference evaluator unreliable here: " + "; ".join(bugs)
            continue
        agrees_ort = compare_output(name, spec[name], expected[name]) is None
        agrees_coreml = compare_output(name, spec[name], got.get(name)) is None
        outcome.reference_evaluator[name] = (
            "reference agrees with both" if agrees_ort and agrees_coreml
            else "reference agrees with onnxruntime" if agrees_ort
            else "reference agrees with coreml-interpreter" if agrees_coreml
            else "reference agrees with neither"
        )


def _explain(model, feeds, got, diffs, outcome: Outcome) -> None:
    """Set ``outcome.explained`` to the rule that explains every differing output, verified on this graph.

    When no one rule does and several outputs differ, each differing output is judged on its
    own upstream subgraph (outputs are computed independently): explained when every one of
    them is, by the rules joined with "+" (two deviations in one random graph).
    """
    _explain_together(model, feeds, got, diffs, outcome)
    if outcome.explained or len(diffs) < 2:
        return
    rules = set()
    for diff in diffs:
        name, kind = diff[0], diff[1]
        part = Outcome(outcome.status, kind)
        if name in outcome.reference_evaluator:
            part.reference_evaluator = {name: outcome.reference_evaluator[name]}
        sub, sub_feeds = upstream(model, feeds, [name])
        _explain_together(sub, sub_feeds, got, [diff], part)
        if not part.explained:
            return
        rules.add(part.explained)
    outcome.explained = "+".join(sorted(rules))


def rule_reasons(explained: str | None) -> str | None:
    """The reasons of the rules an ``Outcome.explained`` names ("a+b" for two of them)."""
    reasons = [r.reason for name in (explained or "").split("+") for r in KNOWN_DEVIATIONS if r.name == name]
    return "; ".join(reasons) or None


def _explain_together(model, feeds, got, diffs, outcome: Outcome) -> None:
    spec_sides_with_coreml = bool(outcome.reference_evaluator) and all(
        outcome.reference_evaluator.get(n) == "reference agrees with coreml-interpreter" for n, *_ in diffs)
    differing = [n for n, *_ in diffs]
    # a rule's op must compute one of the differing outputs, not only another output: a rule
    # verified by the reference evaluator alone would otherwise name the wrong cause
    try:
        ops = {n.op_type for n in upstream(model, feeds, differing)[0].graph.node}
    except Exception:  # noqa: BLE001
        ops = {n.op_type for n in model.graph.node}
    for rule in KNOWN_DEVIATIONS:
        if outcome.kind not in rule.kinds or (rule.ops and not rule.ops & ops):
            continue
        if rule.when is not None and not rule.when(model, feeds):
            continue
        if rule.verify == "ort-rewritten":
            if _rewrite_agrees(rule, model, feeds, got, differing):
                outcome.explained = rule.name
                return
        elif rule.verify in ("ort-unoptimized", "ort-node-by-node"):
            try:
                if rule.verify == "ort-unoptimized":
                    plain = _run_compatible(lambda m: run_onnxruntime(m, feeds, optimize=False), model, feeds)
                else:
                    plain = _run_compatible(lambda m: run_onnxruntime_node_by_node(m, feeds), model, feeds)
            except Exception:  # noqa: BLE001
                continue
            # only the outputs that differ: the others may be ill-conditioned in every engine
            if all(n in plain and compare_output(n, plain[n], got.get(n)) is None for n in differing):
                outcome.explained = rule.name
                return
        elif rule.verify in ("rounding-cascade", "tolerance-cascade", "amplified-cascade", "summation-cascade"):
            within = {"rounding-cascade": "ulps", "summation-cascade": "summation"}.get(rule.verify, "tolerance")
            fed_ops = AMPLIFYING if rule.verify == "amplified-cascade" else DISCONTINUOUS
            if verify_rounding_cascade(model, feeds, got, differing, within=within, ops=fed_ops):
                outcome.explained = rule.name
                return
        elif rule.verify == "mvn-slices":
            if mvn_ill_conditioned_feeds(model, feeds, got, differing):
                outcome.explained = rule.name
                return
        elif rule.verify == "normalization-noise":
            if normalization_noise_explains(model, feeds, got, differing, rule.ops):
                outcome.explained = rule.name
                return
        elif rule.verify == "undefined-cast":
            if undefined_casts_feed(model, feeds, got, differing):
                outcome.explained = rule.name
                return
        elif spec_sides_with_coreml or (rule.rewrite is not None and _rewrite_agrees(rule, model, feeds, got, differing)):
            # "reference" with a rewrite: where the reference evaluator cannot judge (an op it gets
            # wrong elsewhere in the graph), onnxruntime on the spec's rewrite may
            outcome.explained = rule.name
            return


def _rewrite_agrees(rule: Deviation, model: onnx.ModelProto, feeds: dict, got: dict, differing: list[str]) -> bool:
    """onnxruntime on ``rule.rewrite``'s graph computes every differing output as the interpreter did."""
    try:
        rewritten = rule.rewrite(model, feeds)
        if rewritten is None:
            return False
        plain = _run_compatible(lambda m: run_onnxruntime(m, feeds), rewritten, feeds)
    except Exception:  # noqa: BLE001 - the rewrite or onnxruntime failed: not verified
        return False
    return all(n in plain and compare_output(n, plain[n], got.get(n)) is None for n in differing)


#: A slice is ill-conditioned when its variance is at most this times its squared mean.
MVN_ILL_CONDITIONED = 1e-6


def _bad_elements(ref: np.ndarray, got: np.ndarray) -> np.ndarray | None:
    """Which elements of ``got`` differ from ``ref`` (None when the shapes differ)."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.ndim == 0 and got.size == 1:
        got = got.reshape(())
    if ref.shape != got.shape:
        return None
    if ref.dtype.kind in "biu" or got.dtype.kind in "biu":
        return ref.astype(np.int64) != got.astype(np.int64)
    r, c = ref.astype(np.float64), got.astype(np.float64)
    both = np.isfinite(r) & np.isfinite(c)
    same_nonfinite = ~np.isfinite(r) & ~np.isfinite(c) & ((r == c) | (np.isnan(r) & np.isnan(c)))
    return (both & (np.abs(np.where(both, c - r, 0.0)) > allowed_error(ref, got))) | (~both & ~same_nonfinite)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def _only_where_marked(model: onnx.ModelProto, feeds: dict, got: dict, differing: list[str],
                       marks: Callable[[dict], Any]) -> bool:
    """True when every element in which the outputs ``differing`` differ depends on a marked element.

    ``marks(values)`` (``values``: every tensor as onnxruntime computed it) yields
    ``(tensor, mask, replacements)``: the marked elements of a tensor and the values to try there
    (see :func:`_fed_by`).
    """
    values = tensor_values(model, feeds)
    if not all(n in values for n in differing):
        return False
    bad = {}
    for name in differing:
        mask = _bad_elements(values[name], got.get(name))
        if mask is None:
            return False
        bad[name] = mask
    fed = {name: np.zeros(mask.shape, bool) for name, mask in bad.items()}
    for name, mask, replacements in marks(values):
        if not _fed_by(model, feeds, values, name, mask, replacements, fed):
            return False
    return all(mask.any() and not (mask & ~fed[name]).any() for name, mask in bad.items())


def _fed_by(model: onnx.ModelProto, feeds: dict, values: dict, name: str, marked: np.ndarray,
            replacements: list[np.ndarray], outputs: dict[str, np.ndarray]) -> bool:
    """Add to each mask in ``outputs`` the elements that depend on the ``marked`` elements of tensor ``name``.

    The graph is cut at ``name`` (which becomes an input carrying onnxruntime's value) and the
    rest is run in onnxruntime once per replacement of the marked elements: an output element
    that changes any time depends on them. False when that cannot be run.
    """
    from interop_coreml.fuzz.shrink import _cut

    value = np.asarray(values[name])
    for output, fed in outputs.items():
        if output == name:
            fed |= marked
            continue
        cut = _cut(model, name, value, [output])
        if cut is None:
            return False
        inputs = {i.name for i in cut.graph.input}
        base = {n: v for n, v in {**feeds, name: value}.items() if n in inputs}
        try:
            plain = run_onnxruntime(cut, base, optimize=False)[output]
            for replacement in replacements:
                changed = run_onnxruntime(cut, {**base, name: np.where(marked, replacement, value).astype(value.dtype)},
                                          optimize=False)[output]
                fed |= _changed(plain, changed)
        except Exception:  # noqa: BLE001
            return False
    return True


def _normalized_slices(node: onnx.NodeProto, x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """x viewed so that each slice the op normalises is reduced over the returned axes."""
    op = node.op_type
    if op == "MeanVarianceNormalization":
        return x, tuple(a % x.ndim for a in attr(node, "axes", [0, 2, 3]))
    if op == "LayerNormalization":
        return x, tuple(range(attr(node, "axis", -1) % x.ndim, x.ndim))
    if op == "InstanceNormalization":
        return x, tuple(range(2, x.ndim))
    # GroupNormalization: channels in num_groups groups, each group with the spatial axes
    return x.reshape(x.shape[0], attr(node, "num_groups", 1), -1), (2,)


def _ill_conditioned(node: onnx.NodeProto, values: dict):
    """(x as float64, the slices' view of it, axes, mean, variance, the mask of x's elements in slices
    with variance <= MVN_ILL_CONDITIONED · mean²), or None when the op's input is not known or scalar."""
    if node.input[0] not in values or node.output[0] not in values:
        return None
    x = np.asarray(values[node.input[0]], dtype=np.float64)
    if x.ndim == 0:
        return None
    slices, axes = _normalized_slices(node, x)
    mean = slices.mean(axis=axes, keepdims=True)
    var = ((slices - mean) ** 2).mean(axis=axes, keepdims=True)
    ill = np.broadcast_to(var <= MVN_ILL_CONDITIONED * mean**2, slices.shape).reshape(x.shape)
    return x, slices, axes, mean, var, ill


def mvn_ill_conditioned_feeds(model: onnx.ModelProto, feeds: dict, got: dict, differing: list[str]) -> bool:
    """True when every differing element of the outputs ``differing`` is fed by an ill-conditioned MVN slice.

    For each MeanVarianceNormalization, its input (as onnxruntime computed it) is reduced in
    float64 over the op's axes; slices with variance <= MVN_ILL_CONDITIONED · mean² are marked.
    Which output elements they feed is found by cutting the graph at the MVN's output and
    running the rest in onnxruntime with the marked elements replaced by NaN and by a finite
    value (onnxruntime's own value there may be NaN: a constant slice): an element that changes
    either time depends on them.
    """
    def marks(values: dict):
        for node in model.graph.node:
            found = _ill_conditioned(node, values) if node.op_type == "MeanVarianceNormalization" else None
            if found is not None and found[-1].any():
                y = np.asarray(values[node.output[0]])
                yield node.output[0], found[-1], [np.full(y.shape, np.nan), np.where(np.isfinite(y), y + 7.0, 7.0)]

    return _only_where_marked(model, feeds, got, differing, marks)


def normalization_noise_explains(model: onnx.ModelProto, feeds: dict, got: dict, differing: list[str],
                                 op_types: frozenset[str]) -> bool:
    """True when each differing element of ``differing`` is explained by rounding noise of ill-conditioned
    slices of the epsilon normalisations ``op_types`` (LayerNorm, InstanceNorm, GroupNorm).

    Per op, the noise bound of a slice is 4·n·u·max|x| / sqrt(variance + epsilon) · max|scale|
    (n the slice's size, u the input's unit roundoff; x and the variance as onnxruntime's input
    gives them, in float64): what rounding the mean differently can do. The graph is cut at the
    op's output and run in onnxruntime with the ill-conditioned slices moved by +bound and by
    -bound; a differing element is explained when it is within twice the larger move plus the
    tolerance (or is the op's output itself, within twice the bound).
    """
    from interop_coreml.fuzz.shrink import _cut

    values = tensor_values(model, feeds)
    if not all(n in values for n in differing):
        return False
    reach = {}
    for name in differing:
        if _bad_elements(values[name], got.get(name)) is None:
            return False
        reach[name] = np.zeros(np.shape(values[name]))
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        found = _ill_conditioned(node, values)
        if found is None or not found[-1].any():
            continue
        x, slices, axes, mean, var, ill = found
        unit = float(np.finfo(np.asarray(values[node.input[0]]).dtype).eps) / 2
        size = int(np.prod([slices.shape[a] for a in axes]))
        largest = np.abs(slices).max(axis=axes, keepdims=True)
        epsilon = float(attr(node, "epsilon", 1e-5))
        scale = np.asarray(values.get(node.input[1], 1.0), dtype=np.float64) if len(node.input) > 1 else 1.0
        bound = 4 * size * unit * largest / np.sqrt(var + epsilon) * float(np.abs(scale).max(initial=1.0))
        bound = np.where(ill, np.broadcast_to(bound, slices.shape).reshape(x.shape), 0.0)
        y = np.asarray(values[node.output[0]])
        for output in differing:
            if output == node.output[0]:
                reach[output] = np.maximum(reach[output], 2 * bound)
                continue
            cut = _cut(model, node.output[0], y, [output])
            if cut is None:
                return False
            inputs = {i.name for i in cut.graph.input}
            base = {n: v for n, v in {**feeds, node.output[0]: y}.items() if n in inputs}
            try:
                plain = np.asarray(run_onnxruntime(cut, base, optimize=False)[output], dtype=np.float64)
                for sign in (1.0, -1.0):
                    moved = (y + sign * bound).astype(y.dtype)
                    changed = run_onnxruntime(cut, {**base, node.output[0]: moved}, optimize=False)[output]
                    reach[output] = np.maximum(reach[output], 2 * np.abs(np.asarray(changed, np.float64) - plain))
            except Exception:  # noqa: BLE001
                return False
    for name in differing:
        ref = np.asarray(values[name], dtype=np.float64)
        candidate = np.asarray(got[name], dtype=np.float64)
        bad = _bad_elements(values[name], got[name])
        if not bad.any():
            return False
        within = np.abs(candidate - ref) <= reach[name] + allowed_error(values[name], got[name])
        if (bad & ~within).any():
            return False
    return True


def undefined_cast_elements(x: np.ndarray, target: np.dtype) -> np.ndarray:
    """Which elements of float ``x`` ONNX's Cast to the integer type ``target`` leaves undefined.

    The spec: "Casting from floating point to fixed point: undefined if OOR (out of range)", so
    NaN, ±Inf and every value whose truncation the target type cannot hold.
    """
    x = np.asarray(x, dtype=np.float64)
    info = np.iinfo(target)
    with np.errstate(invalid="ignore"):
        whole = np.trunc(x)
        # float(info.max) rounds 2**63 - 1 up to 2**63: compare with max + 1 as a float
        return ~np.isfinite(x) | (whole < float(info.min)) | (whole >= float(info.max) + 1.0)


def undefined_casts_feed(model: onnx.ModelProto, feeds: dict, got: dict, differing: list[str]) -> bool:
    """True when every differing element of the outputs ``differing`` depends on an undefined float→int cast.

    For each Cast/CastLike from a float type to an integer type, the elements of its input (as
    onnxruntime computed it) that are NaN, ±Inf or out of the target's range are marked; the
    graph is cut at the cast's output and the rest run in onnxruntime with the marked elements
    set to 0 and to 7: an output element that changes depends on a value ONNX does not define.
    """
    def marks(values: dict):
        for node in model.graph.node:
            if node.op_type not in ("Cast", "CastLike") or node.input[0] not in values \
                    or node.output[0] not in values:
                continue
            x, y = np.asarray(values[node.input[0]]), np.asarray(values[node.output[0]])
            if x.dtype.kind != "f" or y.dtype.kind not in "iu" or x.shape != y.shape:
                continue
            marked = undefined_cast_elements(x, y.dtype)
            if marked.any():
                yield node.output[0], marked, [np.zeros_like(y), np.full_like(y, 7)]

    return _only_where_marked(model, feeds, got, differing, marks)
