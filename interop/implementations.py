"""Calling a plugin's implementations: in this process, or in the plugin's own environment.

Declarations name implementations by import path; this module imports them on
first use. Items bound to a separate Python environment are run through
:mod:`interop.environments` instead, with the same signatures, so callers never
see the difference.

A plugin's code runs inside :func:`interop.errors.foreign_code`: under the command
line, Ctrl-C or SIGTERM there ends the process at once instead of raising through a
framework's C++ frames (see :mod:`interop.errors`). Sessions come back wrapped so
that each of their methods runs so too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop.errors import foreign_code
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
    with foreign_code():
        resolve(conv.impl)(src, dst, dict(options))


def open_session(provided: Provided[Runtime], registry: Registry, path: Path) -> Session:
    """Load ``path`` in a runtime, checking it is available here first."""
    rt = provided.item
    _ensure_available(provided, registry, f"runtime {rt.name}")
    env = registry.environment_for(provided)
    if env is not None:
        from interop.environments import load_runtime_in

        return load_runtime_in(env, rt.load, path, engine=rt.engine or rt.name)
    with foreign_code():
        return PluginSession(resolve(rt.load)(path))


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
    with foreign_code():
        return resolve(tr.impl)(dst, data, config, on_epoch)


class PluginSession:
    """A plugin's session whose methods run inside :func:`foreign_code`; attributes pass through.

    Optional capabilities (``run_intermediates``, ``metadata``...) stay optional: an
    attribute the session lacks is missing here too.
    """

    def __init__(self, session: Session):
        self.__dict__["wrapped"] = session

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.__dict__["wrapped"], name)
        if not callable(value) or isinstance(value, type):
            return value

        @functools.wraps(value)
        def in_plugin_code(*args: Any, **kwargs: Any) -> Any:
            with foreign_code():
                return value(*args, **kwargs)

        return in_plugin_code

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__dict__["wrapped"], name, value)

    def __repr__(self) -> str:
        return f"PluginSession({self.__dict__['wrapped']!r})"
