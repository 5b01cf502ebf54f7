"""Entry point of the ``interop`` command: a lazily loading click group.

Subcommands are named here by import path and imported only when invoked (or
when ``--help`` lists them, which imports just their light click definitions), so
``interop --help`` never pays for a framework import.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from interop import __version__
from interop.errors import report

COMMANDS = {
    "convert": "interop.cli.convert:command",
    "train": "interop.cli.train:command",
    "plugins": "interop.cli.plugins:command",
    "check": "interop.cli.check:command",
    "demo": "interop.cli.demo:command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, _, attr = self.lazy[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="interop")
def cli() -> None:
    """Move trained networks between frameworks and prove every copy computes the same function.

    \b
    Exit codes: 0 ok, 1 outputs differ (check), 2 bad usage or input,
    3 no converter/route/runtime or unsupported model, 4 plugin or internal failure.
    Set INTEROP_DEBUG=1 to see tracebacks.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line on stderr and a documented exit code."""
    import os

    # TensorFlow may be imported indirectly (by coremltools, torch._dynamo); keep its C++
    # start-up notes off the terminal unless the user asked for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        code = cli.main(args=argv, prog_name="interop", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(report(KeyboardInterrupt()))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        if isinstance(exc, SystemExit):
            raise
        sys.exit(report(exc))
    sys.exit(code if isinstance(code, int) else 0)
