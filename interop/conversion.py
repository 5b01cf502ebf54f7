"""Conversion: detect the source format, plan the route, run each hop, write atomically."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop.errors import exception_line, raise_if_interrupted
from interop.formats import check_content, detect_format, format_for_output
from interop.implementations import call_converter
from interop.output_files import atomic_output, refuse_overlap, same_format_directory
from interop.plugin_api import ConversionError, Converter, InteropError, ModelLoadError, option_values
from interop.plugin_registry import Provided, Registry, get_registry
from interop.routing import plan_route


@dataclass
class Hop:
    """One applied converter of a route, with the file it produced."""

    source: str
    target: str
    plugin: str
    path: Path
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConvertResult:
    """What :func:`convert` did: the formats, and each hop with the file it wrote."""

    source: Path
    destination: Path
    source_format: str
    target_format: str
    hops: list[Hop]

    @property
    def route(self) -> list[str]:
        return [self.source_format] + [h.target for h in self.hops]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``interop convert --json``; intermediates are named by their role."""
        return {
            "source": str(self.source),
            "destination": str(self.destination),
            "source_format": self.source_format,
            "target_format": self.target_format,
            "route": self.route,
            "hops": [
                {"source": hop.source, "target": hop.target, "plugin": hop.plugin,
                 "seconds": round(hop.seconds, 3), "options": _plain(hop.options),
                 "output": self.output_label(index)}
                for index, hop in enumerate(self.hops)
            ],
        }

    def output_label(self, index: int) -> str:
        """How reports name the file hop ``index`` wrote: the destination, or the intermediate by its role."""
        if index == len(self.hops) - 1:
            return str(self.destination)
        hop = self.hops[index]
        return (f"intermediate {hop.target} (hop {index + 1} of {len(self.hops)}: "
                f"{hop.source} -> {hop.target}, not kept)")


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
            for name, value in options.items()}


def resolve_target(dst: Path, to: str | None, registry: Registry) -> str:
    """The target format: ``to``, else the one whose extension ``dst`` has (exit 2 when neither)."""
    from interop.builtin_plugins import for_format, suffix_hint

    known = ", ".join(sorted(registry.formats)) or "none (no plugin is installed)"
    if to:
        if to not in registry.formats:
            plugin = for_format(to)
            raise InteropError(
                f"unknown target format {to!r}",
                hint=f"the {to} format comes with the {plugin.name} plugin: {plugin.install}" if plugin
                else f"installed formats: {known}",
            )
        return to
    guessed = format_for_output(dst, registry)
    if guessed is None:
        raise InteropError(
            f"cannot tell the target format from {dst.name!r}",
            hint=suffix_hint(dst) or f"pass --to FORMAT or use a known extension; installed formats: {known}",
        )
    return guessed


def _name_the_targets_plugin_too(error: ModelLoadError, src: Path, dst: Path, to: str | None,
                                 registry: Registry) -> None:
    """No plugin reads the source nor writes the target (a core-only install): one hint names both."""
    from interop.builtin_plugins import for_format, for_suffix

    if not src.exists() or to in registry.formats or (to is None and format_for_output(dst, registry) is not None):
        return
    source, target = for_suffix(src), (for_format(to) if to else for_suffix(dst))
    if source is None or target is None or source == target or source.disabled or target.disabled:
        return
    reads = next(s for s in source.suffixes if src.name.lower().endswith(s))
    writes = to or repr(next(s for s in target.suffixes if dst.name.lower().endswith(s)))
    error.hint = (f"the {source.name} plugin reads {reads!r} models and the {target.name} plugin writes "
                  f"{writes} models: pip install {source.distribution} {target.distribution}")


