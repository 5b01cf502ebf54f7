"""Pieces shared by the commands: the registry with its warnings, option parsing."""

from __future__ import annotations

import click

from interop.plugin_api import InteropError
from interop.plugin_registry import Registry, get_registry


def registry_with_warnings() -> Registry:
    """The plugin registry; broken plugins and conflicts are warned about once on stderr."""
    registry = get_registry()
    for loaded in registry.plugins:
        if loaded.status == "error":
            click.echo(
                f"warning: plugin {loaded.describe()} failed to load and is skipped: {loaded.error}",
                err=True,
            )
    for conflict in registry.conflicts:
        click.echo(f"warning: {conflict}", err=True)
    return registry


def parse_key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    """Turn ("a=1", "b=x") into {"a": "1", "b": "x"}; a pair without '=' is bad usage."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InteropError(f"{what} {pair!r} is not NAME=VALUE")
        parsed[key.strip().replace("-", "_")] = value.strip()
    return parsed
