"""Run ONNX's backend node test cases through the translator and the interpreter.

It uses both halves of the plugin, so it lives beside them, not in either: the
translator (``onnx2mil``) and the interpreter (``interpreter``) import nothing
from each other (tests/test_halves_independent.py), so a wrong mapping in one
shows up as a mismatch against the other instead of being repeated.

``onnx.backend.test.case.node.collect_testcases()`` yields small models with
inputs and expected outputs. Each case is converted to an ``.mlpackage``, run by
the reference interpreter of saved ML Programs and compared with the expected
outputs. :func:`render_markdown` turns the results into the op coverage table
kept in ``docs/coreml-op-coverage.md``.
"""

from __future__ import annotations

import collections
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from interop_coreml.onnx2mil import op_converters

PASS, MISMATCH, NOT_CONVERTIBLE, ERROR, UNSUPPORTED_OP = "pass", "mismatch", "not convertible", "error", "unsupported op"


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one node test case."""

    case: str
    op_type: str
    status: str
    reason: str = ""


# Case-name prefixes that do not spell the op type.
_CASE_ALIASES = {
    "test_nllloss": "NegativeLogLikelihoodLoss",
    "test_sce": "SoftmaxCrossEntropyLoss",
    "test_l1normalization": "LpNormalization",
    "test_l2normalization": "LpNormalization",
    "test_lpnormalization": "LpNormalization",
    "test_layer_normalization": "LayerNormalization",
    "test_group_normalization": "GroupNormalization",
    "test_instancenorm": "InstanceNormalization",
    "test_batchnorm": "BatchNormalization",
    "test_basic_conv": "Conv",
    "test_conv_with": "Conv",
    "test_logsoftmax": "LogSoftmax",
    "test_reduce_log_sum_exp": "ReduceLogSumExp",
    "test_reduce_sum_square": "ReduceSumSquare",
}


def _op_names() -> dict[str, str]:
    """Map 'maxpool' style keys (lowercase, no underscores) to op types."""
    names = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            names[schema.name.lower()] = schema.name
    return names


def case_op_type(case, op_names: dict[str, str] | None = None) -> str:
    """The op a node test case is about: its single op, else the op its name starts with."""
    ops = {node.op_type for node in case.model.graph.node if node.op_type != "Constant"} or {"Constant"}
    if len(ops) == 1 and "_expanded" not in case.name:
        return next(iter(ops))
    op_names = op_names or _op_names()
    for prefix, op in _CASE_ALIASES.items():
        if case.name.startswith(prefix):
            return op
    key = re.sub(r"^test_", "", case.name).replace("_", "").lower()
    best = ""
    for name in op_names:
        if key.startswith(name) and len(name) > len(best):
            best = name
    return op_names.get(best, sorted(ops)[0])


#: What a Core ML model carries for ONNX types it lacks (float64, int64) or, at the default iOS15
#: target, cannot use as a model output (float16): such outputs are cast back before comparing.
_CARRIED = {np.dtype(np.float64): np.dtype(np.float32), np.dtype(np.int64): np.dtype(np.int32),
            np.dtype(np.float16): np.dtype(np.float32)}


def _compare(name: str, expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str | None:
    """`interop check`'s comparison (interop.testing.compare_outputs), element by element as the
    node cases' own ``assert_allclose``; None when the output passes, else why not."""
    from interop.testing import compare_outputs

    expected, got = np.asarray(expected), np.asarray(got)
    if _CARRIED.get(expected.dtype) == got.dtype:
        got = got.astype(expected.dtype)  # float64 computed in float32, int64 in int32, ... (documented)
    if expected.dtype == np.float16:
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-2)
    comparison = compare_outputs({name: expected}, {name: got}, atol=atol, rtol=rtol, error_stats="elementwise")
    return None if comparison.passed else comparison.failures[0].message


def _array(value) -> np.ndarray:
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return np.asarray(value)


def _fit_scalars(feeds: dict[str, np.ndarray], session) -> dict[str, np.ndarray]:
    """Rank-0 ONNX inputs are declared as 1-element vectors in Core ML."""
    shapes = {spec.name: spec.shape for spec in session.inputs}
    return {name: value.reshape(1) if value.ndim == 0 and tuple(shapes.get(name, ())) == (1,) else value
            for name, value in feeds.items()}


def _bind_parameters(model: onnx.ModelProto, inputs: list[np.ndarray]) -> onnx.ModelProto:
    """Turn every graph input but the first into an initializer holding the case's data.

    Node cases feed parameters such as axes, pads, scales or weights as inputs;
    exported models carry them as constants, which is what Core ML needs.
    """
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    init_names = {init.name for init in bound.graph.initializer}
    graph_inputs = [i for i in bound.graph.input if i.name not in init_names]
    for value_info, value in list(zip(graph_inputs, inputs))[1:]:
        bound.graph.initializer.append(onnx.numpy_helper.from_array(value, value_info.name))
    keep = [graph_inputs[0]] + [i for i in bound.graph.input if i.name in init_names]
    del bound.graph.input[:]
    bound.graph.input.extend(keep)
    return bound


