"""`interop plugins new`: the generated skeleton installs with pip and passes its own test unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_skeleton_installs_and_passes_its_own_test(
    tmp_path: Path, throwaway_env: Any, run_cli: Any
) -> None:
    made = run_cli("plugins", "new", "acme-lab", "--dir", str(tmp_path), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    plugin_dir = tmp_path / "interop-acme-lab"
    assert (plugin_dir / "src" / "interop_acme_lab" / "__init__.py").is_file()
    assert '"interop.plugins"]\nacme-lab = "interop_acme_lab:plugin"' in (
        plugin_dir / "pyproject.toml").read_text()
    assert not list(plugin_dir.rglob("*.tmpl")) and "{{" not in "".join(
        p.read_text() for p in plugin_dir.rglob("*") if p.is_file())

    throwaway_env.pip_install("-e", str(plugin_dir))
    listed = throwaway_env.run("-m", "interop", "plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    acme = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "acme-lab")
    assert acme["status"] == "ok"
    assert [c["target"] for c in acme["converters"]] == ["onnx"]

    tested = throwaway_env.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=plugin_dir)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout


def test_new_refuses_an_existing_folder_and_a_bad_name(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "interop-acme").mkdir()
    again = run_cli("plugins", "new", "acme", "--dir", str(tmp_path), cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    bad = run_cli("plugins", "new", "Acme Lab", "--dir", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2
    assert "plugin name 'Acme Lab' is invalid" in bad.stderr
    assert not (tmp_path / "interop-Acme Lab").exists()
