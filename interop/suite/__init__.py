"""``interop suite``: a manifest of models and targets, converted and checked in parallel, for CI.

:mod:`~interop.suite.manifest` reads and validates the manifest (errors point at the
line), :mod:`~interop.suite.runner` plans the entries and runs them, each in a worker
process (:mod:`~interop.suite.process`, :mod:`~interop.suite.worker`) locally or on a
Dask cluster (:mod:`~interop.suite.distributed`), :mod:`~interop.suite.cache` keeps
results by content hash, and :mod:`~interop.suite.results` writes the table, JSON and
JUnit. :func:`run_suite` is the Python API.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_suite"]


def run_suite(manifest: Any, **options: Any) -> Any:
    """Run a manifest (path or loaded); ``options`` are :class:`~interop.suite.runner.SuiteOptions` fields."""
    from interop.suite.runner import run_suite as run

    return run(manifest, **options)
