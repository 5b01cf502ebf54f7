"""The libraries' console chatter goes to a log, interop's own messages stay on the terminal.

Frameworks announce themselves on import (absl, cuInit, oneDNN, cudart lines written by
C++ straight to file descriptor 2), converters log and warn as they load, others
draw progress bars. None of it is actionable for an interop user and it buries the
results, so while :func:`library_messages` is active:

* file descriptor 2 is a pipe; a thread copies what arrives to the log file (when one is
  given), to the terminal (when ``echo`` is set: ``-v``), and keeps the last lines in
  memory (:func:`hidden_lines`), so an error can say that something was hidden;
* ``sys.stderr`` becomes a stream that sends what interop's own code writes (progress,
  warnings, errors) to the terminal (a duplicate of the original descriptor 2, or the
  original stream when that was not descriptor 2) and what anybody else writes to the log:
  libraries that print there, and logging handlers they create meanwhile (some make their
  own, bound to whatever ``sys.stderr`` is when they are imported). After the context the
  stream writes to the original ``sys.stderr``, so such a handler never holds a closed file;
* Python warnings raised outside interop and records of Python's ``logging`` go to the
  log like the rest (a warning raised by interop's own code still reaches the terminal).

Contexts nest (an inner one changes nothing). ``INTEROP_DEBUG=1`` leaves everything on
the terminal. The command line sets it up around every command (``--log-file``, ``-v``);
the Python API functions (``interop.convert``, ``interop.train``, ``interop.check``)
around their work, with ``INTEROP_LOG_FILE`` and ``INTEROP_VERBOSE=1`` as the settings.
"""

from __future__ import annotations

import collections
import functools
import io
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Lines of hidden chatter kept in memory (the most recent ones).
KEPT_LINES = 200

_active = threading.local()
_state: dict[str, Any] = {"depth": 0, "hidden": collections.deque(maxlen=KEPT_LINES), "count": 0}
_lock = threading.Lock()


def _debugging() -> bool:
    return os.environ.get("INTEROP_DEBUG", "").strip() not in {"", "0", "false", "no"}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def hidden_lines() -> list[str]:
    """The most recent lines of chatter kept from the terminal (in this process, so far)."""
    with _lock:
        return list(_state["hidden"])


def hidden_count() -> int:
    """How many lines of chatter were kept from the terminal in this process."""
    return int(_state["count"])


class _Copier(threading.Thread):
    """Reads the pipe behind file descriptor 2 and hands every line to the sinks."""

    def __init__(self, read_fd: int, log: io.BufferedWriter | None, terminal_fd: int | None):
        super().__init__(name="interop-library-messages", daemon=True)
        self.read_fd, self.log, self.terminal_fd = read_fd, log, terminal_fd

    def run(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if self.log is not None:
                self.log.write(chunk)
                self.log.flush()
            if self.terminal_fd is not None:
                try:
                    os.write(self.terminal_fd, chunk)
                except OSError:  # the context ended while a child process still wrote
                    self.terminal_fd = None
            pending += chunk
            *lines, pending = pending.split(b"\n")
            self._keep(lines)
        if pending:
            self._keep([pending])

    @staticmethod
    def _keep(lines: list[bytes]) -> None:
        with _lock:
            for line in lines:
                text = line.decode("utf-8", "replace").rstrip("\r")
                if text.strip():
                    _state["hidden"].append(text)
                    _state["count"] += 1


def _interop_folders() -> tuple[str, ...]:
    """Folders of interop's own code: the core package and the plugin packages loaded (``interop_*``)."""
    folders = []
    for name, module in list(sys.modules.items()):
        if "." in name or not (name == "interop" or name.startswith("interop_")):
            continue
        location = getattr(module, "__file__", None)
        if location:
            folders.append(os.path.dirname(os.path.realpath(location)) + os.sep)
    return tuple(folders)


def _is_interop_code(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_interop_folders())


@contextmanager
def library_messages(log_file: str | Path | None = None, echo: bool = False) -> Iterator[None]:
    """Inside, the libraries' console output goes to ``log_file`` (and the terminal when ``echo``)."""
    if _state["depth"] or _debugging() or threading.current_thread() is not threading.main_thread():
        _state["depth"] += 1
        try:
            yield
        finally:
            _state["depth"] -= 1
        return
    log = None
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "wb")  # noqa: SIM115 - closed below
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    terminal_fd = os.dup(2)
    read_fd, write_fd = os.pipe()
    copier = _Copier(read_fd, log, terminal_fd if echo else None)
    copier.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    saved_stderr = sys.stderr
    saved_showwarning, saved_last_resort = warnings.showwarning, logging.lastResort
    log_stream = io.TextIOWrapper(os.fdopen(os.dup(2), "wb", buffering=0), encoding="utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    terminal: _TerminalStderr | None = None
    if saved_stderr is not None:
        terminal = _stderr_for(saved_stderr)
        if _uses_fd2(saved_stderr):
            terminal.begin(io.TextIOWrapper(os.fdopen(os.dup(terminal_fd), "wb", buffering=0),
                                            encoding=getattr(saved_stderr, "encoding", None) or "utf-8",
                                            errors="backslashreplace", line_buffering=True, write_through=True),
                           log_stream, owns_terminal=True)
        else:  # a notebook's or a test runner's stream: interop's messages stay on it
            terminal.begin(saved_stderr, log_stream, owns_terminal=False)
        sys.stderr = terminal
    handler = logging.StreamHandler(log_stream)
    handler.setLevel(logging.WARNING)

    def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                     line: str | None = None) -> None:
        if file is None and not _is_interop_code(filename):
            file = log_stream
        saved_showwarning(message, category, filename, lineno, file, line)

    warnings.showwarning = show_warning
    logging.lastResort = handler
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        warnings.showwarning, logging.lastResort = saved_showwarning, saved_last_resort
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        if terminal is not None:
            terminal.end()
            if sys.stderr is terminal:
                sys.stderr = saved_stderr
        log_stream.close()
        os.dup2(terminal_fd, 2)  # closes the pipe's last write end held by this process
        copier.join(timeout=5)  # a child process still holding the pipe must not hang interop
        os.close(terminal_fd)
        if not copier.is_alive():
            os.close(read_fd)
        if log is not None:
            log.close()


