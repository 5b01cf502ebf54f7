"""Running a check: open every model, feed them the same inputs, compare each candidate with its reference.

A check has one or more groups; each group is a reference (a model, or a golden
file) and the candidates compared with it. Candidates are only ever compared
with their own reference: two independently trained models are not expected to
agree, so the lineages of two frameworks are two groups of one check.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from interop.checker import golden
from interop.checker.inputs import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_MAX_BATCH,
    InputSet,
    cast_to_spec,
    from_arrays,
    from_dataset,
    load_npz,
    random_inputs,
    shape_batch_size,
)
from interop.checker.locate import Located
from interop.checker.oracle import DEFAULT_ORACLE_SAMPLES
from interop.checker.metrics import DEFAULT_ERROR_STAT, OutputMetrics, compare, dtype_problem, width_note
from interop.checker.models import (
    ModelArg,
    ModelRunError,
    OpenModel,
    open_model,
    parse_model_arg,
    parse_runtime_overrides,
    plan_model,
)
from interop.checker.report import ModelInfo, OutputResult, PairResult, Report
from interop.checker.tolerances import Tolerance, ToleranceSettings, build_settings, lower_precision
from interop.errors import exception_line
from interop.plugin_api import InteropError, TensorSpec, UnsupportedModelError, input_index_ranges
from interop.plugin_registry import Registry, get_registry

Outputs = dict[str, np.ndarray]


@dataclass
class CheckOptions:
    """Everything besides the models that shapes a check (the CLI options, as values)."""

    inputs: str | Path | Mapping[str, np.ndarray] | None = None
    dataset: str | None = None
    seed: int = 0
    value_range: tuple[float, float] | None = None
    samples: int | None = None
    batch_sizes: Sequence[int] | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    input_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tolerances: ToleranceSettings = field(default_factory=ToleranceSettings)
    runtimes: dict[str, str] = field(default_factory=dict)
    save_golden: Path | None = None
    allow_missing_runtime: bool = False
    save_failures: Path | None = None
    #: --locate: for a failing pair, find the first op whose output diverges.
    locate: bool = False
    #: --oracle auto|fp64|none and the samples it computes besides the failing ones.
    oracle: str = "auto"
    oracle_samples: int = 16
    on_progress: Callable[[str], None] | None = None
    #: Called with every model's outputs on the check's inputs (a group's reference once, each
    #: candidate that ran): callers drawing or tabulating outputs use the very numbers judged.
    on_outputs: Callable[[ModelInfo, Outputs], None] | None = None

    def progress(self, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(message)


# --------------------------------------------------------------------------- running


def run_session(model: OpenModel, input_set: InputSet) -> Outputs:
    """Feed every run of ``input_set`` to ``model``; outputs joined back along the sample axis."""
    outputs: dict[str, _Joined] = {}
    label = model.info.label
    for index, feeds in enumerate(input_set.runs()):
        adapted = {spec.name: cast_to_spec(feeds[spec.name], spec, label) for spec in model.session.inputs}
        try:
            result = model.session.run(adapted)
        except Exception as exc:
            batch = f" on a batch of {input_set.plan[index]}" if input_set.plan else ""
            raise ModelRunError(
                f"{label} failed{batch} on {model.info.engine}: {exception_line(exc)}",
                hint="set INTEROP_DEBUG=1 for the traceback",
            ) from exc
        for name, value in result.items():
            outputs.setdefault(name, _Joined(input_set.plan)).add(np.asarray(value))
    return {name: joined.result(label, name) for name, joined in outputs.items()}


class _Joined:
    """One output's values run after run, joined along the sample axis.

    While every run's value has the run's batch size on axis 0 (and the first one's dtype
    and other dims), each is copied into the joined array as it comes and dropped: a
    check holds one copy of an output, not its runs and their concatenation. Any other
    value keeps the runs apart for :func:`_join` to stack or refuse.
    """

    def __init__(self, plan: list[int]):
        self.plan = plan
        self.values: list[np.ndarray] = []  # the runs' values, when not joined as they come
        self.joined: np.ndarray | None = None
        self.filled = 0  # runs copied into ``joined``
        self.offset = 0  # samples copied into ``joined``

    def add(self, value: np.ndarray) -> None:
        run = self.filled + len(self.values)
        if not self.values and 1 < len(self.plan) and run < len(self.plan) and self._fits(value, run):
            if self.joined is None:
                self.joined = np.empty((sum(self.plan), *value.shape[1:]), dtype=value.dtype)
            self.joined[self.offset:self.offset + value.shape[0]] = value
            self.filled += 1
            self.offset += value.shape[0]
            return
        self._separate()
        self.values.append(value)

    def _fits(self, value: np.ndarray, run: int) -> bool:
        """The value is the run's batch, of the joined array's dtype and other dims."""
        if value.ndim == 0 or value.shape[0] != self.plan[run]:
            return False
        joined = self.joined
        return joined is None or (value.dtype == joined.dtype and value.shape[1:] == joined.shape[1:])

    def _separate(self) -> None:
        """Back to separate runs: those copied so far become views of the joined array."""
        if self.joined is not None:
            starts = np.cumsum([0, *self.plan[:self.filled]])
            self.values = [self.joined[a:b] for a, b in zip(starts[:-1], starts[1:])]
            self.joined, self.filled, self.offset = None, 0, 0

    def result(self, label: str, name: str) -> np.ndarray:
        if self.joined is not None and self.filled == len(self.plan):
            return self.joined
        self._separate()  # an output some runs did not return
        return _join(self.values, self.plan, label, name)


def _join(values: list[np.ndarray], plan: list[int], label: str, name: str) -> np.ndarray:
    """Concatenate per-run outputs along the sample axis, or stack those without one."""
    if len(values) == 1:
        return values[0]
    if all(v.ndim >= 1 and v.shape[0] == size for v, size in zip(values, plan)):
        return np.concatenate(values, axis=0)
    if len({v.shape for v in values}) == 1:
        return np.stack(values, axis=0)
    if all(v.ndim >= 1 for v in values) and len({v.shape[1:] for v in values}) == 1:
        # Axis 0 grows with the run but is not its sample count (batch x sequence flattened, a
        # variable number of detections): both models' runs are joined the same way, run after run.
        return np.concatenate(values, axis=0)
    raise ModelRunError(f"{label}: output {name} changes shape from run to run in a way that is not a batch axis")


def _exact(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer) or dtype == np.bool_


def compare_outputs(
    reference: Outputs, candidate: Outputs, precision: str, settings: ToleranceSettings,
    samples: int | None = None,
) -> list[OutputResult]:
    """One OutputResult per output name of either side, matched by name.

    ``samples`` is the number of samples fed along axis 0 (None: outputs have no sample
    axis); an output whose axis 0 has that size is judged per sample by the ``scaled``
    statistic.
    """
    results: list[OutputResult] = []
    for name, ref in reference.items():
        if name not in candidate:
            results.append(OutputResult(
                name, False, f"missing: the candidate has no output named {name} "
                f"(it has {', '.join(candidate) or 'none'})", reference_dtype=str(ref.dtype),
            ))
            continue
        cand = candidate[name]
        tolerance = settings.for_output(name, precision, exact=_exact(ref.dtype))
        result = OutputResult(name, True, tolerance=tolerance, reference_dtype=str(ref.dtype),
                              candidate_dtype=str(cand.dtype), shape=list(ref.shape))
        if ref.shape != cand.shape:
            result.passed = False
            result.message = f"shape mismatch: reference {ref.shape}, candidate {cand.shape}"
            results.append(result)
            continue
        sample_axis = samples is not None and ref.ndim >= 1 and ref.shape[0] == samples
        result.metrics = compare(ref, cand, tolerance.atol, tolerance.rtol, tolerance.stat, sample_axis)
        problems = []
        dtype_issue = dtype_problem(ref, cand)
        if dtype_issue:
            problems.append(dtype_issue)
        if result.metrics.nonfinite_mismatch:
            problems.append(
                f"{result.metrics.nonfinite_mismatch} element(s) are NaN or Inf on one side only "
                f"(candidate {result.metrics.candidate_nonfinite}, reference {result.metrics.reference_nonfinite} "
                "non-finite)"
            )
        elif not result.metrics.stat_passed:
            problems.append(beyond_tolerance_message(result.metrics, tolerance))
        if problems:
            result.passed = False
        # Say when floats of two widths were compared by value (a format without float16 I/O returns fp16 as float32).
        result.message = "; ".join(problems + [note for note in [width_note(ref, cand)] if note])
        results.append(result)
    for name, cand in candidate.items():
        if name not in reference:
            results.append(OutputResult(
                name, False, f"extra: the reference has no output named {name}",
                candidate_dtype=str(cand.dtype),
            ))
    return results


def beyond_tolerance_message(metrics: OutputMetrics, tolerance: Tolerance) -> str:
    """Why an output fails its error statistic, naming the sample a failure file would replay."""
    stat, atol, rtol = tolerance.stat, tolerance.atol, tolerance.rtol
    worst = ""
    if metrics.worst_sample is not None and metrics.worst_sample_max_abs is not None:
        worst = f"; worst sample {metrics.worst_sample}: max abs error {metrics.worst_sample_max_abs:.3g}"
    if stat in ("scaled", "elementwise"):
        outside = round((1.0 - metrics.within_tolerance) * metrics.elements)
        allowed = "max(|reference|, sample RMS)" if stat == "scaled" else "|reference|"
        return (f"{outside} of {metrics.elements} element(s) beyond atol {atol:g} + rtol {rtol:g}·{allowed} "
                f"(up to {metrics.margin:.3g}x the allowed error{worst})")
    values = metrics.to_dict()
    return (f"{stat} abs error {values[f'{stat}_abs']:.3g} > atol {atol:g} and {stat} relative error "
            f"{values[f'{stat}_rel']:.3g} > rtol {rtol:g}{worst}")


# --------------------------------------------------------------------------- one group


@dataclass
class Reference:
    """A group's reference: an open model, or a golden file's saved outputs."""

    info: ModelInfo
    model: OpenModel | None = None
    golden: golden.GoldenData | None = None


def _golden_reference(path: Path) -> Reference:
    data = golden.read(path)
    saved = data.meta.get("reference", {})
    info = ModelInfo(
        label=f"golden {path}",
        path=str(path),
        format="golden",
        runtime=str(saved.get("runtime", "golden")),
        engine=f"saved outputs of {saved.get('label', '?')} on {saved.get('engine', '?')}",
        precision=str(saved.get("precision", "fp32")),
        precision_source=f"recorded in {path.name}",
    )
    return Reference(info, golden=data)


def _golden_inputs(data: golden.GoldenData, path: Path) -> InputSet:
    runs = [int(r) for r in data.meta.get("runs", [])]
    samples = {v.shape[0] for v in data.inputs.values() if v.ndim}
    if runs and (len(samples) != 1 or sum(runs) != samples.pop()):
        raise InteropError(f"golden file {path}: its runs {runs} do not add up to its samples")
    return InputSet(dict(data.inputs), runs, f"golden file {path}")


def build_inputs(
    specs: list[TensorSpec], options: CheckOptions, index_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> InputSet:
    """The inputs of a group from --inputs, --dataset, or seeded random values.

    ``index_ranges`` are the valid values of integer inputs the reference model looks up
    in a table (see :func:`interop.plugin_api.input_index_ranges`).
    """
    if options.inputs is not None and options.dataset is not None:
        raise InteropError("--inputs and --dataset both given", hint="choose one source of inputs")
    shape_batch = shape_batch_size(specs, options.input_shapes)
    sizes = options.batch_sizes or ((shape_batch,) if shape_batch else DEFAULT_BATCH_SIZES)
    # --input-shape's batch size is the size of every run (unless --batch-sizes says otherwise).
    max_batch = shape_batch if shape_batch and not options.batch_sizes else options.max_batch
    if options.inputs is not None:
        if isinstance(options.inputs, Mapping):
            arrays, source = dict(options.inputs), "given arrays"
        else:
            arrays, source = load_npz(Path(options.inputs)), f"inputs file {options.inputs}"
            if golden.is_layout(arrays):
                arrays = golden.split_layout(arrays, source).inputs
        return from_arrays(arrays, specs, source, sizes, max_batch)
    if options.dataset is not None:
        return from_dataset(options.dataset, specs, options.samples, sizes, max_batch)
    return random_inputs(specs, seed=options.seed, value_range=options.value_range,
                         samples=options.samples, batch_sizes=sizes, max_batch=max_batch,
                         input_ranges=options.input_ranges, input_shapes=options.input_shapes,
                         index_ranges=index_ranges)


def _within_batch_limit(options: CheckOptions, models: Sequence[OpenModel]) -> CheckOptions:
    """``options`` with its batches no larger than every model accepts (runtimes may bound dynamic dims)."""
    limits = [
        bounds[0] for model in models for spec in model.session.inputs
        for bounds in [getattr(spec, "max_shape", None)]
        if bounds and isinstance(bounds[0], int) and spec.shape and not isinstance(spec.shape[0], int)
    ]
    if not limits:
        return options
    limit = min(limits)
    sizes = options.batch_sizes
    if sizes is not None or any(size > limit for size in DEFAULT_BATCH_SIZES):
        sizes = [min(size, limit) for size in (sizes or DEFAULT_BATCH_SIZES)]
    return replace(options, max_batch=min(options.max_batch, limit), batch_sizes=sizes)


def _input_problem(model: OpenModel, input_set: InputSet) -> str | None:
    wanted = [spec.name for spec in model.session.inputs]
    given = list(input_set.arrays)
    if sorted(wanted) == sorted(given):
        return None
    return (
        f"inputs differ from the reference's: the candidate takes {', '.join(wanted) or 'none'}, "
        f"the reference takes {', '.join(given) or 'none'}"
    )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80] or "model"


def _save_failure(
    pair: PairResult, result: OutputResult, input_set: InputSet, reference: Outputs,
    candidate: Outputs, folder: Path, golden_reference: bool,
) -> None:
    """Write the worst sample's inputs and both outputs, and the command that reproduces it."""
    index = result.metrics.worst_sample if result.metrics else None
    if index is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_safe(pair.candidate.label)}--{_safe(result.name)}.npz"
    pick = (lambda v: v[index:index + 1]) if input_set.plan else (lambda v: v)
    data = golden.GoldenData(
        inputs=input_set.sample(index),
        outputs={n: pick(v) for n, v in reference.items()},
        meta={"kind": "failure", "reference": pair.reference.to_dict(), "candidate": pair.candidate.to_dict(),
              "output": result.name, "sample": index, "runs": [1] if input_set.plan else []},
        candidate={n: pick(v) for n, v in candidate.items()},
    )
    golden.write(path, data)
    result.failure_file = str(path)
    cand = shlex.quote(f"{pair.candidate.path}@{pair.candidate.runtime}")
    tol = result.tolerance
    tol_flag = f" --tolerance {shlex.quote(f'{result.name}={tol.atol:g},{tol.rtol:g}')}" if tol else ""
    if tol and tol.stat != DEFAULT_ERROR_STAT:
        tol_flag += f" --check-error-stat {shlex.quote(f'{result.name}={tol.stat}')}"
    if golden_reference:
        result.reproduce = f"interop check --golden {shlex.quote(str(path))} {cand}{tol_flag}"
    else:
        ref = shlex.quote(f"{pair.reference.path}@{pair.reference.runtime}")
        result.reproduce = f"interop check {ref} {cand} --inputs {shlex.quote(str(path))}{tol_flag}"


