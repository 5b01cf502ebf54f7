"""Which runtime runs a model of a format here: the one chooser behind check, the demo and the conformance kit.

A runtime the user names is used if it exists, runs the format and can run on
this machine; otherwise the error says what to pick instead (a runtime whose ``available``
says this operating system cannot run it names the runtimes of the format that do run here). Without a name the
best runtime of the format (priority, then name) that can run here is chosen,
and the choice records every better-ranked runtime it passed over and why, so
reports can say that a number came from a stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from interop.plugin_api import InteropError, Runtime, UnsupportedModelError
from interop.plugin_registry import Provided, Registry, availability


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime chosen for a format, and each better-ranked runtime passed over with the reason."""

    format: str
    provided: Provided[Runtime]
    passed_over: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    requested: bool = False

    @property
    def runtime(self) -> str:
        """The chosen runtime's name."""
        return self.provided.item.name

    @property
    def declared_engine(self) -> str:
        """What the runtime declares it computes with (a loaded session's ``engine`` wins over it)."""
        return self.provided.item.engine or self.provided.item.name


def _names(runtimes: list[Provided[Runtime]]) -> str:
    return ", ".join(p.item.name for p in runtimes) or "none"


def choose_runtime(fmt: str, registry: Registry, wanted: str | None = None) -> RuntimeChoice:
    """The runtime for models of ``fmt``: ``wanted`` when given, else the best one that can run here.

    Raises InteropError (exit 2) for a runtime that does not exist or does not run
    ``fmt``, UnsupportedModelError (exit 3) when the chosen or every runtime cannot
    run here; each message names what can be used instead. Nothing is loaded.
    """
    of_format = registry.runtimes_for(fmt)
    if wanted is not None:
        return _requested(fmt, wanted, of_format, registry)
    passed_over: list[tuple[str, str]] = []
    for provided in of_format:
        ok, why = availability(provided, registry)
        if ok:
            return RuntimeChoice(fmt, provided, tuple(passed_over))
        passed_over.append((provided.item.name, why))
    if not of_format:
        from interop.builtin_plugins import runtime_hint

        raise UnsupportedModelError(
            f"no installed runtime runs {fmt} models",
            hint=runtime_hint(fmt) or "install a plugin with a runtime for them (`interop plugins` lists what is installed)",
        )
    reasons = "; ".join(f"{name}: {why}" for name, why in passed_over)
    raise UnsupportedModelError(
        f"no runtime for {fmt} models can run here ({reasons})",
        hint="install what one of them needs (see `interop plugins`)",
    )


def _requested(fmt: str, wanted: str, of_format: list[Provided[Runtime]], registry: Registry) -> RuntimeChoice:
    provided = registry.runtimes.get(wanted)
    if provided is None:
        raise InteropError(
            f"unknown runtime {wanted!r}",
            hint=f"runtimes of {fmt} models: {_names(of_format)} (all installed runtimes: "
                 f"{', '.join(sorted(registry.runtimes)) or 'none'})",
        )
    if fmt not in provided.item.formats:
        raise InteropError(
            f"runtime {wanted} does not run {fmt} models (it runs {', '.join(provided.item.formats)})",
            hint=f"runtimes of {fmt} models: {_names(of_format)}",
        )
    ok, why = availability(provided, registry)
    if ok:
        return RuntimeChoice(fmt, provided, requested=True)
    usable = [p for p in of_format if p is not provided and availability(p, registry)[0]]
    if usable:
        best = usable[0].item.name
        hint = (f"{_names(usable)} can run {fmt} models here: pick it with MODEL@{best} "
                f"or --runtime {fmt}={best}")
    else:
        hint = "no other runtime of this format can run here; see `interop plugins` for what each needs"
    raise UnsupportedModelError(f"runtime {wanted} cannot run here: {why}", hint=hint)


__all__ = ["RuntimeChoice", "choose_runtime"]
