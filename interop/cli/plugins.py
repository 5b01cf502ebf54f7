"""`interop plugins`: list installed plugins and what they provide; `plugins new` scaffolds one."""

from __future__ import annotations

import json

import click


@click.group(name="plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of a table.")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins: formats, converters, runtimes (available or why not)."""
    if ctx.invoked_subcommand is not None:
        return
    from interop.plugins_info import list_plugins

    info = list_plugins()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for plugin in info["plugins"]:
        status = plugin["status"]
        head = f"{plugin['name']}  ({plugin['distribution']} {plugin['version']})  [{status}]"
        click.echo(click.style(head, bold=True))
        if plugin["error"]:
            click.echo(f"  error: {plugin['error']}")
        for fmt in plugin["formats"]:
            shadow = "" if fmt["active"] else "  (shadowed)"
            click.echo(f"  format     {fmt['name']:<12} {' '.join(fmt['extensions'] + fmt['directory_markers'])}{shadow}")
        for conv in plugin["converters"]:
            state = "available" if conv["available"] else f"unavailable: {conv['reason']}"
            opts = ", ".join(o["name"] for o in conv["options"])
            opts = f"  options: {opts}" if opts else ""
            click.echo(f"  converter  {conv['source']} -> {conv['target']:<10} {state}{opts}")
        for rt in plugin["runtimes"]:
            state = "available" if rt["available"] else f"unavailable: {rt['reason']}"
            click.echo(f"  runtime    {rt['name']:<20} formats: {', '.join(rt['formats'])}; {state}")
        for tr in plugin["trainers"]:
            state = "available" if tr["available"] else f"unavailable: {tr['reason']}"
            click.echo(f"  trainer    {tr['framework']:<12} saves {tr['format']}; {state}")
    for conflict in info["conflicts"]:
        click.echo(f"warning: {conflict}", err=True)
    broken = [p for p in info["plugins"] if p["status"] == "error"]
    for plugin in broken:
        click.echo(
            f"warning: plugin {plugin['name']} ({plugin['distribution']} {plugin['version']}) "
            f"failed to load: {plugin['error']}",
            err=True,
        )
