"""``interop check --locate``: the first operation whose output diverges while its inputs still agree.

Both models of a failing pair are run again on the failing sample with their
intermediate values exposed (plugin API 1.1, :class:`interop.plugin_api.IntermediatesSession`).
Values of the two copies are paired, as data, by

1. the name a converter recorded (``IntermediateSpec.source``: the ONNX value a variable
   of the converted model came from);
2. equal names (an exporter that keeps the source graph's names), when the scopes, if both
   sides have one, agree;
3. the last value of each layer or module (``IntermediateSpec.scope``): a module path on
   both sides, or a layer name against an exporter's ``model/layer_1/...`` names.

The paired values are then compared in the reference's topological order, a bounded
number at a time (memory stays flat on models with thousands of values), with the pair's
own error statistic and tolerance. The first paired value that fails while every paired
value it is computed from passes is where the copies start to differ; comparing stops there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interop.checker.metrics import compare
from interop.checker.tolerances import Tolerance
from interop.plugin_api import IntermediateSpec, InteropError, supports_intermediates

#: Values fetched from each session per run: bounds the memory a locate holds at once.
CHUNK = 48
_UNIQUIFIER = re.compile(r"^(.*)_(\d+)$")


@dataclass
class ValueStats:
    """Summary of one intermediate value (the arrays themselves are not kept)."""

    shape: list[int]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None

    @classmethod
    def of(cls, value: np.ndarray) -> "ValueStats":
        array = np.asarray(value, dtype=np.float64)
        finite = array[np.isfinite(array)]
        if not finite.size:
            return cls(list(value.shape), None, None, None, None)
        return cls(list(value.shape), float(finite.min()), float(finite.max()), float(finite.mean()),
                   float(finite.std()))

    def text(self) -> str:
        if self.min is None:
            return f"shape {tuple(self.shape)}, no finite values"
        return (f"shape {tuple(self.shape)}, min {self.min:.4g}, max {self.max:.4g}, mean {self.mean:.4g}, "
                f"std {self.std:.4g}")


@dataclass
class Located:
    """What --locate found for one pair (``status`` says whether it found the op)."""

    status: str  # located | agree | unsupported | no-mapping | error
    message: str
    sample: int | None = None
    paired: int = 0
    compared: int = 0
    reference_values: int = 0
    candidate_values: int = 0
    value: str | None = None
    op_name: str | None = None
    op_type: str | None = None
    candidate_value: str | None = None
    candidate_op_name: str | None = None
    candidate_op_type: str | None = None
    paired_by: str | None = None
    reference_stats: ValueStats | None = None
    candidate_stats: ValueStats | None = None
    error_after: dict[str, float] | None = None
    error_before: dict[str, float] | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    unpaired_between: list[str] = field(default_factory=list)
    last_agreeing: str | None = None

    def to_dict(self) -> dict[str, Any]:
        document = dict(self.__dict__)
        for key in ("reference_stats", "candidate_stats"):
            if document[key] is not None:
                document[key] = dict(document[key].__dict__)
        return document

    def lines(self) -> list[str]:
        """The terminal report of a located divergence."""
        if self.status != "located":
            return [f"  locate: {self.message}"]
        lines = [f"  locate: {self.message}"]
        lines.append(f"    reference {self.value}: {self.reference_stats.text() if self.reference_stats else '-'}")
        lines.append(f"    candidate {self.candidate_value}: "
                     f"{self.candidate_stats.text() if self.candidate_stats else '-'}")
        if self.error_after:
            before = self.error_before or {}
            lines.append(
                f"    error before: max abs {before.get('max_abs', 0.0):.3g} (margin {before.get('margin', 0.0):.3g}); "
                f"after: max abs {self.error_after['max_abs']:.3g} (margin {self.error_after['margin']:.3g})"
            )
        if self.unpaired_between:
            shown = ", ".join(self.unpaired_between[:5]) + (", ..." if len(self.unpaired_between) > 5 else "")
            lines.append(f"    (values computed on the way with no counterpart in the other copy: {shown})")
        return lines


# --------------------------------------------------------------------------- pairing


def _last_component(scope: str) -> str:
    return re.split(r"[/.]", scope)[-1] if scope else scope


def _scope_key(scope: str, suffix: str) -> str:
    """A scope as the other copy would name it when its framework appends ``suffix`` (``_1``)."""
    return scope + suffix


def _last_per_scope(specs: Sequence[IntermediateSpec]) -> dict[str, IntermediateSpec]:
    last: dict[str, IntermediateSpec] = {}
    for spec in specs:
        if spec.scope:
            last[spec.scope] = spec
    return last


def _scope_pairs(
    ref_last: Mapping[str, IntermediateSpec], cand_last: Mapping[str, IntermediateSpec],
) -> list[tuple[IntermediateSpec, IntermediateSpec]]:
    """Pair the last value of each scope: equal scopes, else a layer name against a path's last component.

    An exporter may name a layer ``hidden`` as ``model_1/hidden_1/...`` (its framework uniquifies name
    scopes): the suffix appended (none, ``_1``, ...) is chosen as the one that pairs the most
    layers, so a model holding both ``dense`` and ``dense_1`` is not paired crosswise.
    """
    pairs = [(ref_last[scope], cand_last[scope]) for scope in ref_last if scope in cand_last]
    if pairs:
        return pairs
    for single, paths, flip in ((ref_last, cand_last, False), (cand_last, ref_last, True)):
        if not single or any("/" in s or "." in s for s in single):
            continue
        by_component: dict[str, list[str]] = {}
        for path in paths:
            by_component.setdefault(_last_component(path), []).append(path)
        suffixes = {""}
        for component in by_component:
            match = _UNIQUIFIER.match(component)
            if match:
                suffixes.add(f"_{match.group(2)}")
        best: list[tuple[IntermediateSpec, IntermediateSpec]] = []
        for suffix in sorted(suffixes):
            found = []
            for name, spec in single.items():
                targets = by_component.get(_scope_key(name, suffix), [])
                if len(targets) == 1:
                    other = paths[targets[0]]
                    found.append((other, spec) if flip else (spec, other))
            if len(found) > len(best):
                best = found
        if best:
            return best
    return []


def pair_values(
    reference: Sequence[IntermediateSpec], candidate: Sequence[IntermediateSpec],
) -> list[tuple[IntermediateSpec, IntermediateSpec, str]]:
    """(reference value, candidate value, how paired), in the reference's order, one-to-one."""
    ref_by_name = {spec.name: spec for spec in reference}
    cand_by_name = {spec.name: spec for spec in candidate}
    chosen: dict[str, tuple[IntermediateSpec, str]] = {}
    used: set[str] = set()

    def take(ref: IntermediateSpec, cand: IntermediateSpec, how: str) -> None:
        if ref.name not in chosen and cand.name not in used:
            chosen[ref.name] = (cand, how)
            used.add(cand.name)

    for cand in candidate:  # 1. recorded by the converter, either way round
        if cand.source and cand.source in ref_by_name:
            take(ref_by_name[cand.source], cand, "recorded by the converter")
    for ref in reference:
        if ref.source and ref.source in cand_by_name:
            take(ref, cand_by_name[ref.source], "recorded by the converter")
    for ref in reference:  # 2. equal names
        cand = cand_by_name.get(ref.name)
        if cand is not None and (not ref.scope or not cand.scope or ref.scope == cand.scope):
            take(ref, cand, "same name")
    for ref, cand in _scope_pairs(_last_per_scope(reference), _last_per_scope(candidate)):  # 3. scopes
        take(ref, cand, f"last value of layer {ref.scope or cand.scope}")
    return [(ref, *chosen[ref.name]) for ref in reference if ref.name in chosen]


