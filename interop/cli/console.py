"""What every command prints, and where: the options and conventions shared by all commands.

* the result (a table, ``wrote X``) goes to stdout; with ``--json`` stdout holds the JSON
  document alone and the human output moves to stderr; ``--json-file PATH`` writes the
  document to a file (atomically) instead;
* progress goes to stderr; on a terminal a step that lasts more than a second shows a
  live line with its elapsed time, replaced when the step ends;
* ``-q`` keeps only the result, warnings and errors; ``-v`` adds details and shows the
  libraries' messages, which otherwise go to ``--log-file`` (or nowhere) through
  :mod:`interop.library_messages`.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

#: A step shorter than this shows no live line.
LIVE_AFTER = 1.0
_TICK = 0.2


class _LiveLine:
    """``converting FORMAT -> onnx … 3.4 s`` redrawn in place on a terminal while a step runs."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.began = 0.0
        self.shown = False
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def start(self, text: str) -> None:
        with self.lock:
            self._erase()
            self.text, self.began = text, time.perf_counter()
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="interop-live-line", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        with self.lock:
            self._erase()
            self.text = None

    def close(self) -> None:
        self.stop()
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=1)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Erase the line while something else is printed; it comes back on the next tick."""
        with self.lock:
            self._erase()
            yield

    def _run(self) -> None:
        while not self.stopping.wait(_TICK):
            with self.lock:
                if self.text is None:
                    continue
                elapsed = time.perf_counter() - self.began
                if elapsed >= LIVE_AFTER:
                    width = _terminal_width()
                    line = f"{self.text} … {elapsed:.0f} s"[: max(width - 1, 10)]
                    sys.stderr.write("\r" + line + "\x1b[K")
                    sys.stderr.flush()
                    self.shown = True

    def _erase(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((80, 24)).columns


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Console:
    """The output of one command, following the conventions of the module docstring."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, as_json: bool = False,
                 json_file: Path | None = None):
        self.quiet, self.verbose, self.as_json, self.json_file = quiet, verbose, as_json, json_file
        self._live = _LiveLine() if not quiet and _is_terminal(sys.stderr) else None

    def result(self, text: str) -> None:
        """The command's result: stdout, or stderr when stdout carries the JSON document. Shown with -q."""
        self._print(text, err=self.as_json)

    def progress(self, text: str) -> None:
        """A line about work done (stderr); not with -q."""
        if not self.quiet:
            self._print(text, err=True)

    def detail(self, text: str) -> None:
        """A line only ``-v`` shows (stderr)."""
        if self.verbose:
            self._print(text, err=True)

    def failure(self, text: str) -> None:
        """A line about something that failed while the command goes on (stderr); shown with -q."""
        self._print(text, err=True)

    def warning(self, text: str) -> None:
        self._print(f"warning: {text}", err=True)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        """A step that may take a while: a live line with its elapsed time on a terminal."""
        if self._live is None:
            yield
            return
        self._live.start(text)
        try:
            yield
        finally:
            self._live.stop()

    def announce(self, text: str) -> None:
        """Work that starts now: a live line on a terminal (until the next one), else a progress line."""
        if self._live is not None:
            self._live.start(text.strip())
        else:
            self.progress(text)

    def start_step(self, text: str) -> None:
        """Like :meth:`step`, for work announced by a callback: shown until the next step or the end."""
        if self._live is not None:
            self._live.start(text)

    def end_steps(self) -> None:
        if self._live is not None:
            self._live.stop()

    def document(self, document: dict[str, Any], default: Callable[[Any], Any] | None = None) -> None:
        """The JSON document: on stdout with --json, into the file with --json-file (atomically).

        ``default`` is json.dumps's, for values the document holds that JSON does not know."""
        text = json.dumps(document, indent=2, default=default)
        if self.as_json:
            self._print(text, err=False)
        if self.json_file is not None:
            from interop.output_files import atomic_output

            self.json_file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.json_file, force=True) as tmp:
                tmp.write_text(text + "\n")

    @property
    def wants_document(self) -> bool:
        return self.as_json or self.json_file is not None

    def close(self) -> None:
        if self._live is not None:
            self._live.close()

    def _print(self, text: str, err: bool) -> None:
        if self._live is None:
            click.echo(text, err=err)
            return
        with self._live.paused():  # a stdout line on the same terminal would land after the live text
            click.echo(text, err=err)


