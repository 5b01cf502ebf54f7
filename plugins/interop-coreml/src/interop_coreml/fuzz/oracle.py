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
decides who deviates from the specification, and :data:`KNOWN_DEVIATIONS` says which
onnxruntime deviations are known; a mismatch is *explained* only when a rule matches
and the reference evaluator (or onnxruntime without its optimizer) agrees with the
interpreter.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

#: Allowed error of a float element: ATOL + RTOL·|r| + SCALE·max|r| over the output.
ATOL, RTOL, SCALE = 1e-6, 1e-4, 1e-4


@dataclass(frozen=True)
class Deviation:
    """A known way onnxruntime departs from the ONNX specification."""

    name: str
    reason: str
    ops: frozenset[str]  # the rule applies when the graph holds one of these ops ...
    kinds: frozenset[str]  # ... and the mismatch is of one of these kinds
    #: How a case is verified: "reference" (onnx's reference evaluator agrees with the interpreter),
    #: "ort-unoptimized" (onnxruntime with ORT_DISABLE_ALL agrees), "ort-expanded" (onnxruntime
    #: running the op's spec function body instead of its kernel agrees).
    verify: str = "reference"
    when: Callable[[onnx.ModelProto, dict], bool] | None = None  # a narrower condition on graph and feeds


def _nan_reaches(op_types: set[str]) -> Callable[[onnx.ModelProto, dict], bool]:
    """True when a NaN flows into one of ``op_types`` (tensor values from onnxruntime, unoptimised)."""
    def test(model: onnx.ModelProto, feeds: dict) -> bool:
        from interop_coreml.fuzz.shrink import intermediate_values

        values = {**feeds, **intermediate_values(model, feeds)}
        for init in model.graph.initializer:
            values.setdefault(init.name, onnx.numpy_helper.to_array(init))
        return any(node.op_type in op_types and node.input[0] in values
                   and np.isnan(np.asarray(values[node.input[0]], dtype=np.float64)).any()
                   for node in model.graph.node)
    return test


def _has_attr(op_type: str, name: str, values: set) -> Callable[[onnx.ModelProto, dict], bool]:
    def test(model: onnx.ModelProto, feeds: dict) -> bool:  # noqa: ARG001
        return any(node.op_type == op_type and any(
            a.name == name and onnx.helper.get_attribute_value(a) in values for a in node.attribute)
            for node in model.graph.node)
    return test


#: Known onnxruntime deviations (also listed in docs/fuzzing.md). Each is verified per case:
#: the reference evaluator (or onnxruntime with ORT_DISABLE_ALL) must agree with the interpreter.
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
        frozenset({"MeanVarianceNormalization"}), frozenset({"nonfinite", "value"}), verify="ort-expanded",
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
        "ort-convtranspose-same-negative-pad",
        "ConvTranspose with auto_pad SAME_UPPER/SAME_LOWER: the spec makes the output "
        "input_shape * strides even when that needs a negative total padding (kernel smaller than "
        "the stride); onnxruntime (and onnx's shape inference) clamp the padding at 0 and return a "
        "shorter output",
        frozenset({"ConvTranspose"}), frozenset({"shape", "value"}),
        when=_has_attr("ConvTranspose", "auto_pad", {b"SAME_UPPER", b"SAME_LOWER"}),
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
    text = f"{outcome.status}[{outcome.kind}] {ops}"
    if outcome.error_key:
        text += f" :: {outcome.error_key}"
    if outcome.explained:
        text += f" [onnxruntime deviation: {outcome.explained}]"
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
    allowed = ATOL + RTOL * np.abs(np.where(both, r, 0.0)) + SCALE * max_ref
    bad = both & (err > allowed)
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


