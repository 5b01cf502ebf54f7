"""Helpers shared by the security tests: a watched path, and the refusal assertion."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cli_assertions import assert_refused as refused  # noqa: F401 - the security tests' name for it


class WatchedPath:
    """A named pipe: a reader opening it is recorded (and fed, so that reader never blocks)."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody has it open for reading
                time.sleep(0.002)
                continue
            self.opened = True
            try:
                os.write(fd, b"secret\n")
            except OSError:
                pass
            os.close(fd)

    def stop(self) -> bool:
        """Stop watching; True when something opened the path."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.opened
