"""Exit codes of the command line, how an error becomes one line on stderr, and signals.

The codes are stable and documented in README.md:

====  =============================================================
0     success (for ``interop check``: every comparison passed)
1     ``interop check``: at least one output differs beyond tolerance
2     bad usage or bad input (missing/corrupt file, unknown format,
      existing output without --force, unwritable folder)
3     nothing here can do it: no converter route, no runtime for a
      format, an op or layer the converter does not support
4     a plugin failed (broken plugin under INTEROP_STRICT_PLUGINS,
      a converter or runtime crashed) or an internal error
130   interrupted (Ctrl-C, SIGINT)
143   terminated (SIGTERM)
====  =============================================================

Signals: the command line runs inside :func:`handling_signals`, which turns
SIGINT and SIGTERM into :class:`Interrupted` (a ``KeyboardInterrupt``) so every
``finally`` runs and temporary outputs are removed. Some libraries wrap their
optional imports in a bare ``except:`` (``try: import optional_framework``)
and would swallow that exception, so the signal is also *recorded*: until the
command line has handled it, every later import of a new module raises it again
and :func:`raise_if_interrupted` (called before an output is committed and when
a command returns) turns a swallowed signal back into the exit code. While a
native extension module initialises (``ExtensionFileLoader``), a signal is only
recorded and raised when its initialisation returns: an exception thrown into a
pybind11 module's init code (onnx's, and many frameworks') aborts the interpreter.

Inside a plugin's code (:func:`foreign_code`: a converter, a trainer, a runtime's
load and run), a signal raises nothing: the frameworks call Python from C++ (dispatch
callbacks, custom kernels, destructors), and an exception thrown through C++ frames
that cannot pass it aborts the process (SIGABRT) with the temporary folder left on
disk. There the signal ends the process at once: the clean-ups interop registered
with :func:`add_sudden_exit_cleanup` run (its temporary folders, its worker
processes), the one error line is printed, and the process exits with 130 or 143.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from interop.plugin_api import InteropError

OK = 0
MISMATCH = 1
BAD_INPUT = 2
UNSUPPORTED = 3
FAILURE = 4
INTERRUPTED = 130
TERMINATED = 143


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; a KeyboardInterrupt so that cleanup code treats both alike."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return TERMINATED if self.signum == signal.SIGTERM else INTERRUPTED


class _SignalState:
    pending: int | None = None  # the signal received and not yet handled by the command line
    deferring: int = 0  # > 0 inside deferred_signals(): record, raise at its end
    handling: bool = False  # inside handling_signals() (the command line), in the main thread
    foreign: int = 0  # > 0 inside foreign_code(): a signal ends the process at once
    cleanups: list[Callable[[], None]] = []  # what a sudden exit runs, newest first


_state = _SignalState()


class _ReRaiseOnImport:
    """A meta-path finder that re-raises a recorded signal on the next import of a new module.

    A bare ``except:`` around ``import x`` swallows the first KeyboardInterrupt; the
    library then goes on importing, and the next import raises it again, until it
    reaches code that lets it through. It finds nothing itself (returns None).
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if _state.pending is not None and not _state.deferring:
            _stop(_state.pending)
        return None


_finder = _ReRaiseOnImport()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _state.pending = signum
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    if not _state.deferring:
        _stop(signum)


def _stop(signum: int) -> None:
    """End the command for ``signum``: an exception in interop's code, a sudden exit in a plugin's."""
    if _state.foreign:
        _exit_now(signum)
    raise Interrupted(signum)


def _exit_now(signum: int) -> None:
    """Run the registered clean-ups, print the one error line, and end the process without unwinding."""
    interrupted = Interrupted(signum)
    for cleanup in reversed(_state.cleanups):
        try:
            cleanup()
        except BaseException:  # noqa: BLE001 - every clean-up gets its turn
            pass
    try:
        sys.stdout.flush()
        print_error(interrupted)
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001 - a stream the interrupted code was in the middle of using
        os.write(2, (_interruption_line(interrupted.exit_code) + "\n").encode())
    os._exit(interrupted.exit_code)


@contextmanager
def foreign_code() -> Iterator[None]:
    """Inside: a plugin's code runs; under the command line a signal ends the process at once (module doc)."""
    import threading

    main = threading.current_thread() is threading.main_thread()  # signal handlers run there only
    _state.foreign += main
    try:
        if main and _state.pending is not None and not _state.deferring:
            _exit_now(_state.pending)  # arrived on the way in and was swallowed: stop before the plugin runs
        yield
    finally:
        _state.foreign -= main


