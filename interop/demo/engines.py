"""Which runtime runs each format in the demo, and why the ones passed over cannot run here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interop.plugin_api import InteropError
from interop.registry import Registry, availability


@dataclass
class RuntimeChoice:
    """The runtime picked for a format, and every better-ranked one that is unavailable here."""

    format: str
    runtime: str
    declared_engine: str
    passed_over: list[tuple[str, str]] = field(default_factory=list)


def pick_runtime(fmt: str, registry: Registry) -> RuntimeChoice:
    """The best available runtime of ``fmt`` (the check engine's default order)."""
    passed_over: list[tuple[str, str]] = []
    for provided in registry.runtimes_for(fmt):
        ok, why = availability(provided, registry)
        if ok:
            item = provided.item
            return RuntimeChoice(fmt, item.name, item.engine or item.name, passed_over)
        passed_over.append((provided.item.name, why))
    reasons = "; ".join(f"{name}: {why}" for name, why in passed_over) or "none is installed"
    raise InteropError(
        f"no runtime can run {fmt} models here ({reasons})",
        hint="see `interop plugins` for what each plugin needs",
    )


def runtime_rows(plugins: dict[str, Any], formats: set[str]) -> list[dict[str, Any]]:
    """Runtimes of ``formats`` from :func:`interop.list_plugins` data: name, engine, plugin, availability."""
    rows = []
    for plugin in plugins.get("plugins", []):
        for runtime in plugin.get("runtimes", []):
            if not runtime.get("active") or not formats & set(runtime.get("formats", [])):
                continue
            rows.append({
                "runtime": runtime["name"],
                "formats": list(runtime["formats"]),
                "engine": runtime.get("engine") or runtime["name"],
                "plugin": f"{plugin['distribution']} {plugin['version']}",
                "available": bool(runtime.get("available")),
                "reason": runtime.get("reason") or "",
            })
    return rows
