"""Running every model of the demo on the plot's inputs, to draw what each runtime actually computed.

The check engine gives the verdict; these outputs give the pictures (class
regions per runtime, distributions of differences), so each panel is drawn from
the numbers its own runtime produced rather than from a shared copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from interop.datasets import INPUT_NAME, OUTPUT_NAME
from interop.implementations import open_session
from interop.registry import Registry


@dataclass
class RunResult:
    """What one model computed on the demo inputs, and who computed it."""

    path: Path
    runtime: str
    engine: str
    logits: np.ndarray
    versions: dict[str, str] = field(default_factory=dict)


def run_model(path: Path, runtime: str, inputs: np.ndarray, registry: Registry, max_batch: int) -> RunResult:
    """Open ``path`` in ``runtime`` and return its logits on ``inputs``, fed ``max_batch`` rows at a time."""
    session = open_session(registry.runtimes[runtime], registry, path)
    try:
        parts = [
            np.asarray(session.run({INPUT_NAME: inputs[start:start + max_batch]})[OUTPUT_NAME])
            for start in range(0, len(inputs), max_batch)
        ]
        engine = getattr(session, "engine", "") or runtime
        versions = dict(getattr(session, "versions", {}) or {})
    finally:
        close = getattr(session, "close", None)
        if callable(close):  # a session in another environment holds a worker process
            close()
    return RunResult(Path(path), runtime, engine, np.concatenate(parts, axis=0), versions)
