"""Discovery of plugins through the ``interop.plugins`` entry-point group.

Loading reads declarations only (entry points come from :mod:`interop.distributions`): each entry point is loaded in its own ``try`` so
that one broken plugin is reported (name, distribution, version, error) instead of
taking the host down. ``INTEROP_STRICT_PLUGINS=1`` turns such a report into an
error; ``INTEROP_DISABLE_PLUGINS=a,b`` skips plugins by entry-point name.

Precedence when two plugins declare the same format name, converter
(source, target), runtime name or trainer framework: the higher ``priority`` wins;
on a tie the plugin whose name sorts first wins. Every collision is recorded in
:attr:`Registry.conflicts` and shown by ``interop plugins``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from interop import distributions
from interop.plugin_api import (
    PLUGIN_API_VERSION,
    Converter,
    Environment,
    Format,
    InteropError,
    Plugin,
    PluginDeclarationError,
    Runtime,
    Trainer,
)

ENTRY_POINT_GROUP = "interop.plugins"

T = TypeVar("T")


class PluginLoadError(InteropError):
    """A plugin failed to load while INTEROP_STRICT_PLUGINS is set (exit 4)."""

    exit_code = 4


@dataclass
class LoadedPlugin:
    """One entry point as found: its origin, status and declaration."""

    name: str
    distribution: str
    version: str
    status: str  # "ok", "error" or "disabled"
    error: str | None = None
    plugin: Plugin | None = None

    def describe(self) -> str:
        return f"{self.name} (distribution {self.distribution} {self.version})"


@dataclass(frozen=True)
class Provided(Generic[T]):
    """A declaration together with the plugin that provided it."""

    item: T
    plugin: LoadedPlugin


@dataclass
class Registry:
    """Everything the installed, working plugins declare, after precedence."""

    plugins: list[LoadedPlugin] = field(default_factory=list)
    formats: dict[str, Provided[Format]] = field(default_factory=dict)
    converters: dict[tuple[str, str], Provided[Converter]] = field(default_factory=dict)
    runtimes: dict[str, Provided[Runtime]] = field(default_factory=dict)
    trainers: dict[str, Provided[Trainer]] = field(default_factory=dict)
    environments: dict[str, Provided[Environment]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ building

    def add(self, loaded: LoadedPlugin) -> None:
        """Register a loaded plugin's declarations, applying precedence."""
        self.plugins.append(loaded)
        plugin = loaded.plugin
        if loaded.status != "ok" or plugin is None:
            return
        for fmt in plugin.formats:
            self._claim(self.formats, fmt.name, fmt, loaded, f"format {fmt.name!r}")
        for conv in plugin.converters:
            self._claim(
                self.converters, conv.key, conv, loaded,
                f"converter {conv.source} -> {conv.target}",
            )
        for rt in plugin.runtimes:
            self._claim(self.runtimes, rt.name, rt, loaded, f"runtime {rt.name!r}")
        for tr in plugin.trainers:
            self._claim(self.trainers, tr.framework, tr, loaded, f"trainer {tr.framework!r}")
        for env in plugin.environments:
            # Environments are namespaced by plugin: two plugins may both call theirs "default".
            self.environments[f"{plugin.name}:{env.name}"] = Provided(env, loaded)

    def _claim(self, table: dict, key: Any, item: Any, loaded: LoadedPlugin, what: str) -> None:
        current = table.get(key)
        if current is None:
            table[key] = Provided(item, loaded)
            return
        rank_new = (-item.priority, loaded.name)
        rank_old = (-current.item.priority, current.plugin.name)
        winner, loser = (loaded, current.plugin) if rank_new < rank_old else (current.plugin, loaded)
        self.conflicts.append(
            f"{what} is declared by plugins {current.plugin.name!r} and {loaded.name!r}; "
            f"using {winner.name!r} (higher priority, then name order)"
        )
        if winner is loaded:
            table[key] = Provided(item, loaded)

    # ------------------------------------------------------------------ queries

    def environment_for(self, provided: Provided[Any]) -> Environment | None:
        name = getattr(provided.item, "environment", None)
        if name is None or provided.plugin.plugin is None:
            return None
        return self.environments[f"{provided.plugin.plugin.name}:{name}"].item

    def runtimes_for(self, fmt: str) -> list[Provided[Runtime]]:
        """Runtimes that execute ``fmt``, best first (priority, then name)."""
        found = [p for p in self.runtimes.values() if fmt in p.item.formats]
        return sorted(found, key=lambda p: (-p.item.priority, p.item.name))



