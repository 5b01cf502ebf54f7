"""`interop demo [-o DIR]`: the tutorial end to end (train, convert, check, plot, report) in one command."""

from __future__ import annotations

import os
from pathlib import Path

import click

from interop.cli.console import Console, output_options

#: File in the output folder that receives the libraries' stderr chatter.
LIBRARY_LOG = "libraries.log"


@click.command(name="demo")
@click.option("-o", "--output", "folder", default="interop-demo", show_default=True,
              type=click.Path(path_type=Path, file_okay=False), help="Folder for the models, plots and reports.")
@click.option("--force", is_flag=True, help="Replace the models of an earlier demo in the folder.")
@output_options(document=False, own_log=True)
def command(folder: Path, force: bool, console: Console, log_file: Path | None) -> int:
    """Train the Iris MLP in every available framework, convert each model, check every copy
    against its source, and write figures and reports.

    \b
    Each trained model is converted to ONNX and on to the other formats of the demo's
    line-up; the folder receives
    decision_boundaries.png, errors.png, report.md, check.json and junit.xml.
    The libraries' messages go to libraries.log in the folder (or --log-file).

    Exit code 0 when every copy is equivalent to its source, 1 when one differs.
    """
    # The network is tiny: one thread per process beats several fighting over two cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from interop.cli.common import registry_with_warnings
    from interop.demo import run_demo

    echo = (lambda text: None) if console.quiet else console.result
    result = run_demo(folder, force=force, echo=echo, registry=registry_with_warnings(),
                      library_log=log_file.absolute() if log_file else LIBRARY_LOG,
                      show_library_messages=console.verbose, live=console)
    from interop.demo.markdown import verdict

    console.result(f"verdict: {verdict(result)}; report in {folder / 'report.md'}")
    console.result(f"total: {result.total_seconds:.1f} s")
    return 0 if result.passed else 1
