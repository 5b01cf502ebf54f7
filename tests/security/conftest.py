"""Fixtures of the security tests; makes their helper module (security_helpers.py) importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from security_helpers import WatchedPath  # noqa: E402


@pytest.fixture
def watched(tmp_path):
    made: list[WatchedPath] = []

    def make(name: str = "secret") -> WatchedPath:
        outside = tmp_path / "outside"
        outside.mkdir(exist_ok=True)
        made.append(WatchedPath(outside / name))
        return made[-1]

    yield make
    for w in made:
        w.stop()
