"""`interop convert SRC -o DST`: convert a model, routing through ONNX when needed.

The command's own flags are about files and routes; every converter option is
declared by the plugin whose converter reads it (:class:`interop.plugin_api.Option`),
and this command turns each declaration into a flag (``max_dynamic_dim`` ->
``--max-dynamic-dim``), listed per plugin in ``--help``. ``-O NAME=VALUE`` reaches
the same options, and ``--help-options FORMAT`` lists those of one format's converters.
Values are checked once, by the declaration, when the route is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from interop.cli.common import parse_key_values, registry_with_warnings
from interop.cli.console import Console, output_options
from interop.plugin_api import Converter, InteropError, Option
from interop.plugin_registry import Registry, get_registry

#: Prefix of the click parameter names of generated flags (never a Python name a user types).
PLUGIN_PARAM_PREFIX = "plugin_option__"
_TYPE_METAVARS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "bool": ""}


@dataclass(frozen=True)
class DeclaredOption:
    """An option as one installed converter declares it."""

    plugin: str
    converter: Converter
    option: Option

    @property
    def where(self) -> str:
        return f"the {self.converter.source} -> {self.converter.target} converter (plugin {self.plugin})"


def declared_options(registry: Registry) -> list[DeclaredOption]:
    """Options of the converters in use (after precedence), in plugin then route order."""
    found = [
        DeclaredOption(provided.plugin.name, provided.item, option)
        for provided in registry.converters.values() for option in provided.item.options
    ]
    return sorted(found, key=lambda d: (d.plugin, d.converter.source, d.converter.target))


def _metavar(declarations: list[Option]) -> str:
    choices = list(dict.fromkeys(c for option in declarations for c in option.choices))
    if choices and all(option.choices for option in declarations):
        return "[" + "|".join(map(str, choices)) + "]"
    types = {option.type for option in declarations}
    return _TYPE_METAVARS[types.pop()] if len(types) == 1 else "VALUE"


def _details(option: Option) -> str:
    parts = []
    if option.default is not None:
        parts.append(f"default: {option.default}")
    if option.minimum is not None:
        parts.append(f"at least {option.minimum:g}")
    if option.maximum is not None:
        parts.append(f"at most {option.maximum:g}")
    text = option.help or ""
    return f"{text}  [{'; '.join(parts)}]" if parts else text


class ConvertCommand(click.Command):
    """``interop convert`` plus one flag per converter option the installed plugins declare."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._generated: list[click.Parameter] | None = None
        self._hidden_by_core: list[DeclaredOption] = []

    def generated_params(self) -> list[click.Parameter]:
        """The flags made from the declarations (computed once; discovery imports no framework)."""
        if self._generated is not None:
            return self._generated
        taken = {opt for param in self.params for opt in (*param.opts, *param.secondary_opts)}
        by_name: dict[str, list[DeclaredOption]] = {}
        for declared in declared_options(get_registry()):
            by_name.setdefault(declared.option.name, []).append(declared)
        params: list[click.Parameter] = []
        for name, declarations in sorted(by_name.items()):
            options = [d.option for d in declarations]
            flag = options[0].flag
            negative = "--no-" + flag[2:]
            is_bool = all(o.type == "bool" for o in options)
            if flag in taken or (is_bool and negative in taken):
                self._hidden_by_core.extend(declarations)  # still reachable with -O NAME=VALUE
                continue
            if is_bool:
                params.append(click.Option([f"{flag}/{negative}", PLUGIN_PARAM_PREFIX + name],
                                           default=None, help=options[0].help))
            else:
                # Passed on as text: the declaration parses and checks it, once, for every hop.
                params.append(click.Option([flag, PLUGIN_PARAM_PREFIX + name], type=click.STRING,
                                           metavar=_metavar(options), help=options[0].help))
        self._generated = params
        return params

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        # Keep --help last, as click does.
        help_option = [p for p in params if p.name == "help"]
        rest = [p for p in params if p.name != "help"]
        return rest + self.generated_params() + help_option

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [p.get_help_record(ctx) for p in super().get_params(ctx) if isinstance(p, click.Option)]
        with formatter.section("Options"):
            formatter.write_dl([r for r in rows if r is not None])
        self.generated_params()
        write_plugin_options(formatter, declared_options(get_registry()), self._hidden_by_core)


