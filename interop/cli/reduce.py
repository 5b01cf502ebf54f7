"""`interop reduce MODEL.onnx --to FORMAT -o SMALL.onnx`: the smallest part of a model whose conversion still fails."""

from __future__ import annotations

from pathlib import Path

import click

from interop.cli.console import Console, output_options


def inputs_path(output: Path) -> Path:
    """Where the reduced model's inputs go: ``small.onnx`` -> ``small.inputs.npz``."""
    return output.with_name(output.stem + ".inputs.npz")


@click.command(name="reduce")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--to", "target", required=True, metavar="FORMAT", help="The format the conversion fails to.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Where to write the smallest failing ONNX model (its inputs go to NAME.inputs.npz beside it).")
@click.option("--inputs", "inputs_file", type=click.Path(path_type=Path),
              help="An .npz of inputs named like the model's inputs (fed in one batch).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of random inputs.")
@click.option("--samples", type=int, help="Samples of random inputs, in one batch [default: 8].")
@click.option("--range", "value_ranges", multiple=True, metavar="[NAME=]LOW,HIGH",
              help="Range of random input values, as interop check (repeatable).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,...",
              help="Shape of an input's random values, as interop check (repeatable).")
@click.option("--atol", type=float, help="Absolute tolerance of the check.")
@click.option("--rtol", type=float, help="Relative tolerance of the check.")
@click.option("--check-error-stat", "error_stats", multiple=True, metavar="[NAME=]STAT",
              help="Error statistic of the check, as interop check.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@output_options(reads=lambda params: [params["model"]])
def command(
    model: Path, target: str, output: Path, inputs_file: Path | None, seed: int, samples: int | None,
    value_ranges: tuple[str, ...], input_shapes: tuple[str, ...], atol: float | None, rtol: float | None,
    error_stats: tuple[str, ...], force: bool, console: Console,
) -> int:
    """Cut MODEL.onnx to the smallest part whose conversion to --to still fails the check (or crashes).

    \b
    Bisection over the topological order, then dropping branches; a cut is kept only
    while the converted part still fails `interop check` against the ONNX part (or its
    conversion crashes with the same exit code). Writes the part and the values its
    inputs take (NAME.inputs.npz), the files a bug report needs.
    Exit codes as interop check: 0 the conversion passes (nothing written), 1 a mismatch
    was reduced, 2 bad usage or input, 3/4 a crashing conversion was reduced (its code).
    """
    import onnx

    from interop.checker.reduce import reduce_model, target_extension
    from interop.plugin_registry import get_registry
    from interop.checker.inputs import check_samples
    from interop.output_files import atomic_output, check_destination, refuse_overlap

    check_samples(samples)
    npz = inputs_path(output)
    for path in (output, npz):
        check_destination(path, force)
        refuse_overlap(path, [model, *([inputs_file] if inputs_file else [])], "-o")

    check_options = {"atol": atol, "rtol": rtol, "error_stats": list(error_stats)}
    result = reduce_model(model, target, inputs=inputs_file, seed=seed, samples=samples,
                          value_range=list(value_ranges) or None, input_shapes=list(input_shapes),
                          check_options=check_options, progress=console.announce)
    console.end_steps()
    summary = result.to_dict()
    if result.outcome.kind == "passes":
        line = f"{model} converted to {target} passes the check: nothing to reduce"
    elif result.model is None:
        line = f"cannot reduce {model}: {result.outcome.message}"
    else:
        with atomic_output(output, force=force) as tmp:
            onnx.save(result.model, str(tmp))
        with atomic_output(npz, force=force) as tmp:
            with open(tmp, "wb") as handle:
                import numpy as np

                np.savez(handle, **result.inputs)
        summary.update(output=str(output), inputs_file=str(npz))
        converted = output.with_suffix(target_extension(target, get_registry()))
        line = (f"reduced {model} from {result.original_nodes} to {len(result.kept)} node(s) "
                f"({', '.join(result.kept)}) that still {'crash' if result.outcome.kind == 'crash' else 'fail'}: "
                f"{result.outcome.message}\nwrote {output} and {npz}; replay: interop convert {output} "
                f"-o {converted} && interop check {output} {converted} --inputs {npz}")
    console.result(line)
    if console.wants_document:
        console.document(summary)
    return result.exit_code
