"""What the installed plugins provide, as plain data for `interop plugins` and the Python API.

The document follows a published JSON Schema, ``interop/schemas/plugins.schema.json``
(:func:`schema`); ``schema_version`` changes only when a field changes meaning or
goes away.
"""

from __future__ import annotations

from typing import Any

from interop.plugin_api import PLUGIN_API_VERSION
from interop.plugin_registry import Registry, availability, get_registry

#: Version of the document's schema (interop/schemas/plugins.schema.json).
SCHEMA_VERSION = 1


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
                         "choices": list(o.choices), "minimum": o.minimum, "maximum": o.maximum,
                         "flag": o.flag}
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
                    "init_formats": list(tr.init_formats),
                    "follows_batch_order": tr.follows_batch_order,
                    **_state(registry, registry.trainers, tr.framework, loaded.name),
                })
        plugins.append(entry)
    major, minor = PLUGIN_API_VERSION
    return {"schema_version": SCHEMA_VERSION, "plugin_api_version": f"{major}.{minor}", "plugins": plugins,
            "conflicts": list(registry.conflicts)}


def schema() -> dict[str, Any]:
    """The JSON Schema of :func:`list_plugins`' document (``interop/schemas/plugins.schema.json``)."""
    import json
    from importlib import resources

    return json.loads((resources.files("interop") / "schemas" / "plugins.schema.json").read_text())