class _OracleRun:
    """The fp64 oracle of one group (interop.checker.oracle), loaded on first use, judging each pair's outputs."""

    def __init__(self, reference: Reference, candidates: list[OpenModel], input_set: InputSet,
                 options: CheckOptions, report: Report, registry: Registry | None = None) -> None:
        self.input_set, self.options, self.report = input_set, options, report
        self.registry = registry
        self.oracle: Any = None
        self.source = _oracle_source(reference, candidates, options)
        self.failed = options.oracle == "none" or self.source is None
        if self.source is None and options.oracle == "fp64":
            report.warnings.append("fp64 oracle: no ONNX copy of the model in this group to compute it from "
                                   "(and the reference cannot be converted to ONNX here)")

    def _load(self) -> Any:
        from interop.checker.oracle import Oracle, OracleUnavailable

        if self.oracle is None and not self.failed:
            path, label, from_reference = self.source  # type: ignore[misc]
            budget = None if self.options.oracle == "fp64" else self.options.oracle_samples + 1
            try:
                self.options.progress(f"computing the fp64 oracle from {label}")
                self.oracle = Oracle.load(Path(path), label, from_reference, budget_samples=budget,
                                          registry=self.registry)
            except OracleUnavailable as exc:
                self.failed = True
                self.report.warnings.append(f"fp64 oracle skipped: {exc}")
        return self.oracle

    def judge(self, pair: PairResult, ref_outputs: Outputs, cand_outputs: Outputs) -> None:
        """Each floating-point output's errors against the oracle; a noise-only failure may pass (see oracle.py)."""
        from interop.checker.metrics import failing_samples
        from interop.checker.oracle import MAX_FAILING_SAMPLES, OracleUnavailable, judge

        judged = [r for r in pair.outputs if r.metrics is not None and r.name in ref_outputs
                  and np.issubdtype(ref_outputs[r.name].dtype, np.floating)]
        # By default the oracle is asked where it matters: which copy is off, when an output fails.
        if self.options.oracle == "auto" and all(r.passed for r in judged):
            return
        if not judged or self._load() is None:
            return
        oracle, plan = self.oracle, self.input_set.plan
        first = list(range(min(self.options.oracle_samples, self.input_set.samples))) if plan else [0]
        for result in judged:
            ref, cand = ref_outputs[result.name], cand_outputs[result.name]
            tolerance = result.tolerance
            failing: list[int] = []
            covers = False
            if not result.passed and tolerance is not None and plan:
                failing = failing_samples(ref, cand, tolerance.atol, tolerance.rtol, tolerance.stat,
                                          self.input_set.samples)
                covers = bool(failing) and len(failing) <= MAX_FAILING_SAMPLES
                if not covers:
                    failing = [result.metrics.worst_sample] if result.metrics.worst_sample is not None else []
            indices = sorted(set(first) | set(failing))
            exact, refs, cands = [], [], []
            try:
                for index in indices:
                    feeds, position = self.input_set.feed_for(index)
                    outputs = oracle.outputs(index, feeds)
                    if result.name not in outputs:
                        break
                    value = outputs[result.name]
                    if plan:
                        value = value[position] if len(next(iter(feeds.values()))) > 1 else value[0]
                        exact.append(value)
                        refs.append(ref[index])
                        cands.append(cand[index])
                    else:
                        exact, refs, cands = [value], [ref], [cand]
            except Exception as exc:  # noqa: BLE001 - the oracle informs; its failure must not fail the check
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self.failed, self.oracle = True, None
                self.report.warnings.append(f"fp64 oracle failed on {oracle.label} ({oracle.engine}): {text}")
                return
            if not exact or any(np.shape(e) != np.shape(r) for e, r in zip(exact, refs)):
                continue
            judgement = judge(refs, cands, exact, pair.precision, covers)
            result.oracle = judgement
            noise_only = (not result.passed and result.metrics.nonfinite_mismatch == 0
                          and not dtype_problem(ref, cand))
            # Tolerances a user or project chose are theirs: only the built-in defaults give way to the oracle.
            default_tolerance = tolerance is not None and tolerance.source.endswith(" default")
            if noise_only and default_tolerance and oracle.from_reference and covers and judgement.as_accurate:
                result.passed = True
                result.message = (f"passes against the fp64 oracle: {judgement.verdict} on every failing sample "
                                  f"(beyond the tolerance alone: {result.message})")
        pair.oracle = oracle.describe()