def _convert(model: onnx.ModelProto, path: Path) -> None:
    from interop_coreml.onnx2mil.driver import convert_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert_model(model).save(str(path))


def run_case(case, workdir: Path) -> CaseResult:
    """Convert, execute and check one node test case."""
    from interop_coreml.onnx2mil.errors import UnsupportedModelError
    from interop_coreml.runtime import load_interpreter

    op_type = case_op_type(case)
    model = case.model
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if op_converters.converter_for("", op_type, opset) is None:
        return CaseResult(case.name, op_type, UNSUPPORTED_OP, f"no converter for {op_type} at opset {opset}")
    init_names = {init.name for init in model.graph.initializer}
    input_names = [i.name for i in model.graph.input if i.name not in init_names]
    output_names = [o.name for o in model.graph.output]
    note = ""
    for index, (inputs, outputs) in enumerate(case.data_sets):
        inputs = [_array(v) for v in inputs]
        path = workdir / f"{case.name}_{index}.mlpackage"
        try:
            try:
                _convert(model, path)
                feeds = dict(zip(input_names, inputs))
            except UnsupportedModelError as error:
                # Parameters the op needs constant, or an empty "like" tensor that only
                # carries a dtype (CastLike), are constants in exported models.
                needs_binding = "constant" in error.message or "zero-sized" in error.message
                if not needs_binding or len(input_names) < 2:
                    raise
                _convert(_bind_parameters(model, inputs), path)
                feeds = {input_names[0]: inputs[0]}
                note = "parameters bound as constants"
        except UnsupportedModelError as error:
            return CaseResult(case.name, op_type, NOT_CONVERTIBLE, error.message)
        except Exception as error:  # noqa: BLE001 - reported per case
            return CaseResult(case.name, op_type, ERROR, f"conversion: {type(error).__name__}: {str(error)[:200]}")
        try:
            session = load_interpreter(path)
            got = session.run(_fit_scalars(feeds, session))
        except Exception as error:  # noqa: BLE001
            return CaseResult(case.name, op_type, ERROR, f"execution: {type(error).__name__}: {str(error)[:200]}")
        for name, expected in zip(output_names, outputs):
            expected = _array(expected)
            value = got[name]
            if expected.ndim == 0 and np.size(value) == 1:
                value = np.asarray(value).reshape(())  # rank-0 outputs come back as [1]
            problem = _compare(name, expected, value, max(case.rtol, 1e-3), max(case.atol, 1e-5))
            if problem:
                return CaseResult(case.name, op_type, MISMATCH, f"output {name}: {problem}")
    return CaseResult(case.name, op_type, PASS, note)


def collect_cases(op_types: set[str] | None = None):
    from onnx.backend.test.case.node import collect_testcases

    names = _op_names()
    for case in collect_testcases():
        if op_types is None or case_op_type(case, names) in op_types:
            yield case


def _run_serial(op_types: set[str] | None) -> list[CaseResult]:
    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    results = []
    with tempfile.TemporaryDirectory(prefix="onnx2mil-cases-") as tmp:
        for case in collect_cases(op_types):
            results.append(run_case(case, Path(tmp)))
            for leftover in Path(tmp).iterdir():  # keep the temp dir small
                shutil.rmtree(leftover, ignore_errors=True)
    return results


def run_all(op_types: set[str] | None = None, workers: int = 1) -> list[CaseResult]:
    """Run every node case of ``op_types`` (default: every op with a converter).

    With ``workers > 1`` the op types are dealt round-robin to that many
    processes (each imports coremltools once), and results come back sorted.
    """
    if op_types is None:
        op_types = set(op_converters.registered_ops())
    if workers <= 1:
        return _run_serial(op_types)
    import concurrent.futures
    import multiprocessing

    ordered = sorted(op_types)
    shares = [set(ordered[i::workers]) for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_run_serial, shares))
    return sorted((r for part in parts for r in part), key=lambda r: (r.op_type, r.case))


@dataclass
class OpSummary:
    op_type: str
    opsets: list[int]
    passed: int
    total: int
    problems: list[CaseResult]

    @property
    def verified(self) -> bool:
        """At least one case passes and none gives wrong numbers or crashes."""
        return self.passed > 0 and not any(p.status in (MISMATCH, ERROR) for p in self.problems)


def summarize(results: list[CaseResult]) -> list[OpSummary]:
    by_op: dict[str, list[CaseResult]] = collections.defaultdict(list)
    for result in results:
        by_op[result.op_type].append(result)
    supported = op_converters.registered_ops()
    summaries = []
    for op_type in sorted(set(by_op) | set(supported)):
        cases = by_op.get(op_type, [])
        if op_type not in supported:
            continue
        passed = sum(1 for c in cases if c.status == PASS)
        summaries.append(OpSummary(op_type, op_converters.supported_opsets(op_type), passed, len(cases),
                                   [c for c in cases if c.status != PASS]))
    return summaries


