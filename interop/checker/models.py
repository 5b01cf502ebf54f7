"""Opening the models of a check: which runtime runs each file, and at what precision it computes.

A model argument is a path, optionally followed by ``@RUNTIME`` to pick the
engine (``model.onnx@RUNTIME``), or a ``(path, runtime)`` tuple in the
Python API. Otherwise ``--runtime FORMAT=RUNTIME`` decides for a whole format,
and by default the best *available* runtime of the format is used: a runtime
that cannot run here (one for another operating system) is passed over for the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from interop.checker.report import ModelInfo
from interop.checker.tolerances import PRECISION_DEFAULTS
from interop.errors import exception_line
from interop.formats import check_content, detect_format
from interop.implementations import open_session
from interop.plugin_api import (
    METADATA_PRECISION,
    METADATA_WEIGHT_COMPRESSION,
    InteropError,
    Session,
    session_metadata,
)
from interop.plugin_registry import Registry
from interop.runtime_choice import RuntimeChoice, choose_runtime

#: What the API accepts as a model: a path, "path@runtime", or (path, runtime).
ModelArg = Union[str, Path, tuple[Union[str, Path], str], "ModelRequest"]

class ModelRunError(InteropError):
    """A runtime failed while loading or running a model it claims to support (exit 4)."""

    exit_code = 4


@dataclass
class ModelRequest:
    """A model as asked for: its path, the runtime named for it (if any) and how reports name it.

    Callers that check files by role (``interop convert --check``: an intermediate hop
    that is deleted afterwards) pass a ModelRequest directly, with the label to show.
    """

    path: Path
    runtime: str | None
    label: str


@dataclass
class OpenModel:
    """A model loaded in its runtime, with what the report says about it."""

    info: ModelInfo
    session: Session


def parse_model_arg(arg: ModelArg, registry: Registry) -> ModelRequest:
    """Split ``"model.onnx@RUNTIME"`` (only when the file itself does not exist)."""
    if isinstance(arg, ModelRequest):
        return arg
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
    """``["FORMAT=RUNTIME"]`` -> ``{"FORMAT": "RUNTIME"}``."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return dict(pairs)
    parsed: dict[str, str] = {}
    for pair in pairs:
        fmt, sep, runtime = pair.partition("=")
        if not sep or not fmt.strip() or not runtime.strip():
            raise InteropError(f"--runtime {pair!r} is not FORMAT=RUNTIME", hint=_runtime_example())
        parsed[fmt.strip()] = runtime.strip()
    return parsed


def _runtime_example() -> str:
    """``for example --runtime FORMAT=RUNTIME`` with an installed runtime's names (one that runs here, if any)."""
    from interop.plugin_registry import availability, get_registry

    registry = get_registry()
    runtimes = sorted(registry.runtimes.values(), key=lambda p: (not availability(p, registry)[0], p.item.name))
    if not runtimes:
        return "`interop plugins` lists the installed runtimes and their formats"
    runtime = runtimes[0].item
    return f"for example --runtime {runtime.formats[0]}={runtime.name} (`interop plugins` lists the runtimes)"


def plan_model(request: ModelRequest, overrides: Mapping[str, str], registry: Registry) -> tuple[str, RuntimeChoice]:
    """(format, runtime choice) of a model, checked without loading anything: a bad file,
    an unknown ``@runtime`` or one that cannot run here fails before any model is loaded."""
    fmt = detect_format(request.path, registry)
    check_content(request.path, fmt, registry)
    return fmt, choose_runtime(fmt, registry, request.runtime or overrides.get(fmt))


def open_model(request: ModelRequest, overrides: Mapping[str, str], registry: Registry) -> OpenModel:
    """Detect the format, choose the runtime and load the model; errors carry exit codes."""
    fmt, choice = plan_model(request, overrides, registry)
    provided = choice.provided
    try:
        session = open_session(provided, registry, request.path)
    except InteropError:
        raise
    except Exception as exc:
        raise ModelRunError(
            f"runtime {provided.item.name} failed to load {request.path}: {exception_line(exc)}",
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


def model_precision(session: Any) -> tuple[str, str]:
    """(precision, why): a weight compression the model records (``METADATA_WEIGHT_COMPRESSION``: its
    error dominates the compute precision's), else ``METADATA_PRECISION``, else the output dtypes."""
    metadata = session_metadata(session)
    compression = metadata.get(METADATA_WEIGHT_COMPRESSION)
    if compression in PRECISION_DEFAULTS:
        return str(compression), f"model metadata {METADATA_WEIGHT_COMPRESSION}={compression}"
    recorded = metadata.get(METADATA_PRECISION)
    if recorded in PRECISION_DEFAULTS:
        return str(recorded), f"model metadata {METADATA_PRECISION}={recorded}"
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