def _oracle_source(
    reference: Reference, candidates: list[OpenModel], options: CheckOptions,
) -> tuple[str, str, bool] | None:
    """(ONNX file, label, made from the reference?) the group's oracle is computed from, or None."""
    if options.oracle == "none":
        return None
    if reference.model is not None and reference.info.format == "onnx":
        return reference.info.path, reference.info.label, True
    if options.oracle == "fp64" and reference.model is not None:
        converted = _reference_as_onnx(reference, options)
        if converted is not None:
            return str(converted), f"{reference.info.label} converted to ONNX", True
    for model in candidates:
        if model.info.format == "onnx":
            return model.info.path, model.info.label, False
    return None


def _reference_as_onnx(reference: Reference, options: CheckOptions) -> Path | None:
    """The reference converted to ONNX in a temporary folder (--oracle fp64), or None when no route exists."""
    import atexit
    import shutil
    import tempfile

    from interop.conversion import convert
    from interop.errors import remove_folder_at_sudden_exit

    folder = Path(tempfile.mkdtemp(prefix="interop-oracle-"))
    atexit.register(shutil.rmtree, folder, True)
    remove_folder_at_sudden_exit(folder)  # atexit does not run then
    try:
        options.progress(f"converting {reference.info.label} to ONNX for the fp64 oracle")
        convert(reference.info.path, folder / "reference.onnx", "onnx")
    except InteropError:
        return None
    return folder / "reference.onnx"


