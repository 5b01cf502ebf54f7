"""Opening the models of a check: which runtime runs each file, and at what precision it computes.

A model argument is a path, optionally followed by ``@RUNTIME`` to pick the
engine (``model.onnx@onnxruntime``), or a ``(path, runtime)`` tuple in the
Python API. Otherwise ``--runtime FORMAT=RUNTIME`` decides for a whole format,
and by default the best *available* runtime of the format is used: a runtime
that cannot run here (Apple's Core ML on Linux) is passed over for the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from interop.checker.report import ModelInfo
from interop.checker.tolerances import PRECISION_DEFAULTS
from interop.formats import check_content, detect_format
from interop.implementations import open_session
from interop.plugin_api import InteropError, Runtime, Session, UnsupportedModelError
from interop.registry import Provided, Registry, availability

#: What the API accepts as a model: a path, "path@runtime", or (path, runtime).
ModelArg = Union[str, Path, tuple[Union[str, Path], str]]

PRECISION_METADATA_KEY = "interop.precision"


class ModelRunError(InteropError):
    """A runtime failed while loading or running a model it claims to support (exit 4)."""

    exit_code = 4


@dataclass
class ModelRequest:
    """A model as asked for: its path and the runtime named for it, if any."""

    path: Path
    runtime: str | None
    label: str


@dataclass
class OpenModel:
    """A model loaded in its runtime, with what the report says about it."""

    info: ModelInfo
    session: Session


def parse_model_arg(arg: ModelArg, registry: Registry) -> ModelRequest:
    """Split ``"model.onnx@onnxruntime"`` (only when the file itself does not exist)."""
    if isinstance(arg, tuple):
        path, runtime = arg
        return ModelRequest(Path(path), runtime, f"{path}@{runtime}")
    text = str(arg)
    if not Path(text).exists() and "@" in text:
        path, _, runtime = text.rpartition("@")
        if runtime in registry.runtimes or Path(path).exists():
            return ModelRequest(Path(path), runtime, text)
    return ModelRequest(Path(text), None, text)


def parse_runtime_overrides(pairs: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["onnx=onnxruntime"]`` -> ``{"onnx": "onnxruntime"}``."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return dict(pairs)
    parsed: dict[str, str] = {}
    for pair in pairs:
        fmt, sep, runtime = pair.partition("=")
        if not sep or not fmt.strip() or not runtime.strip():
            raise InteropError(f"--runtime {pair!r} is not FORMAT=RUNTIME", hint="for example --runtime coreml=coreml-interpreter")
        parsed[fmt.strip()] = runtime.strip()
    return parsed


def choose_runtime(fmt: str, wanted: str | None, registry: Registry) -> Provided[Runtime]:
    """The runtime for a model of format ``fmt``: ``wanted`` if given, else the best available one."""
    if wanted is not None:
        provided = registry.runtimes.get(wanted)
        if provided is None:
            known = ", ".join(sorted(registry.runtimes)) or "none"
            raise InteropError(f"unknown runtime {wanted!r}", hint=f"installed runtimes: {known}")
        if fmt not in provided.item.formats:
            raise InteropError(
                f"runtime {wanted} does not run {fmt} models (it runs {', '.join(provided.item.formats)})"
            )
        ok, why = availability(provided, registry)
        if not ok:
            raise UnsupportedModelError(f"runtime {wanted} cannot run here: {why}")
        return provided
    candidates = registry.runtimes_for(fmt)
    reasons = []
    for provided in candidates:
        ok, why = availability(provided, registry)
        if ok:
            return provided
        reasons.append(f"{provided.item.name}: {why}")
    if not candidates:
        raise UnsupportedModelError(
            f"no installed runtime runs {fmt} models",
            hint="install a plugin with a runtime for it (see `interop plugins`)",
        )
    raise UnsupportedModelError(
        f"no runtime for {fmt} models can run here ({'; '.join(reasons)})",
        hint="install what a runtime needs, or pass --allow-missing-runtime to skip this model",
    )


def open_model(request: ModelRequest, overrides: Mapping[str, str], registry: Registry) -> OpenModel:
    """Detect the format, choose the runtime and load the model; errors carry exit codes."""
    fmt = detect_format(request.path, registry)
    check_content(request.path, fmt, registry)
    provided = choose_runtime(fmt, request.runtime or overrides.get(fmt), registry)
    try:
        session = open_session(provided, registry, request.path)
    except InteropError:
        raise
    except Exception as exc:
        raise ModelRunError(
            f"runtime {provided.item.name} failed to load {request.path}: {type(exc).__name__}: {exc}",
            hint="set INTEROP_DEBUG=1 for the traceback",
        ) from exc
    precision, precision_source = model_precision(session)
    info = ModelInfo(
        label=request.label,
        path=str(request.path),
        format=fmt,
        runtime=provided.item.name,
        engine=getattr(session, "engine", "") or provided.item.engine or provided.item.name,
        precision=precision,
        precision_source=precision_source,
    )
    return OpenModel(info, session)


def session_metadata(session: Any) -> Mapping[str, str]:
    """Metadata the model carries, where the session exposes it (``metadata`` or Core ML's)."""
    for holder in (session, getattr(session, "program", None)):
        metadata = getattr(holder, "metadata", None)
        if isinstance(metadata, Mapping):
            return metadata
    model = getattr(session, "model", None)
    metadata = getattr(model, "user_defined_metadata", None)
    if metadata is not None:
        try:
            return dict(metadata)
        except (TypeError, ValueError):
            return {}
    return {}


def model_precision(session: Any) -> tuple[str, str]:
    """(precision, why): from the ``interop.precision`` metadata, else from the output dtypes."""
    recorded = session_metadata(session).get(PRECISION_METADATA_KEY)
    if recorded in PRECISION_DEFAULTS:
        return str(recorded), f"model metadata {PRECISION_METADATA_KEY}={recorded}"
    dtypes = set()
    for spec in getattr(session, "outputs", []):
        try:
            dtypes.add(np.dtype(spec.dtype).name)
        except TypeError:
            dtypes.add(str(spec.dtype))
    if "float16" in dtypes:
        return "fp16", "float16 outputs"
    if "bfloat16" in dtypes:
        return "bf16", "bfloat16 outputs"
    if dtypes and dtypes <= {"float64"}:
        return "fp64", "float64 outputs"
    return "fp32", "float32 compute assumed"
