"""`interop convert SRC -o DST`: convert a model, routing through ONNX when needed."""

from __future__ import annotations

from pathlib import Path

import click

from interop.cli.common import parse_key_values, registry_with_warnings


@click.command(name="convert")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--output", "dst", required=True, type=click.Path(path_type=Path),
              help="Where to write the converted model.")
@click.option("--to", "to", help="Target format (default: from the output's extension).")
@click.option("--from", "from_format", help="Source format (default: detected from SRC).")
@click.option("--opset", type=int, help="ONNX opset for converters that write ONNX.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]),
              help="Compute precision for converters that support it (Core ML).")
@click.option("--minimum-deployment-target", help="Core ML deployment target, e.g. iOS15.")
@click.option("--max-dynamic-dim", type=int,
              help="Upper bound given to dynamic dimensions (Core ML).")
@click.option("-O", "--option", "extra", multiple=True, metavar="NAME=VALUE",
              help="A converter option (repeatable); `interop plugins` lists them.")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
@click.option("--check", "check_hops", is_flag=True,
              help="Check every hop's outputs against the source; exit 1 if one diverges.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    src: Path, dst: Path, to: str | None, from_format: str | None, opset: int | None,
    precision: str | None, minimum_deployment_target: str | None, max_dynamic_dim: int | None,
    extra: tuple[str, ...], force: bool, check_hops: bool, as_json: bool,
) -> int:
    """Convert SRC into DST (formats detected; multi-hop routes planned from plugins)."""
    import json

    from interop.conversion import convert

    registry = registry_with_warnings()
    options: dict[str, object] = {
        "opset": opset,
        "precision": precision,
        "minimum_deployment_target": minimum_deployment_target,
        "max_dynamic_dim": max_dynamic_dim,
    }
    options.update(parse_key_values(extra, "option"))

    def on_hop(hop) -> None:  # type: ignore[no-untyped-def]
        if not as_json:
            click.echo(f"  {hop.source} -> {hop.target} with plugin {hop.plugin} ({hop.seconds:.1f} s)", err=True)

    if check_hops:
        from interop.checker.convert_check import convert_and_check

        return convert_and_check(
            src, dst, to=to, from_format=from_format, force=force, options=options,
            registry=registry, on_hop=on_hop, as_json=as_json,
        )
    result = convert(src, dst, to, from_format=from_format, force=force, options=options,
                     registry=registry, on_hop=on_hop)
    if as_json:
        click.echo(json.dumps({
            "source": str(result.source), "destination": str(result.destination),
            "route": result.route,
            "hops": [{"source": h.source, "target": h.target, "plugin": h.plugin,
                      "seconds": round(h.seconds, 3)} for h in result.hops],
        }, indent=2))
    else:
        click.echo(f"wrote {result.destination} ({' -> '.join(result.route)})")
    return 0
