"""The runtimes table of the demo's report: every runtime of the demo's formats, and whether it can run here.

Which runtime runs each format is decided by :func:`interop.runtime_choice.choose_runtime`,
as for `interop check`.
"""

from __future__ import annotations

from typing import Any


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
