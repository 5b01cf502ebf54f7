"""Route planning: the shortest chain of installed converters from one format to another.

ONNX is the hub by construction (the built-in converters all go to or from it),
but nothing here knows that: the route is a breadth-first search over what the
installed plugins declare, preferring fewer hops, then available converters.
"""

from __future__ import annotations

from collections import deque

from interop.plugin_api import Converter, UnsupportedModelError
from interop.plugin_registry import Provided, Registry, availability


def reachable_from(source: str, registry: Registry) -> set[str]:
    seen, todo = {source}, deque([source])
    while todo:
        here = todo.popleft()
        for (src, dst) in registry.converters:
            if src == here and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    seen.discard(source)
    return seen


def plan_route(source: str, target: str, registry: Registry) -> list[Provided[Converter]]:
    """Converters to apply in order; raises UnsupportedModelError (exit 3) if none."""
    if source == target:
        return []
    usable = {
        key: provided
        for key, provided in registry.converters.items()
        if availability(provided, registry)[0]
    }
    route = _bfs(source, target, usable)
    if route is not None:
        return route
    declared = _bfs(source, target, registry.converters)
    if declared is not None:
        reasons = [
            f"{p.item.source}->{p.item.target} ({p.plugin.name}): {availability(p, registry)[1]}"
            for p in declared
            if not availability(p, registry)[0]
        ]
        raise UnsupportedModelError(
            f"the route {' -> '.join([source] + [p.item.target for p in declared])} "
            f"exists but cannot run here: {'; '.join(reasons)}",
            hint="install what the converter needs (see `interop plugins`)",
        )
    reach = sorted(reachable_from(source, registry))
    into = sorted({src for (src, dst) in registry.converters if dst == target})
    raise UnsupportedModelError(
        f"no converter route from {source} to {target}; from {source} the installed "
        f"plugins reach: {', '.join(reach) or 'nothing'}",
        hint=_builtin_route_hint(source, target, registry) or (
            (
                f"install a plugin that converts {source} (or one of {', '.join(reach)}) to {target}"
                if reach
                else f"install a plugin that converts {source} to another format"
            )
            + (f"; formats that convert to {target}: {', '.join(into)}" if into else "")
        ),
    )


def _builtin_route_hint(source: str, target: str, registry: Registry) -> str | None:
    """When built-in plugins that are not installed would complete a route: what to pip install."""
    from interop.builtin_plugins import BUILTIN_PLUGINS, for_converter

    edges = set(registry.converters) | {edge for plugin in BUILTIN_PLUGINS for edge in plugin.converters}
    parents: dict[str, str | None] = {source: None}
    todo = deque([source])
    while todo and target not in parents:
        here = todo.popleft()
        for src, dst in sorted(edges):
            if src == here and dst not in parents:
                parents[dst] = src
                todo.append(dst)
    if target not in parents:
        return None
    missing, node = [], target
    while parents[node] is not None:
        previous = parents[node]
        if (previous, node) not in registry.converters:
            plugin = for_converter(previous, node)
            if plugin is not None and plugin.distribution not in missing:
                missing.append(plugin.distribution)
        node = previous  # type: ignore[assignment]
    return f"the route needs built-in plugins that are not installed: pip install {' '.join(reversed(missing))}" \
        if missing else None


def _bfs(
    source: str, target: str, converters: dict[tuple[str, str], Provided[Converter]]
) -> list[Provided[Converter]] | None:
    parents: dict[str, Provided[Converter] | None] = {source: None}
    todo = deque([source])
    while todo:
        here = todo.popleft()
        for (src, dst), provided in sorted(converters.items()):
            if src != here or dst in parents:
                continue
            parents[dst] = provided
            if dst == target:
                route = []
                node = dst
                while parents[node] is not None:
                    step = parents[node]
                    route.append(step)
                    node = step.item.source
                return list(reversed(route))
            todo.append(dst)
    return None