#: The standard library's folder (a logging handler's frames are there; ``print`` has none).
_STDLIB = os.path.dirname(os.path.dirname(os.path.realpath(logging.__file__))) + os.sep


def _written_by_interop(frame: Any) -> bool:
    """Whether the write that ``frame`` makes comes from interop's code (else: a library's chatter).

    Code that writes on somebody else's behalf is passed over: the standard library (logging,
    warnings, traceback) and click, which interop prints with. The first other frame decides.
    """
    while frame is not None:
        writer = _writer(frame.f_code.co_filename)
        if writer is not None:
            return writer
        frame = frame.f_back
    return True


@functools.lru_cache(maxsize=4096)
def _writer(filename: str) -> bool | None:
    """None for code that writes on somebody else's behalf, else whether ``filename`` is interop's.

    Cached per file: a file's code runs only once its module is imported, so the interop
    folders it could belong to are known by the time it is first asked about.
    """
    path = os.path.realpath(filename)
    installed = "site-packages" in path or "dist-packages" in path
    click = sys.modules.get("click")
    if (path.startswith(_STDLIB) and not installed) or \
            (click is not None and path.startswith(os.path.dirname(os.path.realpath(click.__file__)) + os.sep)):
        return None
    return _is_interop_code(filename)


class _TerminalStderr(io.TextIOBase):
    """``sys.stderr`` inside the context: the terminal for interop's messages, the log for the rest.

    Libraries that print to ``sys.stderr`` (a partial graph when an export fails) or keep a
    logging handler bound to it (made when they are imported mid-command) reach the log; once
    the context has ended the stream writes to the ``sys.stderr`` it replaced.
    """

    def __init__(self, after: Any):
        super().__init__()
        self._after = after
        self._terminal: Any = after
        self._log: Any = after
        self._owns_terminal = False
        self._active = False

    def begin(self, terminal: Any, log: io.TextIOWrapper, *, owns_terminal: bool) -> None:
        self._terminal, self._log, self._owns_terminal = terminal, log, owns_terminal
        self._active = True

    def _target(self) -> Any:
        if not self._active:
            return self._after
        return self._terminal if _written_by_interop(sys._getframe(2)) else self._log

    @property
    def _current(self) -> Any:
        """The stream whose properties this one has: the terminal in the context, the original after."""
        return self._terminal if self._active else self._after

    def write(self, text: str) -> int:  # type: ignore[override]
        return self._target().write(text)

    def flush(self) -> None:
        self._current.flush()

    def fileno(self) -> int:
        return self._current.fileno()

    def isatty(self) -> bool:
        return self._current.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(self._current.encoding or "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._current, "errors", None)

    def writable(self) -> bool:
        return True

    def end(self) -> None:
        """From now on write to the stream this one replaced; the terminal duplicate is closed."""
        try:
            self._terminal.flush()
        except (ValueError, OSError):
            pass
        self._active = False
        if self._owns_terminal:
            self._terminal.close()

    def close(self) -> None:  # a library closing sys.stderr must not close the real one
        pass


def _stderr_for(saved: Any) -> _TerminalStderr:
    """One stream per replaced ``sys.stderr``, kept across contexts: a handler bound to it in one
    context (a library imported by the first API call) sends its records to the log in the next."""
    stream = _state.get("stderr")
    if stream is None or stream._after is not saved:
        stream = _TerminalStderr(saved)
        _state["stderr"] = stream
    return stream


def _uses_fd2(stream: Any) -> bool:
    try:
        return stream is not None and stream.fileno() == 2
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False


@contextmanager
def api_library_messages() -> Iterator[None]:
    """:func:`library_messages` with the environment's settings, for the Python API functions."""
    log = os.environ.get("INTEROP_LOG_FILE") or None
    with library_messages(log, echo=_truthy(os.environ.get("INTEROP_VERBOSE"))):
        yield


__all__ = ["library_messages", "api_library_messages", "hidden_lines", "hidden_count", "KEPT_LINES"]