def check_group(
    reference: Reference, candidates: list[OpenModel], options: CheckOptions, report: Report,
    registry: Registry | None = None,
) -> None:
    """Run one group and add its reference, inputs and pairs to ``report``."""
    clock = report.clock
    if reference.golden is not None:
        input_set = _golden_inputs(reference.golden, Path(reference.info.path))
        ref_outputs: Outputs = dict(reference.golden.outputs)
    else:
        assert reference.model is not None
        with clock("inputs"):
            input_set = build_inputs(list(reference.model.session.inputs),
                                     _within_batch_limit(options, [reference.model, *candidates]),
                                     input_index_ranges(reference.model.session))
        options.progress(f"running {reference.info.label} on {reference.info.engine}")
        with clock("run"):
            ref_outputs = run_session(reference.model, input_set)
        if options.on_outputs is not None:
            options.on_outputs(reference.info, ref_outputs)
        if options.save_golden is not None:
            golden.write(options.save_golden, golden.GoldenData(
                inputs=dict(input_set.arrays), outputs=ref_outputs,
                meta={"kind": "golden", "reference": reference.info.to_dict(), "runs": list(input_set.plan),
                      "inputs": input_set.describe()},
            ))
    report.references.append(reference.info)
    report.inputs.append(input_set.describe())
    oracle = _OracleRun(reference, candidates, input_set, options, report, registry)
    for model in candidates:
        precision = lower_precision(reference.info.precision, model.info.precision)
        pair = PairResult(reference.info, model.info, precision)
        report.pairs.append(pair)
        problem = _input_problem(model, input_set)
        if problem:
            pair.problems.append(problem)
            continue
        options.progress(f"running {model.info.label} on {model.info.engine}")
        try:
            with clock("run"):
                cand_outputs = run_session(model, input_set)
        except ModelRunError as exc:
            # A candidate that crashes does not compute the reference's function: a failed pair, not an abort.
            pair.problems.append(exc.message)
            continue
        if options.on_outputs is not None:
            options.on_outputs(model.info, cand_outputs)
        with clock("compare"):
            pair.outputs = compare_outputs(ref_outputs, cand_outputs, precision, options.tolerances,
                                           input_set.samples if input_set.plan else None)
        with clock("oracle"):
            oracle.judge(pair, ref_outputs, cand_outputs)
        if options.save_failures is not None:
            for result in pair.outputs:
                if not result.passed:
                    _save_failure(pair, result, input_set, ref_outputs, cand_outputs,
                                  options.save_failures, reference.golden is not None)
        if options.locate and not pair.passed:
            with clock("locate"):
                pair.located = _locate(reference, model, pair, input_set, precision, options)