def split_options(
    route: list[Provided[Converter]], options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Give every hop the options it declares, checked by the declaration; an option no hop declares is an error.

    Each hop receives every option it declares: the user's value, parsed and
    checked by the plugin's :class:`~interop.plugin_api.Option`, else its default.
    """
    per_hop: list[dict[str, Any]] = []
    used: set[str] = set()
    for provided in route:
        declared = provided.item.options
        mine = {o.name: options.get(o.name) for o in declared}
        per_hop.append(option_values(declared, mine))
        used.update(name for name, value in mine.items() if value is not None)
    unknown = sorted(n for n, v in options.items() if v is not None and n not in used)
    if unknown:
        steps = " -> ".join([route[0].item.source] + [p.item.target for p in route]) if route else "(none)"
        raise InteropError(
            f"option {', '.join(unknown)} is not understood by any converter on the route {steps}",
            hint="`interop convert --help-options FORMAT` lists the options of the converters of a format",
        )
    return per_hop


def convert(
    src: str | Path,
    dst: str | Path,
    to: str | None = None,
    *,
    from_format: str | None = None,
    force: bool = False,
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
    keep_intermediates: Path | None = None,
    on_hop: Callable[[Hop], None] | None = None,
    on_hop_start: Callable[[Converter, str], None] | None = None,
) -> ConvertResult:
    """Convert ``src`` into ``dst``, routing through as many converters as needed.

    ``options`` go to every hop that declares them (``{"opset": 17}``). The result
    lists the hops taken; ``on_hop_start(converter, plugin name)`` and ``on_hop(hop)``
    are called around each. Nothing is left at ``dst`` when any hop fails. ``dst``
    may not be ``src`` (links resolved), lie inside it or contain it; an existing
    directory at ``dst`` is replaced (with ``force``) only if it is a valid model of
    the target format.
    """
    registry = registry or get_registry()
    src, dst = Path(src), Path(dst)
    try:
        source_format = from_format or detect_format(src, registry, format_flag="--from")
    except ModelLoadError as error:
        _name_the_targets_plugin_too(error, src, dst, to, registry)
        raise
    check_content(src, source_format, registry)
    target_format = resolve_target(dst, to, registry)
    refuse_overlap(dst, [src])
    replaceable = same_format_directory(target_format, registry)
    route = plan_route(source_format, target_format, registry)
    if not route:
        raise InteropError(
            f"{src} is already {target_format}", hint="nothing to convert; copy the file instead"
        )
    per_hop = split_options(route, options or {})
    hops: list[Hop] = []
    with atomic_output(dst, force=force, replaceable=replaceable) as final_tmp:
        current = src
        for index, (provided, hop_options) in enumerate(zip(route, per_hop)):
            last = index == len(route) - 1
            if last:
                out = final_tmp
            else:
                ext = _extension_for(provided.item.target, registry)
                out = final_tmp.parent / f"hop{index + 1}-{provided.item.target}{ext}"
            if on_hop_start is not None:
                on_hop_start(provided.item, provided.plugin.name)
            started = time.perf_counter()
            run_converter(provided, current, out, hop_options, registry)
            raise_if_interrupted()  # Ctrl-C that a library's bare `except:` swallowed
            hop = Hop(
                provided.item.source, provided.item.target, provided.plugin.name, out,
                time.perf_counter() - started, hop_options,
            )
            hops.append(hop)
            if on_hop is not None:
                on_hop(hop)
            if keep_intermediates is not None and not last:
                import shutil

                kept = keep_intermediates / out.name
                if out.is_dir():
                    shutil.copytree(out, kept, dirs_exist_ok=True)
                else:
                    shutil.copy2(out, kept)
                hop.path = kept
            current = out
        hops[-1].path = dst
    return ConvertResult(src, dst, source_format, target_format, hops)


def run_converter(
    provided: Provided[Converter], src: Path, dst: Path, options: Mapping[str, Any], registry: Registry
) -> None:
    """Call one converter, turning unexpected exceptions into a ConversionError."""
    conv = provided.item
    try:
        call_converter(provided, registry, src, dst, options)
    except InteropError:
        raise
    except Exception as exc:
        raise ConversionError(
            f"converter {conv.source} -> {conv.target} (plugin {provided.plugin.name}) failed on "
            f"{src.name}: {exception_line(exc)}",
            hint="set INTEROP_DEBUG=1 for the traceback",
        ) from exc
    if not dst.exists():
        raise ConversionError(
            f"converter {conv.source} -> {conv.target} (plugin {provided.plugin.name}) "
            "reported success but wrote nothing"
        )


def _extension_for(fmt: str, registry: Registry) -> str:
    item = registry.formats[fmt].item if fmt in registry.formats else None
    if item is None:
        return ""
    for ext in (*item.extensions, *item.directory_suffixes):
        return ext
    return ""


__all__ = ["convert", "ConvertResult", "Hop"]
