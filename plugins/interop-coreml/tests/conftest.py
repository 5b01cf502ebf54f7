"""Fixtures shared by the Core ML plugin's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``interop ARGS...`` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.delenv("INTEROP_DEBUG", raising=False)

    def run(*args: object) -> tuple[int, str, str]:
        from interop.cli.main import main

        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return int(exit_info.value.code or 0), captured.out, captured.err

    return run