def _locate(
    reference: Reference, model: OpenModel, pair: PairResult, input_set: InputSet, precision: str,
    options: CheckOptions,
) -> Located:
    """--locate for a failing pair: on the sample the first failing output reports."""
    from interop.checker.locate import locate

    if reference.model is None:
        return Located("unsupported", "a golden file holds no intermediate values; locate against the model "
                                      "that wrote it")
    failing = next((o for o in pair.outputs if not o.passed and o.metrics is not None), None)
    if failing is None:
        return Located("unsupported", "no output was compared value by value (missing, extra or of another shape)")
    index = failing.metrics.worst_sample if failing.metrics.worst_sample is not None else 0
    feeds, _ = input_set.feed_for(index)
    tolerance = options.tolerances.for_output("\0intermediate", precision)
    tolerance = replace(tolerance, stat=failing.tolerance.stat if failing.tolerance else tolerance.stat)
    options.progress(f"locating the divergence of {model.info.label} on sample {index}")

    def feeds_for(session: Any) -> dict[str, np.ndarray]:
        return {spec.name: cast_to_spec(feeds[spec.name], spec, model.info.label) for spec in session.inputs}

    try:
        return locate(reference.model.session, model.session, feeds_for, tolerance, sample=index,
                      reference_label=reference.info.label, candidate_label=model.info.label)
    except Exception as exc:  # noqa: BLE001 - locating explains a failure; it must not hide the verdict
        text = exc.message if isinstance(exc, InteropError) else f"{type(exc).__name__}: {exc}"
        return Located("error", f"could not locate the divergence: {text.splitlines()[0] if text else ''}",
                       sample=index)


