"""Keep coremltools' import-time warnings and progress bars out of interop's terminal output.

On Linux, importing coremltools logs "Failed to load _MLModelProxy" and warns about
untested TensorFlow/PyTorch versions; converting shows tqdm bars per pass pipeline.
None of it is actionable for an interop user, and it buries the one-line results.
``INTEROP_DEBUG=1`` leaves everything visible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


def _debugging() -> bool:
    return os.environ.get("INTEROP_DEBUG", "").strip() not in {"", "0", "false", "no"}


def quiet_coremltools() -> None:
    """Raise coremltools' logger to ERROR unless the user configured it (or is debugging)."""
    logger = logging.getLogger("coremltools")
    if not _debugging() and logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Disable tqdm (read from TQDM_DISABLE at each bar's creation) for the duration."""
    if _debugging() or "TQDM_DISABLE" in os.environ:
        yield
        return
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TQDM_DISABLE", None)