def evaluate(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Outcome:
    """Convert, run and compare one graph; see the module docstring for the outcomes."""
    reference_name = "onnxruntime"
    try:
        expected = run_onnxruntime(model, feeds)
    except Exception as ort_error:  # noqa: BLE001 - onnxruntime cannot run it: use the reference evaluator
        try:
            expected = run_reference(model, feeds)
            reference_name = "onnx reference evaluator"
        except Exception:  # noqa: BLE001
            return Outcome("skipped", message=f"onnxruntime: {normalize_error(ort_error)}")
    try:
        got = run_coreml(model, feeds)
    except Refused as refusal:
        return Outcome("refused", message=str(refusal)[:300])
    except ConvertCrash as crash:
        return Outcome("crash", "convert", str(crash)[:500], normalize_error(str(crash)))
    except RunCrash as crash:
        return Outcome("crash", "run", str(crash)[:500], normalize_error(str(crash)))
    diffs = _differences(expected, got)
    if not diffs:
        return Outcome("ok")
    name, kind, message, numbers = diffs[0]
    outcome = Outcome("mismatch", kind, message, details=[{n: d for n, _, _, d in diffs}])
    if reference_name != "onnxruntime":
        outcome.reference_evaluator = {n: "onnxruntime failed; compared with the reference evaluator"
                                       for n, *_ in diffs}
        return outcome
    _ask_reference(model, feeds, got, expected, diffs, outcome)
    _explain(model, feeds, got, diffs, outcome)
    return outcome


def expand_mvn(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each MeanVarianceNormalization replaced by the nodes of its spec function body.

    onnx's reference evaluator implements MVN only for its default 4-D axes; the expansion
    lets it judge any rank: (X - E[X]) / (sqrt(E[X²] - E[X]²) + 1e-9).
    """
    from onnx import helper, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    expanded = onnx.ModelProto()
    expanded.CopyFrom(model)
    nodes = []
    for index, node in enumerate(model.graph.node):
        if node.op_type != "MeanVarianceNormalization":
            nodes.append(node)
            continue
        axes = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "axes"), [0, 2, 3])
        p = f"_mvn{index}_"
        x, y = node.input[0], node.output[0]

        def mean(src: str, dst: str) -> onnx.NodeProto:
            if opset >= 18:
                return helper.make_node("ReduceMean", [src, p + "axes"], [dst], keepdims=1)
            return helper.make_node("ReduceMean", [src], [dst], axes=axes, keepdims=1)

        if opset >= 18:
            expanded.graph.initializer.append(numpy_helper.from_array(np.asarray(axes, np.int64), p + "axes"))
        expanded.graph.initializer.append(numpy_helper.from_array(np.asarray(1e-9, np.float32), p + "eps"))
        nodes += [
            mean(x, p + "ex"), helper.make_node("Mul", [x, x], [p + "x2"]), mean(p + "x2", p + "ex2"),
            helper.make_node("Mul", [p + "ex", p + "ex"], [p + "ex_2"]),
            helper.make_node("Sub", [p + "ex2", p + "ex_2"], [p + "var"]),
            helper.make_node("Sqrt", [p + "var"], [p + "std"]),
            helper.make_node("Add", [p + "std", p + "eps"], [p + "den"]),
            helper.make_node("Sub", [x, p + "ex"], [p + "num"]),
            helper.make_node("Div", [p + "num", p + "den"], [y]),
        ]
    del expanded.graph.node[:]
    expanded.graph.node.extend(nodes)
    return expanded


def _ask_reference(model, feeds, got, expected, diffs, outcome: Outcome) -> None:
    try:
        spec = run_reference(model, feeds)
    except Exception as error:  # noqa: BLE001
        try:
            spec = run_reference(expand_mvn(model), feeds)
        except Exception:  # noqa: BLE001
            outcome.reference_evaluator = {n: f"reference evaluator failed: {normalize_error(error)}"
                                           for n, *_ in diffs}
            return
    for name, *_ in diffs:
        if name not in spec:
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
    ops = {n.op_type for n in model.graph.node}
    spec_sides_with_coreml = bool(outcome.reference_evaluator) and all(
        outcome.reference_evaluator.get(n) == "reference agrees with coreml-interpreter" for n, *_ in diffs)
    for rule in KNOWN_DEVIATIONS:
        if outcome.kind not in rule.kinds or (rule.ops and not rule.ops & ops):
            continue
        if rule.when is not None and not rule.when(model, feeds):
            continue
        if rule.verify in ("ort-unoptimized", "ort-expanded"):
            try:
                if rule.verify == "ort-unoptimized":
                    plain = run_onnxruntime(model, feeds, optimize=False)
                else:
                    plain = run_onnxruntime(expand_mvn(model), feeds)
            except Exception:  # noqa: BLE001
                continue
            if not _differences(plain, got):
                outcome.explained = rule.name
                return
        elif spec_sides_with_coreml:
            outcome.explained = rule.name
            return