#: The section on whole-model patterns (static text: the tests it names verify it, not this harness).
MODEL_PATTERNS = [
    "## Patterns of whole models",
    "",
    "Node cases test one op at a time. The patterns exporters write for transformer-era models are",
    "verified on whole models with a dynamic batch and sequence length, against PyTorch, by",
    "`plugins/interop-coreml/tests/test_transformer_models.py` (random-weight `transformers` configs,",
    "`.pt2 → ONNX → .mlpackage`, `interop check` at two batch sizes and two sequence lengths) and by the",
    "graph-level tests named. The ops are those torch.onnx 2.13 writes for transformers 5.24.",
    "",
    "| pattern | ONNX ops | verified on |",
    "|---|---|---|",
    "| shapes computed at run time | Shape, Gather, Concat, Unsqueeze, Squeeze, Range, Expand, Reshape, "
    "Slice, Where, ConstantOfShape, Max | every model below; `tests/onnx2mil/test_dynamic_shapes.py` |",
    "| embeddings, int64 ids as int32 inputs | Gather on an initializer | BERT, DistilBERT, RoBERTa, "
    "GPT-2, Llama |",
    "| padding masks | Cast, Expand, Where, And, IsNaN, GatherND | BERT, DistilBERT, RoBERTa, GPT-2, Llama |",
    "| position ids from the mask | CumSum, Equal, Not | RoBERTa |",
    "| causal masks | Range, LessOrEqual, And | GPT-2, Llama; next-token argmax on 20 prompts (Llama) |",
    "| GELU, erf and tanh forms | Erf, Div, Mul; Pow, Tanh | BERT, ViT, Whisper; GPT-2 |",
    "| LayerNorm, RMSNorm | LayerNormalization; Pow, ReduceMean, Sqrt, Reciprocal | BERT, GPT-2, ViT; Llama |",
    "| rotary embeddings | Cos, Sin, Slice, Neg, Concat | Llama (Qwen2 in `make test-extended`) |",
    "| grouped-query attention | Expand, Reshape of K/V | Llama |",
    "| patch and frame embeddings | Conv | ViT, Whisper encoder |",
    "| windows padded to whole windows | Pad by computed amounts, Mod | Swin-style window attention |",
    "| shifted-window mask | ConstantOfShape, ScatterND, Sub, Equal | Swin-style window attention |",
    "| window partitioning at rank 6 | Reshape, Transpose | Swin-style window attention; "
    "`tests/onnx2mil/test_high_rank.py` |",
    "| recurrent layers (PyTorch `nn.LSTM`, `nn.GRU`, `nn.RNN`) | LSTM, GRU with linear_before_reset=1, RNN "
    "(tanh, relu) | `tests/test_recurrent_models.py`: 2-layer bidirectional LSTM, 2-layer GRU, RNNs, a "
    "Conv1d + bidirectional GRU text classifier (`.pt2` at two sequence lengths); "
    "`tests/onnx2mil/test_recurrent.py` |",
    "| Keras LSTM through tf2onnx | LSTM, ReverseSequence (go_backwards) | `tests/test_recurrent_models.py` |",
    "| Keras GRU, SimpleRNN, Bidirectional(GRU), Masking + LSTM through tf2onnx | Loop (a while_loop whose body "
    "reads the outer graph; scan outputs stacked per step), Gather of a bool mask | `tests/test_keras_loop_models.py`; "
    "`tests/onnx2mil/test_control_flow.py` |",
    "",
]


def render_markdown(results: list[CaseResult]) -> str:
    summaries = summarize(results)
    verified = [s for s in summaries if s.verified]
    lines = [
        "# ONNX → Core ML op coverage",
        "",
        "Generated by `plugins/interop-coreml/scripts/op_coverage.py`; do not edit by hand.",
        "Every ONNX backend node test case (`onnx.backend.test.case.node.collect_testcases()`) of a",
        "supported op is converted to an ML Program, run by the reference interpreter and compared",
        "with the case's expected outputs by `interop check`'s comparison (`interop.testing.compare_outputs`,",
        "element-wise with the case's tolerances). Float64 inputs are computed in float32 and int64 in int32",
        "(Core ML has neither), and float16 outputs come back as float32 at the iOS15 target, so such",
        "cases pass when values fit.",
        "",
        f"**{len(verified)} op types verified** (at least one case passes, none mismatches) "
        f"out of {len(summaries)} with a converter.",
        "",
        "Node cases feed parameters such as axes, pads, scales or weights as graph inputs; when an op",
        "needs them constant (as exported models have them), or an input is an empty tensor that only",
        "carries a dtype (CastLike), the harness binds the case's values as initializers and runs the",
        "case again.",
        "",
        *MODEL_PATTERNS,
        "## Node cases",
        "",
        "| op type | opsets | node cases passed / total | verified |",
        "|---|---|---|---|",
    ]
    for s in summaries:
        opsets = ", ".join(str(v) for v in s.opsets)
        lines.append(f"| {s.op_type} | {opsets} | {s.passed} / {s.total} | {'yes' if s.verified else 'no'} |")
    lines += ["", "## Cases that do not pass", "", "| op type | case | status | reason |", "|---|---|---|---|"]
    for s in summaries:
        for problem in s.problems:
            reason = problem.reason.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {s.op_type} | {problem.case} | {problem.status} | {reason} |")
    return "\n".join(lines) + "\n"