def output_options(
    *, document: bool = True, reads: Callable[[dict[str, Any]], list[Path]] | None = None,
    own_log: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command shares; the command receives a :class:`Console` as ``console``.

    ``document``: the command produces a JSON document (``--json``, ``--json-file PATH``).
    ``reads`` gives the files the command reads (from its parameters), which the
    ``--log-file``/``--json-file`` may not overwrite. The libraries' messages are kept
    off the terminal while the command runs; ``own_log``: the command routes them
    itself (it receives ``log_file`` too), as the demo does into its output folder.
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def run(*args: Any, quiet: bool, verbose: bool, log_file: Path | None, as_json: bool = False,
                json_file: Path | None = None, **kwargs: Any) -> Any:
            from interop.library_messages import library_messages
            from interop.plugin_api import InteropError

            if quiet and verbose:
                raise InteropError("-q and -v contradict each other", hint="give one of them")
            inputs = [p for p in (reads(kwargs) if reads is not None else []) if Path(p).exists()]
            for path, what in ((log_file, "--log-file"), (json_file, "--json-file")):
                if path is not None:
                    _check_file_option(path, what, inputs)
            if log_file is not None and json_file is not None and _same(log_file, json_file):
                raise InteropError("--log-file and --json-file name the same file", hint="give each its own")
            console = Console(quiet=quiet, verbose=verbose, as_json=as_json, json_file=json_file)
            try:
                if own_log:
                    return function(*args, console=console, log_file=log_file, **kwargs)
                with library_messages(log_file, echo=verbose):
                    return function(*args, console=console, **kwargs)
            finally:
                console.close()

        options = [
            click.option("-q", "--quiet", is_flag=True, help="Print only the result, warnings and errors."),
            click.option("-v", "--verbose", is_flag=True,
                         help="Print details, and show the libraries' messages (framework start-up lines, warnings)."),
            click.option("--log-file", type=click.Path(path_type=Path),
                         help="Write the libraries' messages to this file (they are hidden otherwise)."),
        ]
        if document:
            options = [
                click.option("--json", "as_json", is_flag=True,
                             help="Print the result as a JSON document on stdout (the rest goes to stderr)."),
                click.option("--json-file", type=click.Path(path_type=Path),
                             help="Write the result as a JSON document to this file."),
                *options,
            ]
        for option in reversed(options):
            run = option(run)
        return run

    return decorate


def library_log_options(
    *, reads: Callable[[dict[str, Any]], list[Path]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-v`` and ``--log-file`` for a command that prints its own way (its own ``-q``/``--json``):
    the libraries' messages are kept off the terminal while it runs, shown with ``-v``."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def run(*args: Any, verbose: bool, log_file: Path | None, **kwargs: Any) -> Any:
            from interop.library_messages import library_messages

            if log_file is not None:
                inputs = [p for p in (reads(kwargs) if reads is not None else []) if Path(p).exists()]
                _check_file_option(log_file, "--log-file", inputs)
            with library_messages(log_file, echo=verbose):
                return function(*args, **kwargs)

        run = click.option("--log-file", type=click.Path(path_type=Path),
                           help="Write the libraries' messages to this file (they are hidden otherwise).")(run)
        return click.option("-v", "--verbose", is_flag=True,
                            help="Show the libraries' messages (framework start-up lines, warnings).")(run)

    return decorate


def _check_file_option(path: Path, what: str, inputs: list[Path]) -> None:
    from interop.output_files import check_report_destination, refuse_overlap

    check_report_destination(Path(path), what)
    refuse_overlap(Path(path), inputs, what)


def _same(first: Path, second: Path) -> bool:
    return Path(first).expanduser().resolve() == Path(second).expanduser().resolve()


__all__ = ["Console", "output_options", "library_log_options", "LIVE_AFTER"]