# --------------------------------------------------------------------------- comparing


def _comparable(ref: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Both values as arrays of one shape (size-1 axes may differ: a format may carry rank 0 as (1,)), else None."""
    ref, cand = np.asarray(ref), np.asarray(cand)
    if ref.shape == cand.shape:
        return ref, cand
    if ref.size == cand.size and tuple(d for d in ref.shape if d != 1) == tuple(d for d in cand.shape if d != 1):
        return ref, cand.reshape(ref.shape)
    return None


def _error(ref: np.ndarray, cand: np.ndarray, tolerance: Tolerance) -> dict[str, float] | None:
    both = _comparable(ref, cand)
    if both is None:
        return None
    ref, cand = both
    if ref.dtype.kind not in "biuf" or cand.dtype.kind not in "biuf":
        return None
    metrics = compare(ref, cand, tolerance.atol, tolerance.rtol, tolerance.stat, sample_axis=False)
    margin = float("inf") if metrics.nonfinite_mismatch else metrics.margin
    return {"max_abs": metrics.max_abs, "margin": margin, "max_scaled": metrics.max_scaled}


def locate(
    reference: Any, candidate: Any, feeds_for: Callable[[Any], dict[str, np.ndarray]],
    tolerance: Tolerance, *, sample: int | None = None, chunk: int = CHUNK,
    reference_label: str = "the reference", candidate_label: str = "the candidate",
) -> Located:
    """Find the first op whose output diverges between two sessions while its inputs agree.

    ``feeds_for(session)`` gives the failing sample's inputs in that session's dtypes;
    ``tolerance`` is the failing output's (its statistic and atol/rtol judge every value).
    """
    for session, label in ((reference, reference_label), (candidate, candidate_label)):
        if not supports_intermediates(session):
            engine = getattr(session, "engine", "") or "its runtime"
            return Located("unsupported", f"{label} runs on {engine}, which cannot return intermediate values "
                                          "(plugin API 1.1 IntermediatesSession)", sample=sample)
    try:
        ref_specs = list(reference.intermediates())
        cand_specs = list(candidate.intermediates())
    except InteropError as exc:
        return Located("unsupported", f"cannot list intermediate values: {exc.message}", sample=sample)
    pairs = pair_values(ref_specs, cand_specs)
    result = Located("agree", "", sample=sample, paired=len(pairs), reference_values=len(ref_specs),
                     candidate_values=len(cand_specs))
    if not pairs:
        result.status = "no-mapping"
        result.message = (f"no intermediate value of {candidate_label} could be paired with one of {reference_label} "
                          f"({len(ref_specs)} and {len(cand_specs)} values; no recorded mapping, equal names or "
                          "layer scopes)")
        return result
    ref_feeds, cand_feeds = feeds_for(reference), feeds_for(candidate)
    errors: dict[str, dict[str, float] | None] = {}
    ref_index = {spec.name: spec for spec in ref_specs}
    paired_names = {ref.name for ref, _, _ in pairs}
    last_agreeing: str | None = None
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        ref_values = reference.run_intermediates(ref_feeds, [ref.name for ref, _, _ in part])
        cand_values = candidate.run_intermediates(cand_feeds, [cand.name for _, cand, _ in part])
        for ref, cand, how in part:
            if ref.name not in ref_values or cand.name not in cand_values:
                errors[ref.name] = None
                continue
            error = _error(ref_values[ref.name], cand_values[cand.name], tolerance)
            errors[ref.name] = error
            if error is None:
                continue
            if error["margin"] <= 1.0:
                last_agreeing = ref.name
                continue
            ancestors, between = _paired_ancestors(ref, ref_index, paired_names)
            upstream = [errors.get(name) for name in ancestors]
            if any(e is not None and e["margin"] > 1.0 for e in upstream):
                continue  # a divergence carried from upstream, already reported or unpaired
            _fill(result, ref, cand, how, ref_values[ref.name], cand_values[cand.name], error,
                  {name: errors.get(name) for name in ancestors}, between, reference_label, candidate_label)
            result.compared = start + part.index((ref, cand, how)) + 1
            result.last_agreeing = last_agreeing
            return result
        ref_values.clear()
        cand_values.clear()
    result.compared = len(pairs)
    result.last_agreeing = last_agreeing
    result.message = (f"all {len(pairs)} paired intermediate values agree; the outputs diverge after the last "
                      f"of them ({last_agreeing}), in values with no counterpart in the other copy")
    return result


def _paired_ancestors(
    spec: IntermediateSpec, index: Mapping[str, IntermediateSpec], paired: set[str],
) -> tuple[list[str], list[str]]:
    """The nearest paired values ``spec`` is computed from, and the unpaired values on the way."""
    nearest: list[str] = []
    between: list[str] = []
    stack, seen = list(spec.inputs), set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in paired:
            nearest.append(name)
        elif name in index:
            between.append(name)
            stack.extend(index[name].inputs)
    return nearest, between


def _fill(
    result: Located, ref: IntermediateSpec, cand: IntermediateSpec, how: str, ref_value: np.ndarray,
    cand_value: np.ndarray, error: dict[str, float], inputs: Mapping[str, dict[str, float] | None],
    between: list[str], reference_label: str, candidate_label: str,
) -> None:
    result.status = "located"
    result.value, result.op_name, result.op_type = ref.name, ref.op_name or ref.name, ref.op_type
    result.candidate_value, result.candidate_op_name, result.candidate_op_type = (
        cand.name, cand.op_name or cand.name, cand.op_type)
    result.paired_by = how
    result.reference_stats = ValueStats.of(ref_value)
    result.candidate_stats = ValueStats.of(cand_value)
    result.error_after = error
    known = [e for e in inputs.values() if e is not None]
    result.error_before = {
        "max_abs": max((e["max_abs"] for e in known), default=0.0),
        "margin": max((e["margin"] for e in known), default=0.0),
    }
    result.inputs = [{"name": name, **(e or {})} for name, e in inputs.items()]
    result.unpaired_between = between
    where = (f"{ref.op_type} {result.op_name!r}" if ref.op_type else repr(result.op_name))
    theirs = f"{cand.op_type} {result.candidate_op_name!r}" if cand.op_type else repr(result.candidate_op_name)
    agreeing = "its inputs agree" if inputs else "it reads only the model's inputs"
    result.message = (f"first divergence at {where} in {reference_label} (output {ref.name}), {theirs} in "
                      f"{candidate_label}: error {error['margin']:.3g}x the tolerance after it, {agreeing} "
                      f"({result.error_before['margin']:.3g}x)")
