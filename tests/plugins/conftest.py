"""Helpers for installing test plugins: fake dist-info folders (fast) and a throwaway venv (real pip).

Python finds entry points through ``*.dist-info/entry_points.txt`` on ``sys.path``,
so most tests "install" a plugin by writing its module and a dist-info folder into
a temporary directory put on the ``PYTHONPATH`` of a CLI subprocess. The new-user
tests install with pip into a throwaway virtual environment that sees the project
environment's packages through a ``.pth`` file, so the project environment is
never modified.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_plugins import fake_install as _fake_install


def _run_cli(*args: str, cwd: Path, pythonpath: Path | None = None, python: str = sys.executable,
            **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m interop ARGS`` with extra environment variables."""
    child = {k: v for k, v in os.environ.items()
             if k not in ("INTEROP_STRICT_PLUGINS", "INTEROP_DISABLE_PLUGINS")}
    child.update(env)
    if pythonpath is not None:
        child["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([python, "-m", "interop", *args], cwd=cwd, env=child,
                          capture_output=True, text=True, timeout=600)


@dataclass
class ThrowawayEnv:
    """A virtual environment layered over the project's: installs land only here."""

    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    def pip_install(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", self.python, "install", "-q",
             "--no-deps", "--no-build-isolation", "--no-index", *args],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.python, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=600, env={k: v for k, v in os.environ.items()
                                                if k != "PYTHONPATH"})


@pytest.fixture
def throwaway_env(tmp_path: Path) -> ThrowawayEnv:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    site = Path(subprocess.run(
        [str(root / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    # addsitedir (not a plain path line) so the project's editable-install finders run too.
    host_site = sysconfig.get_paths()["purelib"]
    (site / "_interop_project_env.pth").write_text(f"import site; site.addsitedir({host_site!r})\n")
    return ThrowawayEnv(root)


@pytest.fixture
def fake_install():  # type: ignore[no-untyped-def]
    """The function that writes a plugin's modules and dist-info into a folder."""
    return _fake_install


@pytest.fixture
def run_cli():  # type: ignore[no-untyped-def]
    """The function that runs the CLI in a subprocess with extra environment variables."""
    return _run_cli
