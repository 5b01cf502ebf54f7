"""Assertions on a finished CLI run, shared by the test modules (tests/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import subprocess


def assert_refused(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, one 'error:' line naming every needle, no traceback; returns that line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
