"""The live step line: on a terminal a step that lasts more than a second shows its elapsed time on stderr.

A stranger's plugin whose converter and runtime block until the test releases them
(a FIFO, so the test decides when the step ends, not a clock) runs under a real
pseudo-terminal: the line must appear while the step runs, be erased when it ends,
and never reach stdout. Off the terminal and with -q there is no line at all.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fake_plugins import IMPL_HELPERS, one_format_plugin

SLOW_IMPL = IMPL_HELPERS + '''
import os

def _wait_for_the_test():
    # Reading the FIFO blocks until the test writes its byte.
    with open(os.environ["SLOW_RELEASE"], "rb", buffering=0) as fifo:
        fifo.read(1)

_loaded = []

def load(path):
    if not _loaded:  # the first load is the slow one
        _wait_for_the_test()
    _loaded.append(path)
    return Session("slow (numpy)")

def convert(src, dst, options):
    _wait_for_the_test()
    write_identity_onnx(dst)
'''
#: The test gives up (and fails) when the line has not appeared by then; it never passes by waiting.
GIVE_UP_SECONDS = 120


@pytest.fixture
def site(tmp_path: Path, fake_install: Any) -> Path:
    return fake_install(tmp_path / "site", "interop-slow", {"slow": "slow:plugin"},
                        {"slow": one_format_plugin("slow"), "slow_impl": SLOW_IMPL})


def _read_until(fd: int, pattern: re.Pattern[bytes], seen: bytearray) -> bool:
    """Read the terminal into ``seen`` until ``pattern`` matches it; False when the child closed it first."""
    while not pattern.search(bytes(seen)):
        ready, _, _ = select.select([fd], [], [], GIVE_UP_SECONDS)
        if not ready:
            return False
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            return False
        if not chunk:
            return False
        seen.extend(chunk)
    return True


@pytest.mark.parametrize("command, line", [
    (["convert", "m.slow", "-o", "m.onnx"], rb"converting slow -> onnx with plugin slow \xe2\x80\xa6 \d+ s"),
    (["check", "m.slow", "m.slow"], rb"loading the models \xe2\x80\xa6 \d+ s"),
])
def test_a_long_step_shows_a_live_line_with_its_elapsed_time_on_a_terminal(
    tmp_path: Path, site: Path, command: list[str], line: bytes,
) -> None:
    (tmp_path / "m.slow").write_text("slow model\n")
    release = tmp_path / "release"
    os.mkfifo(release)
    release_fd = os.open(release, os.O_RDWR)  # never blocks (Linux); the child's read waits for our byte
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEROP_")}
    env.update(PYTHONPATH=str(site), SLOW_RELEASE=str(release), COLUMNS="200")
    child = subprocess.Popen([sys.executable, "-m", "interop", *command], cwd=tmp_path, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    seen = bytearray()
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    try:
        appeared = _read_until(controller, re.compile(line), seen)
        os.write(release_fd, b"g")  # let the step end (also when the line never came)
        _read_until(controller, re.compile(rb"(?!)"), seen)  # everything until the child closes it
        assert child.wait(timeout=GIVE_UP_SECONDS) == 0, seen.decode(errors="replace")
    finally:
        if child.poll() is None:
            child.kill()
        reader.join()
        os.close(controller)
        os.close(release_fd)
    text = bytes(seen)
    assert appeared, text.decode(errors="replace")
    after = text[re.search(line, text).end():]  # type: ignore[union-attr]
    assert b"\r\x1b[K" in after  # the line is erased when the step ends
    assert b"\xe2\x80\xa6" not in out[0] and out[0].strip()  # stdout holds the result only
    assert (b"wrote " if command[0] == "convert" else b"PASSED") in out[0]


@pytest.mark.parametrize("quiet, on_terminal", [(True, True), (False, False)])
def test_no_live_line_with_q_or_off_a_terminal(monkeypatch: pytest.MonkeyPatch, quiet: bool,
                                               on_terminal: bool) -> None:
    from interop.cli.console import Console

    controller, terminal = pty.openpty()
    stream = os.fdopen(terminal, "w") if on_terminal else open(os.devnull, "w")
    try:
        monkeypatch.setattr(sys, "stderr", stream)
        console = Console(quiet=quiet)
        with console.step("a long step"):
            console.announce("another step")
            names = [thread.name for thread in threading.enumerate()]
        console.close()
    finally:
        stream.close()
        if not on_terminal:
            os.close(terminal)
        os.close(controller)
    assert "interop-live-line" not in names


def test_the_live_line_is_on_by_default_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative test above can fail: the same step on a terminal starts the line's thread."""
    from interop.cli.console import Console

    controller, terminal = pty.openpty()
    stream = os.fdopen(terminal, "w")
    try:
        monkeypatch.setattr(sys, "stderr", stream)
        console = Console()
        with console.step("a long step"):
            names = [thread.name for thread in threading.enumerate()]
        console.close()
    finally:
        stream.close()
        os.close(controller)
    assert "interop-live-line" in names


def test_a_result_line_erases_the_live_line_first_when_both_share_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo prints its stage lines on stdout while the stage's live line is on stderr."""
    from interop.cli.console import Console

    controller, terminal = pty.openpty()
    stream = os.fdopen(terminal, "w")
    seen = bytearray()
    try:
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.setattr(sys, "stdout", stream)
        console = Console()
        console.start_step("[1/4] training")
        appeared = _read_until(controller, re.compile(rb"\[1/4\] training \xe2\x80\xa6 \d+ s"), seen)
        console.result("RESULT LINE")
        stream.flush()
        _read_until(controller, re.compile(rb"RESULT LINE"), seen)
        console.end_steps()
        console.close()
    finally:
        stream.close()
        os.close(controller)
    assert appeared, seen.decode(errors="replace")
    text = bytes(seen)
    live_end = re.search(rb"training \xe2\x80\xa6 \d+ s", text).end()  # type: ignore[union-attr]
    # Erased on its own line, then the result: never "training … 1 sRESULT LINE".
    assert b"\r\x1b[K" in text[live_end:text.index(b"RESULT LINE")], text


def test_the_demo_tells_the_live_line_when_each_stage_starts_and_ends() -> None:
    from interop.demo.progress import Progress

    calls: list[str] = []

    class Recorder:
        def start_step(self, text: str) -> None:
            calls.append(f"start {text}")

        def end_steps(self) -> None:
            calls.append("end")

    lines: list[str] = []
    progress = Progress(2, lines.append, Recorder())
    with progress.stage("training"):
        calls.append("work")
    with pytest.raises(RuntimeError), progress.stage("checking"):
        raise RuntimeError("a stage that fails still ends its live line")
    assert calls == ["start [1/2] training", "work", "end", "start [2/2] checking", "end"]
    assert lines[0] == "[1/2] training" and lines[1].startswith("      done in ")
