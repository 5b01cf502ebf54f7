"""Ctrl-C and SIGTERM while a plugin's code runs under a C frame end the command at once and cleanly.

Frameworks call Python from C++ (dispatch callbacks, custom kernels). An exception raised
there by a signal handler either aborts the process (SIGABRT, the temporary folder left
behind) or is swallowed by the C code, which then runs on. This stranger's plugin does its
work inside a C library's callback (libc's ``qsort`` with a Python comparison that takes
0.05 s, some 20,000 times: minutes of work); the signal lands inside that callback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_plugins import IMPL_HELPERS, one_format_plugin

SLOW_IMPL = IMPL_HELPERS + '''
import ctypes, os, time

def _work_inside_c():
    marker = os.environ["SLOW_MARKER"]
    compare_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))

    def compare(a, b):
        if not os.path.exists(marker):
            open(marker, "w").close()
        time.sleep(0.05)
        return a[0] - b[0]

    values = (ctypes.c_int * 2000)(*range(2000, 0, -1))
    ctypes.CDLL(None).qsort(values, len(values), ctypes.sizeof(ctypes.c_int), compare_type(compare))

def convert(src, dst, options):
    _work_inside_c()
    write_identity_onnx(dst)

class SlowSession(Session):
    def run(self, feeds):
        _work_inside_c()
        return super().run(feeds)

def load(path):
    return SlowSession("slow (numpy)")
'''


def _default_signals() -> None:  # as typed at a terminal (a background job inherits SIGINT ignored)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def site(tmp_path: Path, fake_install: Any) -> Path:
    return fake_install(tmp_path / "site", "interop-slow", {"slow": "slow:plugin"},
                        {"slow": one_format_plugin("slow"), "slow_impl": SLOW_IMPL})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("command", ["convert", "check"])
def test_a_signal_inside_a_callback_from_c_ends_the_command_with_its_code_and_no_leftovers(
    tmp_path: Path, site: Path, command: str, signum: int,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "m.slow").write_text("slow model\n")
    marker = tmp_path / "in-the-callback"
    if command == "convert":
        args = ["convert", "m.slow", "-o", "m.onnx"]
    else:
        args = ["check", "m.slow", "--save-golden", "golden.npz", "--samples", "4"]
    env = {k: v for k, v in os.environ.items() if k != "INTEROP_DEBUG"}
    env.update(PYTHONPATH=str(site), SLOW_MARKER=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "interop", *args], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_signals)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the plugin's callback never ran"
            time.sleep(0.02)
        proc.send_signal(signum)
        # The sort would go on for minutes if the signal were swallowed by the C code.
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = 143 if signum == signal.SIGTERM else 130
    assert proc.returncode == expected, stderr
    assert stderr.strip().splitlines()[-1] == ("error: terminated" if expected == 143 else "error: interrupted")
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert sorted(p.name for p in work.iterdir()) == ["m.slow"]