# --------------------------------------------------------------------------- entry


def _open_or_skip(
    arg: ModelArg, options: CheckOptions, registry: Registry, report: Report,
) -> OpenModel | None:
    request = parse_model_arg(arg, registry)
    try:
        return open_model(request, options.runtimes, registry)
    except UnsupportedModelError as exc:
        if not options.allow_missing_runtime:
            raise
        report.skipped.append({"model": request.label, "reason": exc.message})
        report.warnings.append(f"skipped {request.label}: {exc.message}")
        return None


def _plan_all(
    groups: Sequence[tuple[ModelArg | None, Sequence[ModelArg]]], options: CheckOptions, registry: Registry,
) -> None:
    """Check every model file and runtime choice before loading any model (a bad @runtime fails at once)."""
    for reference_arg, candidate_args in groups:
        if reference_arg is not None and not _is_golden_path(reference_arg):
            plan_model(parse_model_arg(reference_arg, registry), options.runtimes, registry)
        for arg in candidate_args:
            try:
                plan_model(parse_model_arg(arg, registry), options.runtimes, registry)
            except UnsupportedModelError:
                if not options.allow_missing_runtime:
                    raise  # otherwise skipped, with a warning, when the models are opened


def run_groups(
    groups: Sequence[tuple[ModelArg | None, Sequence[ModelArg]]],
    options: CheckOptions,
    *,
    golden_path: Path | None = None,
    registry: Registry | None = None,
) -> Report:
    """Check each (reference, candidates) group; a None reference means the golden file."""
    started = time.perf_counter()
    registry = registry or get_registry()
    report = Report()
    opened: list[tuple[Reference, list[OpenModel]]] = []
    _plan_all(groups, options, registry)
    # Open everything first: a missing runtime or unreadable file fails before any long run.
    for reference_arg, candidate_args in groups:
        if reference_arg is not None and _is_golden_path(reference_arg):
            reference_arg, golden_path = None, Path(str(reference_arg))
        if reference_arg is None:
            if golden_path is None:
                raise InteropError("no reference model given", hint="give REFERENCE or --golden FILE.npz")
            if options.save_golden is not None:
                raise InteropError("--save-golden needs a reference model, not a golden file")
            if options.inputs is not None or options.dataset is not None:
                raise InteropError(
                    "a golden file brings its own inputs; --inputs/--dataset cannot be combined with --golden"
                )
            reference = _golden_reference(golden_path)
        else:
            request = parse_model_arg(reference_arg, registry)
            model = open_model(request, options.runtimes, registry)
            reference = Reference(model.info, model=model)
        candidates = []
        for arg in candidate_args:
            model = _open_or_skip(arg, options, registry, report)
            if model is not None:
                candidates.append(model)
                report.candidates.append(model.info)
        opened.append((reference, candidates))
    if options.save_golden is not None and len(opened) != 1:
        raise InteropError("--save-golden writes the outputs of one reference; check one group at a time")
    report.timings["open"] = time.perf_counter() - started
    for reference, candidates in opened:
        if reference.model is not None:
            report.versions.update(getattr(reference.model.session, "versions", {}) or {})
        for model in candidates:
            report.versions.update(getattr(model.session, "versions", {}) or {})
        check_group(reference, candidates, options, report, registry)
    with report.clock("close"):  # the models are released here, not when the caller gets the report
        opened.clear()
    report.tolerances = options.tolerances.to_dict()
    report.versions = {"interop": _interop_version(), **dict(sorted(report.versions.items()))}
    if not report.pairs and not report.skipped and options.save_golden is None:
        report.warnings.append("no candidate given: nothing was compared")
    report.seconds = time.perf_counter() - started
    return report