def missing_requirements(requires: Iterable[str]) -> list[str]:
    """Distributions in ``requires`` that are not installed (read from metadata folders, nothing imported)."""
    return [dist for dist in requires if not distributions.installed(dist)]


def availability(
    provided: Provided[Converter] | Provided[Runtime] | Provided[Trainer], registry: Registry,
) -> tuple[bool, str]:
    """Whether a converter/runtime/trainer can run here, and the reason if not.

    All of ``requires`` must be installed (or the item's environment must exist),
    then ``available()``, when declared, has the last word.
    """
    from interop.plugin_api import resolve

    item = provided.item
    env = registry.environment_for(provided)
    if env is not None:
        from interop.environments import environment_status

        ok, why = environment_status(env)
        if not ok:
            return False, why
    else:
        missing = missing_requirements(item.requires)
        if missing:
            return False, (
                f"needs {', '.join(missing)} (pip install {' '.join(missing)})"
            )
    check = item.available
    if check:
        try:
            result = resolve(check)()
        except Exception as exc:  # a plugin's check must never break the host
            return False, f"availability check failed: {type(exc).__name__}: {exc}"
        ok, why = result
        return bool(ok), str(why or "")
    return True, ""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def load_entry_point(ep: distributions.EntryPoint, disabled: set[str]) -> LoadedPlugin:
    """Load one entry point into a LoadedPlugin; never raises."""
    loaded = LoadedPlugin(name=ep.name, distribution=ep.distribution, version=ep.version, status="ok")
    if ep.name in disabled:
        loaded.status = "disabled"
        loaded.error = "disabled by INTEROP_DISABLE_PLUGINS"
        return loaded
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, Plugin):
            obj = obj()
        if not isinstance(obj, Plugin):
            raise PluginDeclarationError(
                f"entry point {ep.value!r} gives {type(obj).__name__}, not interop.plugin_api.Plugin"
            )
        obj.validate()
        if obj.api_version != PLUGIN_API_VERSION[0]:
            raise PluginDeclarationError(
                f"written for plugin API {obj.api_version}, this interop provides "
                f"{PLUGIN_API_VERSION[0]}.{PLUGIN_API_VERSION[1]}",
                hint="install a version of the plugin made for this interop, or upgrade interop",
            )
        loaded.plugin = obj
    except Exception as exc:  # noqa: BLE001 - isolate every plugin failure
        loaded.status = "error"
        message = exc.message if isinstance(exc, InteropError) else str(exc)
        loaded.error = f"{type(exc).__name__}: {message}"
    return loaded


def disabled_plugin_names() -> set[str]:
    """The plugins ``INTEROP_DISABLE_PLUGINS=a,b`` skips, by entry-point name."""
    return {name.strip() for name in os.environ.get("INTEROP_DISABLE_PLUGINS", "").split(",") if name.strip()}


def discover() -> Registry:
    """Load every plugin of the entry-point group into a fresh Registry."""
    disabled = disabled_plugin_names()
    distributions.forget()  # a fresh discovery sees distributions installed since the last one
    registry = Registry()
    eps = sorted(distributions.entry_points(ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    seen: set[str] = set()
    for ep in eps:
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        registry.add(load_entry_point(ep, disabled))
    if _truthy(os.environ.get("INTEROP_STRICT_PLUGINS")):
        broken = [p for p in registry.plugins if p.status == "error"]
        if broken:
            first = broken[0]
            raise PluginLoadError(
                f"plugin {first.describe()} failed to load: {first.error}",
                hint="unset INTEROP_STRICT_PLUGINS to skip broken plugins with a warning",
            )
    return registry


_cached: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, discovered on first use."""
    global _cached
    if _cached is None or refresh:
        _cached = discover()
    return _cached

