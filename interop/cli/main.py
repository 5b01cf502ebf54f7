"""Entry point of the ``interop`` command: a lazily loading click group.

Subcommands are named here by import path and imported only when invoked (or
when ``--help`` lists them, which imports just their light click definitions), so
``interop --help`` never pays for a framework import.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from interop.errors import acknowledge_signal, handling_signals, print_error, raise_if_interrupted

#: Each command: where it lives, and the one line `interop --help` shows for it (kept equal to
#: the command's own short help by a test), so listing the commands imports none of them.
COMMANDS = {
    "convert": ("interop.cli.convert:command",
                "Convert SRC into DST (formats detected; multi-hop routes planned from plugins)."),
    "train": ("interop.cli.train:command",
              "Train the reference MLP, or a design from any format (--init), on Iris or a CSV."),
    "plugins": ("interop.cli.plugins:command",
                "List installed plugins: formats, converters, runtimes (available or why not)."),
    "check": ("interop.cli.check:command", "Check that every CANDIDATE computes the same outputs as REFERENCE."),
    "demo": ("interop.cli.demo:command",
             "Train the Iris MLP in every available framework, convert each model, check every copy "
             "against its source, and write figures and reports."),
    "reduce": ("interop.cli.reduce:command",
               "Cut MODEL.onnx to the smallest part whose conversion to --to still fails the check (or crashes)."),
    "suite": ("interop.cli.suite:command",
              "Convert and check every model of a manifest (interop.toml or [tool.interop.suite])."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (not to list them in --help)."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, _, attr = self.lazy[name][0].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from click.utils import make_default_short_help

        names = [name for name in self.list_commands(ctx) if name in self.lazy]
        limit = formatter.width - 6 - max(map(len, names), default=0)
        with formatter.section("Commands"):
            formatter.write_dl([(name, make_default_short_help(self.lazy[name][1], limit)) for name in names])


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="interop", prog_name="interop")
def cli() -> None:
    """Move trained networks between frameworks and prove every copy computes the same function.

    \b
    Exit codes: 0 ok, 1 outputs differ (check), 2 bad usage or input,
    3 no converter/route/runtime or unsupported model, 4 plugin or internal failure,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    Set INTEROP_DEBUG=1 to see tracebacks.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line on stderr and a documented exit code."""
    # Ctrl-C and SIGTERM become an exception (so temporary outputs are removed on the way
    # out) that a library's bare `except:` cannot swallow for good: see interop.errors.
    try:
        with handling_signals():
            code = _run(argv)
    except KeyboardInterrupt as exc:  # arrived in the last instant, after the command's own handling
        code = print_error(exc)
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    """The command's exit code; every exception becomes one (SystemExit passes through)."""
    try:
        code = cli.main(args=argv, prog_name="interop", standalone_mode=False)
        raise_if_interrupted()  # a signal some library swallowed still ends the command
    except click.exceptions.Exit as exc:
        return _interrupted_code() or exc.exit_code
    except click.Abort as exc:  # click turns KeyboardInterrupt into Abort
        cause = exc.__cause__ if isinstance(exc.__cause__, KeyboardInterrupt) else KeyboardInterrupt()
        acknowledge_signal()
        return print_error(cause)
    except click.ClickException as exc:
        exc.show()
        return _interrupted_code() or exc.exit_code
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, KeyboardInterrupt):
            acknowledge_signal()
            return print_error(exc)
        # An error caused by a swallowed interrupt (a library went on without the module
        # whose import was cut short) is reported as the interrupt it really is.
        return _interrupted_code() or print_error(exc)
    return code if isinstance(code, int) else 0


def _interrupted_code() -> int | None:
    """The exit code of a signal that arrived and was swallowed, if any (and reports it)."""
    try:
        raise_if_interrupted()
    except KeyboardInterrupt as exc:
        acknowledge_signal()
        return print_error(exc)
    return None