def _is_golden_path(arg: ModelArg) -> bool:
    """A REFERENCE naming an existing .npz is a golden file (models are never .npz)."""
    return isinstance(arg, (str, Path)) and str(arg).lower().endswith(".npz") and Path(str(arg)).is_file()


def _interop_version() -> str:
    from interop import __version__

    return __version__


def make_options(
    *,
    inputs: str | Path | Mapping[str, np.ndarray] | None = None,
    dataset: str | None = None,
    seed: int = 0,
    value_range: Sequence[float] | str | Sequence[str] | Mapping[str, Sequence[float]] | None = None,
    samples: int | None = None,
    batch_sizes: Sequence[int] | str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    input_shapes: Sequence[str] | Mapping[str, Sequence[int]] | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    tolerances: Mapping[str, tuple[float, float]] | Sequence[str] | None = None,
    error_stats: str | Sequence[str] | Mapping[str, str] | None = None,
    project_config: bool | str | Path = True,
    runtimes: Mapping[str, str] | Sequence[str] | None = None,
    save_golden: str | Path | None = None,
    allow_missing_runtime: bool = False,
    save_failures: str | Path | None = None,
    locate: bool = False,
    oracle: str = "auto",
    oracle_samples: int | None = None,
    on_progress: Callable[[str], None] | None = None,
    on_outputs: Callable[[ModelInfo, Outputs], None] | None = None,
) -> CheckOptions:
    """Validate option values (the same for the CLI and the API) into CheckOptions.

    ``value_range`` is one ``(LOW, HIGH)`` (or ``"LOW,HIGH"``) for every input, a mapping
    ``{input: (LOW, HIGH)}``, or the list of ``--range`` strings (``"0,1"``, ``"ids=0,999"``);
    ``input_shapes`` a mapping ``{input: dims}`` or ``--input-shape`` strings (``"x=1,3,224,224"``).
    ``batch_sizes`` None means 1,7,64, or the batch size ``input_shapes`` gives.
    """
    from interop.checker.inputs import (
        check_max_batch,
        check_samples,
        check_seed,
        parse_batch_sizes,
        parse_range_options,
        parse_shape_options,
    )

    # Everything is validated here, before any model is opened: a bad value fails in a moment.
    if save_golden is not None:
        golden.check_save_path(save_golden, "save_golden")
    if save_failures is not None and Path(save_failures).exists() and not Path(save_failures).is_dir():
        raise InteropError(f"--save-failures {save_failures} exists and is not a folder",
                           hint="name a folder (it is created when a comparison fails)")
    every_range, input_ranges = parse_range_options(value_range)
    return CheckOptions(
        inputs=inputs,
        dataset=dataset,
        seed=check_seed(seed),
        value_range=every_range,
        input_ranges=input_ranges,
        input_shapes=parse_shape_options(input_shapes),
        samples=check_samples(samples),
        batch_sizes=parse_batch_sizes(batch_sizes) if batch_sizes is not None else None,
        max_batch=check_max_batch(max_batch),
        tolerances=build_settings(atol, rtol, dict(tolerances) if isinstance(tolerances, Mapping) else
                                  list(tolerances or []), project_config,
                                  dict(error_stats) if isinstance(error_stats, Mapping) else
                                  error_stats if isinstance(error_stats, str) else list(error_stats or [])),
        runtimes=parse_runtime_overrides(runtimes),
        save_golden=Path(save_golden) if save_golden is not None else None,
        allow_missing_runtime=allow_missing_runtime,
        save_failures=Path(save_failures) if save_failures is not None else None,
        locate=bool(locate),
        oracle=_oracle_mode(oracle),
        oracle_samples=DEFAULT_ORACLE_SAMPLES if oracle_samples is None else _positive(oracle_samples, "--oracle-samples"),
        on_progress=on_progress,
        on_outputs=on_outputs,
    )