def add_sudden_exit_cleanup(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` if a signal ends the command line's process at once (see :func:`foreign_code`).

    Outside the command line nothing is recorded (no signal handler of interop's runs there).
    """
    if _state.handling:
        _state.cleanups.append(cleanup)


def remove_sudden_exit_cleanup(cleanup: Callable[[], None]) -> None:
    if cleanup in _state.cleanups:
        _state.cleanups.remove(cleanup)


def remove_folder_at_sudden_exit(folder: str | os.PathLike[str]) -> Callable[[], None]:
    """Register the removal of a temporary folder interop made; the clean-up (to remove later) returned."""
    import functools
    import shutil

    cleanup = functools.partial(shutil.rmtree, folder, ignore_errors=True)
    add_sudden_exit_cleanup(cleanup)
    return cleanup


@contextmanager
def folder_removed_at_sudden_exit(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Inside: the temporary ``folder`` is removed if a signal ends the process at once."""
    cleanup = remove_folder_at_sudden_exit(folder)
    try:
        yield
    finally:
        remove_sudden_exit_cleanup(cleanup)


def _deferring(method: Callable[..., Any]) -> Callable[..., Any]:
    def run_to_its_end(*args: Any, **kwargs: Any) -> Any:
        with deferred_signals():
            return method(*args, **kwargs)

    run_to_its_end.__wrapped__ = method  # type: ignore[attr-defined]
    return run_to_its_end


@contextmanager
def _signals_deferred_in_extension_imports() -> Iterator[None]:
    from importlib.machinery import ExtensionFileLoader

    originals = {}
    for name in ("create_module", "exec_module"):
        method = ExtensionFileLoader.__dict__[name]
        if not hasattr(method, "__wrapped__"):
            originals[name] = method
            setattr(ExtensionFileLoader, name, _deferring(method))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(ExtensionFileLoader, name, method)


@contextmanager
def handling_signals() -> Iterator[None]:
    """Inside: SIGINT and SIGTERM raise :class:`Interrupted` and are remembered (see the module doc).

    The previous handlers come back on exit (the CLI can run in-process, in a test).
    Outside the main thread, where handlers cannot be set, nothing changes.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    with _signals_deferred_in_extension_imports():
        try:
            _state.handling = True
            for signum in (signal.SIGINT, signal.SIGTERM):
                handler = signal.getsignal(signum)
                if handler is signal.SIG_IGN:
                    continue  # started with the signal ignored (nohup, a background job): keep it so
                previous[signum] = handler
                signal.signal(signum, _on_signal)
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            _state.handling = False
            acknowledge_signal()


def raise_if_interrupted() -> None:
    """A checkpoint: raise the recorded signal if a library swallowed it."""
    if _state.pending is not None:
        _stop(_state.pending)


def acknowledge_signal() -> None:
    """The command line has handled the signal: stop re-raising it."""
    _state.pending = None
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Run a short critical section (a rename pair, a cleanup) to its end; a signal raises after it."""
    _state.deferring += 1
    try:
        yield
    finally:
        _state.deferring -= 1
    if not _state.deferring:
        raise_if_interrupted()


def debug_enabled() -> bool:
    return os.environ.get("INTEROP_DEBUG", "").strip() not in {"", "0", "false", "no"}


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def exception_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for an exception a library raised.

    Libraries put text before the message that says nothing on one line: a header and
    traceback-like frames ("in user code:", 'File "...", line 81, in fn'), colour codes. When
    a line of the message repeats the exception's type (``Type: what happened``), that line
    is the message; otherwise the first non-empty line is.
    """
    name = type(exc).__name__
    text = exc.message if isinstance(exc, InteropError) else str(exc)
    lines = [line.strip() for line in _ANSI_ESCAPE.sub("", text).splitlines() if line.strip()]
    own = [line[len(name) + 2:].strip() for line in lines if line.startswith(f"{name}: ")]
    message = own[0] if own else (lines[0] if lines else "")
    return f"{name}: {message}" if message else name


def _interruption_line(code: int) -> str:
    return "error: terminated" if code == TERMINATED else "error: interrupted"


def print_error(exc: BaseException) -> int:
    """Print ``exc`` as one line (plus a hint line) and return its exit code."""
    if isinstance(exc, KeyboardInterrupt):
        code = exc.exit_code if isinstance(exc, Interrupted) else INTERRUPTED
        print(_interruption_line(code), file=sys.stderr)
        return code
    if debug_enabled():
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, InteropError):
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    print(f"error: internal error: {exception_line(exc)}", file=sys.stderr)
    if not debug_enabled():
        print("hint: set INTEROP_DEBUG=1 for the traceback", file=sys.stderr)
    return FAILURE
