"""Sending the libraries' console chatter (TensorFlow's start-up notes, converter progress bars) to a log file.

The demo's own progress goes to stdout and stays readable; what frameworks
write straight to file descriptor 2 lands in the log, which the demo names.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def stderr_to(path: Path | None) -> Iterator[None]:
    """Redirect file descriptor 2 (C libraries and Python alike) to ``path`` while inside; None: no-op."""
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