def _oracle_mode(mode: str) -> str:
    from interop.checker.oracle import ORACLE_MODES

    if mode not in ORACLE_MODES:
        raise InteropError(f"--oracle must be one of {', '.join(ORACLE_MODES)}, got {mode!r}")
    return mode


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InteropError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check(
    reference: ModelArg | None,
    candidates: ModelArg | Sequence[ModelArg] = (),
    *,
    golden: str | Path | None = None,
    registry: Registry | None = None,
    **options: Any,
) -> Report:
    """Compare each candidate model with ``reference`` on the same inputs; returns a Report.

    ``reference`` is a model path, ``"path@runtime"`` or ``(path, runtime)``; it may
    be None when ``golden`` names a golden file. ``options`` are those of
    :func:`make_options` (``inputs``, ``dataset``, ``seed``, ``atol``, ``rtol``,
    ``tolerances``, ``runtimes``, ``batch_sizes``, ``save_golden``, ...).
    Raises InteropError subclasses (with exit codes) for bad input or missing runtimes.
    """
    registry = registry or get_registry()
    if isinstance(candidates, (str, Path)) or _is_model_tuple(candidates, registry):
        candidates = [candidates]  # type: ignore[list-item]
    if reference is not None and golden is not None:
        candidates = [reference, *candidates]
        reference = None
    check_options = make_options(**options)
    return run_groups([(reference, list(candidates))], check_options,
                      golden_path=Path(golden) if golden is not None else None, registry=registry)


def _is_model_tuple(value: Any, registry: Registry) -> bool:
    """True for one ``(path, runtime)`` candidate rather than a tuple of candidates."""
    return (
        isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str)
        and value[1] in registry.runtimes and not Path(value[1]).exists()
    )
