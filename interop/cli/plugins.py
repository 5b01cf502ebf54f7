"""`interop plugins`: list installed plugins and what they provide; `plugins new` scaffolds one."""

from __future__ import annotations

from pathlib import Path

import click

from interop.cli.console import Console, output_options


@click.group(name="plugins", invoke_without_command=True)
@output_options()
@click.pass_context
def command(ctx: click.Context, console: Console) -> None:
    """List installed plugins: formats, converters, runtimes (available or why not)."""
    if ctx.invoked_subcommand is not None:
        return
    from interop.plugins_info import list_plugins

    info = list_plugins()
    console.result("\n".join(table_lines(info, verbose=console.verbose)))
    console.document(info)
    for conflict in info["conflicts"]:
        console.warning(conflict)
    for plugin in info["plugins"]:
        if plugin["status"] == "error":
            console.warning(f"plugin {plugin['name']} ({plugin['distribution']} {plugin['version']}) "
                            f"failed to load: {plugin['error']}")
    working = {plugin["distribution"] for plugin in info["plugins"] if plugin["status"] == "ok"}
    if not working:
        console.warning("no interop plugin is installed and working: interop itself converts and runs nothing")
    missing = install_guidance({plugin["distribution"] for plugin in info["plugins"]})
    if missing and not console.quiet:
        console.result("\n".join(missing))


def table_lines(info: dict, verbose: bool = False) -> list[str]:
    """The human listing of :func:`interop.list_plugins` data."""
    lines = []
    for plugin in info["plugins"]:
        head = f"{plugin['name']}  ({plugin['distribution']} {plugin['version']})  [{plugin['status']}]"
        lines.append(click.style(head, bold=True))
        if verbose and plugin.get("description"):
            lines.append(f"  {plugin['description']}")
        if plugin["error"]:
            lines.append(f"  error: {plugin['error']}")
        for fmt in plugin["formats"]:
            shadow = "" if fmt["active"] else "  (shadowed)"
            lines.append(f"  format     {fmt['name']:<12} {' '.join(fmt['extensions'] + fmt['directory_markers'])}{shadow}")
        for conv in plugin["converters"]:
            state = "available" if conv["available"] else f"unavailable: {conv['reason']}"
            opts = ", ".join(o["name"] for o in conv["options"])
            opts = f"  options: {opts}" if opts else ""
            env = f"  (runs in environment {conv['environment']})" if conv["environment"] else ""
            lines.append(f"  converter  {conv['source']} -> {conv['target']:<10} {state}{opts}{env}")
            if verbose:
                for option in conv["options"]:
                    lines.append(f"               --{option['name'].replace('_', '-')}: {option['help']} "
                                 f"(default {option['default']})")
        for rt in plugin["runtimes"]:
            state = "available" if rt["available"] else f"unavailable: {rt['reason']}"
            env = f"  (runs in environment {rt['environment']})" if rt["environment"] else ""
            lines.append(f"  runtime    {rt['name']:<20} formats: {', '.join(rt['formats'])}; {state}{env}")
            if verbose:
                lines.append(f"               engine: {rt['engine']}")
        for tr in plugin["trainers"]:
            state = "available" if tr["available"] else f"unavailable: {tr['reason']}"
            env = f"  (runs in environment {tr['environment']})" if tr["environment"] else ""
            starts = f"; --init via {', '.join(tr['init_formats'])}" if tr["init_formats"] else ""
            order = "; interop's batch order" if tr["follows_batch_order"] else ""
            lines.append(f"  trainer    {tr['framework']:<12} saves {tr['format']}{starts}{order}; {state}{env}")
    return lines


def install_guidance(installed: set[str]) -> list[str]:
    """The built-in plugins not installed here, and what to pip install (a disabled or broken one is
    listed above with its status: installing it again would not help)."""
    from interop.builtin_plugins import BUILTIN_PLUGINS

    missing = [known for known in BUILTIN_PLUGINS if known.distribution not in installed]
    if not missing:
        return []
    lines = ["", "built-in plugins not installed here:"]
    lines += [f"  {known.install:<30} {known.summary}" for known in missing]
    return lines


# ------------------------------------------------------------------ plugins new

TEMPLATE_SUFFIX = ".tmpl"
PACKAGE_PLACEHOLDER = "__package__"


def skeleton_names(name: str) -> dict[str, str]:
    """The names a plugin called ``name`` gets: distribution, import package, entry point."""
    from interop import __version__
    from interop.plugin_api import InteropError, PluginDeclarationError, _check_name

    try:
        _check_name("plugin", name)
    except PluginDeclarationError as exc:  # a bad argument here is usage (exit 2), not a plugin fault
        raise InteropError(exc.message, hint=exc.hint) from None
    package = "interop_" + name.replace("-", "_").replace(".", "_")
    version = __version__ if __version__[0].isdigit() and "+" not in __version__ else "0.1"
    return {"name": name, "package": package, "distribution": f"interop-{name}",
            "interop_version": ".".join(version.split(".")[:2])}


def write_skeleton(name: str, directory: Path) -> Path:
    """Write a working plugin called ``name`` into ``directory/interop-NAME``; returns that folder."""
    from importlib import resources

    from interop.plugin_api import InteropError

    names = skeleton_names(name)
    target = Path(directory) / names["distribution"]
    if target.exists():
        raise InteropError(f"{target} already exists", hint="choose another NAME or --dir")
    template = resources.files("interop") / "templates" / "plugin"

    def copy(folder, relative: Path) -> None:  # type: ignore[no-untyped-def]
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            part = names["package"] if entry.name == PACKAGE_PLACEHOLDER else entry.name
            if entry.is_dir():
                copy(entry, relative / part)
            elif part.endswith(TEMPLATE_SUFFIX):
                text = entry.read_text()
                for key, value in names.items():
                    text = text.replace("{{" + key + "}}", value)
                out = target / relative / part[: -len(TEMPLATE_SUFFIX)]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(text)

    copy(template, Path("."))
    return target


@command.command(name="new")
@click.argument("name")
@click.option("--dir", "directory", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder in which the plugin folder interop-NAME is created.")
def new_command(name: str, directory: Path) -> None:
    """Write a working plugin skeleton (format, converter, runtime, conformance test)."""
    if not directory.is_dir():
        from interop.plugin_api import InteropError

        raise InteropError(f"{directory} is not a directory", hint="create it first")
    target = write_skeleton(name, directory)
    click.echo(f"wrote plugin {name} in {target}")
    click.echo("next: pip install -e '" + str(target) + "[test]' && interop plugins && "
               f"pytest {target / 'tests'}")
