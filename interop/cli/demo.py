"""`interop demo [-o DIR]`: the tutorial end to end (train, convert, check, plot, report) in one command."""

from __future__ import annotations

import os
from pathlib import Path

import click

#: File in the output folder that receives the libraries' stderr chatter.
LIBRARY_LOG = "libraries.log"


@click.command(name="demo")
@click.option("-o", "--output", "folder", default="interop-demo", show_default=True,
              type=click.Path(path_type=Path, file_okay=False), help="Folder for the models, plots and reports.")
@click.option("--force", is_flag=True, help="Replace the models of an earlier demo in the folder.")
def command(folder: Path, force: bool) -> int:
    """Train the Iris MLP in every available framework, convert each model to ONNX and Core ML,
    check every copy against its source, and write decision_boundaries.png, errors.png,
    report.md, check.json and junit.xml.

    Exit code 0 when every copy is equivalent to its source, 1 when one differs.
    """
    # TensorFlow's start-up chatter would drown the progress lines; users can still override it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The network is tiny: one thread per process beats several fighting over two cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from interop.cli.common import registry_with_warnings
    from interop.demo import run_demo

    result = run_demo(folder, force=force, echo=click.echo, registry=registry_with_warnings(),
                      library_log=LIBRARY_LOG)
    from interop.demo.report import verdict

    click.echo(f"verdict: {verdict(result)}; report in {folder / 'report.md'}")
    click.echo(f"total: {result.total_seconds:.1f} s")
    return 0 if result.passed else 1
