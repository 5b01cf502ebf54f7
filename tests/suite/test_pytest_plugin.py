"""The pytest plugin: a manifest collected as tests, one item per entry, with pytest-xdist."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def project(tmp_path: Path, npmlp: Path) -> Path:
    for name in ("iris", "other"):
        shutil.copytree(npmlp, tmp_path / "models" / f"{name}.npmlp")
    (tmp_path / "interop.toml").write_text(
        'to = ["onnx"]\ndataset = "iris"\n[targets.strict]\nformat = "onnx"\natol = 0.0\nrtol = 0.0\n\n'
        '[[models]]\npath = "models/*.npmlp"\n\n[[models]]\npath = "models/iris.npmlp"\nname = "exact"\n'
        'to = ["strict"]\n')
    return tmp_path


def test_entries_are_test_items_and_run_under_xdist(project: Path):
    result = _pytest(project, "interop.toml", "-n", "2", "-rA", "--junitxml", "junit.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "1 failed" in result.stdout
    assert "PASSED interop.toml::models/iris.npmlp[onnx]" in result.stdout
    assert "FAILED interop.toml::exact[strict]" in result.stdout
    assert "exact[strict]: output logits:" in result.stdout  # the failure shows the check's verdict
    names = sorted(case.get("name") for case in ET.parse(project / "junit.xml").getroot().iter("testcase"))
    assert names == ["exact[strict]", "models/iris.npmlp[onnx]", "models/other.npmlp[onnx]"]
    # The second session reuses the results the first one stored; -k selects entries by name.
    again = _pytest(project, "interop.toml", "-k", "other", "-q")
    assert again.returncode == 0 and "1 passed, 2 deselected" in again.stdout


def test_a_bad_manifest_is_a_collection_error_naming_the_line(project: Path):
    (project / "interop.toml").write_text('to = ["onnx"]\n[[models]]\npath = "models/missing.npmlp"\n')
    result = _pytest(project, "interop.toml", "-q")
    assert result.returncode == 2
    assert f"{project / 'interop.toml'}:3: model models/missing.npmlp does not exist" in result.stdout
    assert "Traceback" not in result.stdout


def test_pyproject_suite_table_is_collected(project: Path):
    (project / "interop.toml").unlink()
    (project / "pyproject.toml").write_text('[tool.interop.suite]\nto = "onnx"\n'
                                            '[[tool.interop.suite.models]]\npath = "models/other.npmlp"\n')
    result = _pytest(project, "pyproject.toml", "-q", "--interop-no-cache")
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout
