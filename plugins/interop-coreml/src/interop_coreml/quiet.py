"""Keep coremltools' import-time warnings and progress bars out of interop's terminal output.

On Linux, importing coremltools logs "Failed to load _MLModelProxy" and warns about
untested TensorFlow/PyTorch versions; converting shows tqdm bars per pass pipeline.
None of it is actionable for an interop user, and it buries the one-line results.
``INTEROP_DEBUG=1`` leaves everything visible.
"""

from __future__ import annotations

import functools
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
    """Silence the tqdm bars coremltools' pass pipeline draws, for the duration only.

    tqdm reads TQDM_* variables once, when it is imported, so the bar is disabled
    where coremltools creates it instead of through the environment.
    """
    if _debugging():
        yield
        return
    from coremltools.converters.mil.mil.passes import pass_pipeline

    original = pass_pipeline.tqdm
    pass_pipeline.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        pass_pipeline.tqdm = original