def write_plugin_options(
    formatter: click.HelpFormatter, declarations: Iterable[DeclaredOption],
    hidden: Iterable[DeclaredOption] = (),
) -> None:
    """One help section per converter: its options as flags, with their defaults and bounds."""
    hidden_names = {d.option.name for d in hidden}
    grouped: dict[str, list[DeclaredOption]] = {}
    for declared in declarations:
        grouped.setdefault(declared.where, []).append(declared)
    if not grouped:
        formatter.write_paragraph()
        formatter.write_text("No installed converter declares options.")
        return
    for where, items in grouped.items():
        rows = []
        for declared in items:
            option = declared.option
            if option.name in hidden_names:
                head = f"-O {option.name}=VALUE"
            elif option.type == "bool":
                head = f"{option.flag} / --no-{option.flag[2:]}"
            else:
                head = f"{option.flag} {_metavar([option])}"
            rows.append((head, _details(option)))
        with formatter.section(f"Options of {where}"):
            formatter.write_dl(rows)


def _show_format_options(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--help-options FORMAT``: the options of every converter reading or writing FORMAT."""
    if value is None or ctx.resilient_parsing:
        return
    from interop.formats import format_for_output

    registry = get_registry()
    fmt = value if value in registry.formats else format_for_output(Path(value), registry)
    if fmt is None:
        known = ", ".join(sorted(registry.formats)) or "none"
        raise InteropError(f"--help-options: unknown format {value!r}", hint=f"known formats: {known}")
    chosen = [d for d in declared_options(registry) if fmt in (d.converter.source, d.converter.target)]
    formatter = ctx.make_formatter()
    converters = sorted({d.where for d in chosen})
    formatter.write_text(f"Converter options for format {fmt}" +
                         (f" ({len(converters)} converter(s))" if converters else ""))
    if chosen:
        write_plugin_options(formatter, chosen, getattr(ctx.command, "_hidden_by_core", ()))
    else:
        formatter.write_paragraph()
        formatter.write_text(f"No installed converter from or to {fmt} declares options.")
    click.echo(formatter.getvalue().rstrip("\n"))
    ctx.exit(0)


def collect_options(params: dict[str, Any], extra: tuple[str, ...]) -> dict[str, object]:
    """The converter options the user gave, from generated flags and ``-O NAME=VALUE`` (each once)."""
    options: dict[str, object] = {
        name[len(PLUGIN_PARAM_PREFIX):]: value for name, value in params.items()
        if name.startswith(PLUGIN_PARAM_PREFIX) and value is not None
    }
    for name, value in parse_key_values(extra, "option").items():
        if name in options:
            raise InteropError(f"option {name} is given twice (as a flag and with -O)",
                               hint="give each converter option once")
        options[name] = value
    return options


@click.command(name="convert", cls=ConvertCommand)
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--output", "dst", required=True, type=click.Path(path_type=Path),
              help="Where to write the converted model.")
@click.option("--to", "to", help="Target format (default: from the output's extension).")
@click.option("--from", "from_format", help="Source format (default: detected from SRC).")
@click.option("-O", "--option", "extra", multiple=True, metavar="NAME=VALUE",
              help="A converter option (repeatable); the converters' options are listed below.")
@click.option("--help-options", metavar="FORMAT", expose_value=False, is_eager=True,
              callback=_show_format_options,
              help="List the options of the converters from or to FORMAT (a name or a file name) and exit.")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
@click.option("--check", "check_hops", is_flag=True,
              help="Check every hop's outputs against the source; exit 1 if one diverges.")
@output_options(reads=lambda params: [params["src"]])
def command(
    src: Path, dst: Path, to: str | None, from_format: str | None, extra: tuple[str, ...], force: bool,
    check_hops: bool, console: Console, **generated: Any,
) -> int:
    """Convert SRC into DST (formats detected; multi-hop routes planned from plugins)."""
    from interop.conversion import convert

    registry = registry_with_warnings()
    options = collect_options(generated, extra)

    def on_hop_start(converter: Converter, plugin: str) -> None:
        console.start_step(f"converting {converter.source} -> {converter.target} with plugin {plugin}")

    def on_hop(hop) -> None:  # type: ignore[no-untyped-def]
        console.end_steps()
        console.progress(f"  {hop.source} -> {hop.target} with plugin {hop.plugin} ({hop.seconds:.1f} s)")

    if check_hops:
        from interop.cli.convert_check import convert_and_check

        return convert_and_check(
            src, dst, to=to, from_format=from_format, force=force, options=options,
            registry=registry, on_hop=on_hop, on_hop_start=on_hop_start, console=console,
        )
    result = convert(src, dst, to, from_format=from_format, force=force, options=options,
                     registry=registry, on_hop=on_hop, on_hop_start=on_hop_start)
    console.result(f"wrote {result.destination} ({' -> '.join(result.route)})")
    console.document(result.to_dict())
    return 0
