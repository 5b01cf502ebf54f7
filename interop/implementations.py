"""Calling a plugin's implementations: in this process, or in the plugin's own environment.

Declarations name implementations by import path; this module imports them on
first use. Items bound to a separate Python environment are run through
:mod:`interop.environments` instead, with the same signatures, so callers never
see the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop.plugin_api import (
    Converter,
    EpochCallback,
    InteropError,
    Runtime,
    Session,
    Trainer,
    TrainConfig,
    TrainData,
    TrainResult,
    resolve,
)
from interop.plugin_registry import Provided, Registry, availability


def _ensure_available(provided: Provided[Any], registry: Registry, what: str) -> None:
    ok, why = availability(provided, registry)
    if not ok:
        raise InteropError(
            f"{what} (plugin {provided.plugin.name}) cannot run here: {why}",
            hint="see `interop plugins` for what each plugin needs",
        )


def call_converter(
    provided: Provided[Converter], registry: Registry, src: Path, dst: Path,
    options: Mapping[str, Any],
) -> None:
    conv = provided.item
    env = registry.environment_for(provided)
    if env is not None:
        from interop.environments import run_converter_in

        run_converter_in(env, conv.impl, src, dst, dict(options))
        return
    resolve(conv.impl)(src, dst, dict(options))


def open_session(provided: Provided[Runtime], registry: Registry, path: Path) -> Session:
    """Load ``path`` in a runtime, checking it is available here first."""
    rt = provided.item
    _ensure_available(provided, registry, f"runtime {rt.name}")
    env = registry.environment_for(provided)
    if env is not None:
        from interop.environments import load_runtime_in

        return load_runtime_in(env, rt.load, path, engine=rt.engine or rt.name)
    return resolve(rt.load)(path)


def call_trainer(
    provided: Provided[Trainer], registry: Registry, dst: Path, data: TrainData,
    config: TrainConfig, on_epoch: EpochCallback,
) -> TrainResult:
    tr = provided.item
    _ensure_available(provided, registry, f"trainer {tr.framework}")
    env = registry.environment_for(provided)
    if env is not None:
        from interop.environments import run_trainer_in

        return run_trainer_in(env, tr.impl, dst, data, config, on_epoch)
    return resolve(tr.impl)(dst, data, config, on_epoch)
