"""Running a check: open every model, feed them the same inputs, compare each candidate with its reference.

A check has one or more groups; each group is a reference (a model, or a golden
file) and the candidates compared with it. Candidates are only ever compared
with their own reference: two independently trained models are not expected to
agree, so a Keras lineage and a PyTorch lineage are two groups of one check.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.checker import golden
from interop.checker.inputs import (
    DEFAULT_BATCH_SIZES,
    DEFAULT_MAX_BATCH,
    DEFAULT_RANGE,
    InputSet,
    cast_to_spec,
    from_arrays,
    from_dataset,
    load_npz,
    random_inputs,
)
from interop.checker.metrics import compare, dtype_problem
from interop.checker.models import (
    ModelArg,
    ModelRunError,
    OpenModel,
    open_model,
    parse_model_arg,
    parse_runtime_overrides,
)
from interop.checker.report import ModelInfo, OutputResult, PairResult, Report
from interop.checker.tolerances import ToleranceSettings, build_settings, lower_precision
from interop.plugin_api import InteropError, TensorSpec, UnsupportedModelError
from interop.registry import Registry, get_registry

Outputs = dict[str, np.ndarray]


@dataclass
class CheckOptions:
    """Everything besides the models that shapes a check (the CLI options, as values)."""

    inputs: str | Path | Mapping[str, np.ndarray] | None = None
    dataset: str | None = None
    seed: int = 0
    value_range: tuple[float, float] = DEFAULT_RANGE
    samples: int | None = None
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    max_batch: int = DEFAULT_MAX_BATCH
    tolerances: ToleranceSettings = field(default_factory=ToleranceSettings)
    runtimes: dict[str, str] = field(default_factory=dict)
    save_golden: Path | None = None
    allow_missing_runtime: bool = False
    save_failures: Path | None = None
    on_progress: Callable[[str], None] | None = None

    def progress(self, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(message)


# --------------------------------------------------------------------------- running


def run_session(model: OpenModel, input_set: InputSet) -> Outputs:
    """Feed every run of ``input_set`` to ``model``; outputs joined back along the sample axis."""
    parts: dict[str, list[np.ndarray]] = {}
    label = model.info.label
    for index, feeds in enumerate(input_set.runs()):
        adapted = {spec.name: cast_to_spec(feeds[spec.name], spec, label) for spec in model.session.inputs}
        try:
            result = model.session.run(adapted)
        except Exception as exc:
            text = exc.message if isinstance(exc, InteropError) else str(exc).strip()
            first = text.splitlines()[0] if text else ""
            batch = f" on a batch of {input_set.plan[index]}" if input_set.plan else ""
            raise ModelRunError(
                f"{label} failed{batch} on {model.info.engine}: {type(exc).__name__}: {first}",
                hint="set INTEROP_DEBUG=1 for the traceback",
            ) from exc
        for name, value in result.items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: _join(values, input_set.plan, label, name) for name, values in parts.items()}


def _join(values: list[np.ndarray], plan: list[int], label: str, name: str) -> np.ndarray:
    """Concatenate per-run outputs along the sample axis, or stack those without one."""
    if len(values) == 1:
        return values[0]
    if all(v.ndim >= 1 and v.shape[0] == size for v, size in zip(values, plan)):
        return np.concatenate(values, axis=0)
    if len({v.shape for v in values}) == 1:
        return np.stack(values, axis=0)
    raise ModelRunError(f"{label}: output {name} changes shape from run to run in a way that is not a batch axis")


def _exact(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer) or dtype == np.bool_


def compare_outputs(
    reference: Outputs, candidate: Outputs, precision: str, settings: ToleranceSettings
) -> list[OutputResult]:
    """One OutputResult per output name of either side, matched by name."""
    results: list[OutputResult] = []
    for name, ref in reference.items():
        if name not in candidate:
            results.append(OutputResult(
                name, False, f"missing: the candidate has no output named {name} "
                f"(it has {', '.join(candidate) or 'none'})", reference_dtype=str(ref.dtype),
            ))
            continue
        cand = candidate[name]
        tolerance = settings.resolve(name, precision, exact=_exact(ref.dtype))
        result = OutputResult(name, True, tolerance=tolerance, reference_dtype=str(ref.dtype),
                              candidate_dtype=str(cand.dtype), shape=list(ref.shape))
        if ref.shape != cand.shape:
            result.passed = False
            result.message = f"shape mismatch: reference {ref.shape}, candidate {cand.shape}"
            results.append(result)
            continue
        result.metrics = compare(ref, cand, tolerance.atol, tolerance.rtol)
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
        if result.metrics.within_tolerance < 1.0 and not result.metrics.nonfinite_mismatch:
            outside = round((1.0 - result.metrics.within_tolerance) * result.metrics.elements)
            problems.append(
                f"{outside} of {result.metrics.elements} element(s) beyond atol {tolerance.atol:g} + "
                f"rtol {tolerance.rtol:g}·|reference| (max abs error {result.metrics.max_abs:.3g}, "
                f"worst sample {result.metrics.worst_sample})"
            )
        if problems:
            result.passed = False
            result.message = "; ".join(problems)
        results.append(result)
    for name, cand in candidate.items():
        if name not in reference:
            results.append(OutputResult(
                name, False, f"extra: the reference has no output named {name}",
                candidate_dtype=str(cand.dtype),
            ))
    return results


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


def build_inputs(specs: list[TensorSpec], options: CheckOptions) -> InputSet:
    """The inputs of a group from --inputs, --dataset, or seeded random values."""
    if options.inputs is not None and options.dataset is not None:
        raise InteropError("--inputs and --dataset both given", hint="choose one source of inputs")
    sizes, max_batch = options.batch_sizes, options.max_batch
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
                         samples=options.samples, batch_sizes=sizes, max_batch=max_batch)


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
    if golden_reference:
        result.reproduce = f"interop check --golden {shlex.quote(str(path))} {cand}{tol_flag}"
    else:
        ref = shlex.quote(f"{pair.reference.path}@{pair.reference.runtime}")
        result.reproduce = f"interop check {ref} {cand} --inputs {shlex.quote(str(path))}{tol_flag}"


def check_group(
    reference: Reference, candidates: list[OpenModel], options: CheckOptions, report: Report,
) -> None:
    """Run one group and add its reference, inputs and pairs to ``report``."""
    if reference.golden is not None:
        input_set = _golden_inputs(reference.golden, Path(reference.info.path))
        ref_outputs: Outputs = dict(reference.golden.outputs)
    else:
        assert reference.model is not None
        input_set = build_inputs(list(reference.model.session.inputs), options)
        options.progress(f"running {reference.info.label} on {reference.info.engine}")
        ref_outputs = run_session(reference.model, input_set)
        if options.save_golden is not None:
            golden.write(options.save_golden, golden.GoldenData(
                inputs=dict(input_set.arrays), outputs=ref_outputs,
                meta={"kind": "golden", "reference": reference.info.to_dict(), "runs": list(input_set.plan),
                      "inputs": input_set.describe()},
            ))
    report.references.append(reference.info)
    report.inputs.append(input_set.describe())
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
            cand_outputs = run_session(model, input_set)
        except ModelRunError as exc:
            # A candidate that crashes does not compute the reference's function: a failed pair, not an abort.
            pair.problems.append(exc.message)
            continue
        pair.outputs = compare_outputs(ref_outputs, cand_outputs, precision, options.tolerances)
        if options.save_failures is not None:
            for result in pair.outputs:
                if not result.passed:
                    _save_failure(pair, result, input_set, ref_outputs, cand_outputs,
                                  options.save_failures, reference.golden is not None)


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
    for reference, candidates in opened:
        if reference.model is not None:
            report.versions.update(getattr(reference.model.session, "versions", {}) or {})
        for model in candidates:
            report.versions.update(getattr(model.session, "versions", {}) or {})
        check_group(reference, candidates, options, report)
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
    value_range: Sequence[float] | str = DEFAULT_RANGE,
    samples: int | None = None,
    batch_sizes: Sequence[int] | str = DEFAULT_BATCH_SIZES,
    max_batch: int = DEFAULT_MAX_BATCH,
    atol: float | None = None,
    rtol: float | None = None,
    tolerances: Mapping[str, tuple[float, float]] | Sequence[str] | None = None,
    project_config: bool | str | Path = True,
    runtimes: Mapping[str, str] | Sequence[str] | None = None,
    save_golden: str | Path | None = None,
    allow_missing_runtime: bool = False,
    save_failures: str | Path | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> CheckOptions:
    """Validate option values (the same for the CLI and the API) into CheckOptions."""
    from interop.checker.inputs import check_max_batch, check_samples, check_seed, parse_batch_sizes, parse_range

    # Everything is validated here, before any model is opened: a bad value fails in a moment.
    if save_golden is not None:
        golden.check_save_path(save_golden, "save_golden")
    if save_failures is not None and Path(save_failures).exists() and not Path(save_failures).is_dir():
        raise InteropError(f"--save-failures {save_failures} exists and is not a folder",
                           hint="name a folder (it is created when a comparison fails)")
    return CheckOptions(
        inputs=inputs,
        dataset=dataset,
        seed=check_seed(seed),
        value_range=parse_range(value_range),
        samples=check_samples(samples),
        batch_sizes=parse_batch_sizes(batch_sizes),
        max_batch=check_max_batch(max_batch),
        tolerances=build_settings(atol, rtol, dict(tolerances) if isinstance(tolerances, Mapping) else
                                  list(tolerances or []), project_config),
        runtimes=parse_runtime_overrides(runtimes),
        save_golden=Path(save_golden) if save_golden is not None else None,
        allow_missing_runtime=allow_missing_runtime,
        save_failures=Path(save_failures) if save_failures is not None else None,
        on_progress=on_progress,
    )


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
