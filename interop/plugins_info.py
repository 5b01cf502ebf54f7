"""What the installed plugins provide, as plain data for `interop plugins` and the Python API."""

from __future__ import annotations

from typing import Any

from interop.registry import Registry, availability, get_registry


def _owner(table: dict, key: Any, plugin_name: str) -> bool:
    return key in table and table[key].plugin.name == plugin_name


def _state(registry: Registry, table: dict, key: Any, plugin_name: str) -> dict[str, Any]:
    """Whether this plugin's item is the one in use (precedence) and whether it can run here."""
    if not _owner(table, key, plugin_name):
        return {"active": False, "available": False, "reason": "shadowed by another plugin"}
    ok, why = availability(table[key], registry)
    return {"active": True, "available": ok, "reason": why}


def list_plugins(registry: Registry | None = None) -> dict[str, Any]:
    """Every plugin with distribution, version, status and what it declares.

    Items shadowed by another plugin (see the precedence rule) are marked
    ``"active": false``. Nothing here imports a framework.
    """
    registry = registry or get_registry()
    plugins = []
    for loaded in registry.plugins:
        entry: dict[str, Any] = {
            "name": loaded.name,
            "distribution": loaded.distribution,
            "version": loaded.version,
            "status": loaded.status,
            "error": loaded.error,
            "formats": [],
            "converters": [],
            "runtimes": [],
            "trainers": [],
        }
        plugin = loaded.plugin
        if plugin is not None:
            entry["description"] = plugin.description
            entry["api_version"] = plugin.api_version
            for fmt in plugin.formats:
                entry["formats"].append({
                    "name": fmt.name,
                    "extensions": list(fmt.extensions) + list(fmt.directory_suffixes),
                    "directory_markers": list(fmt.directory_markers),
                    "active": _owner(registry.formats, fmt.name, loaded.name),
                })
            for conv in plugin.converters:
                entry["converters"].append({
                    "source": conv.source,
                    "target": conv.target,
                    "options": [
                        {"name": o.name, "type": o.type, "default": o.default, "help": o.help,
                         "choices": list(o.choices)}
                        for o in conv.options
                    ],
                    "environment": conv.environment,
                    **_state(registry, registry.converters, conv.key, loaded.name),
                })
            for rt in plugin.runtimes:
                entry["runtimes"].append({
                    "name": rt.name,
                    "formats": list(rt.formats),
                    "engine": rt.engine or rt.name,
                    "environment": rt.environment,
                    **_state(registry, registry.runtimes, rt.name, loaded.name),
                })
            for tr in plugin.trainers:
                entry["trainers"].append({
                    "framework": tr.framework,
                    "format": tr.format,
                    "environment": tr.environment,
                    **_state(registry, registry.trainers, tr.framework, loaded.name),
                })
        plugins.append(entry)
    return {"plugins": plugins, "conflicts": list(registry.conflicts)}
