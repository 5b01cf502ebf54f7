"""As a new user would: build the tutorial plugin from docs/plugins.md alone, pip install it, use it.

The plugin's files are the code blocks of the tutorial that start with ``# file:``;
the commands are the ones the tutorial lists. Nothing here is copied from the docs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from typing import Any

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"```(?:python|toml)\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.S)


def write_tutorial_plugin(folder: Path) -> list[str]:
    written = []
    for match in BLOCK.finditer(DOCS.read_text()):
        target = folder / match["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# file: {match['path']}\n{match['body']}")
        written.append(match["path"])
    return written


def interop(env: Any, *args: str, cwd: Path) -> Any:
    return env.run("-m", "interop", *args, cwd=cwd)


def test_tutorial_plugin_installs_lists_converts_and_checks(
    tmp_path: Path, throwaway_env: Any
) -> None:
    plugin_dir = tmp_path / "interop-tiny"
    files = write_tutorial_plugin(plugin_dir)
    assert {"pyproject.toml", "src/interop_tiny/__init__.py", "make_sample.py",
            "tests/test_conformance.py"} <= set(files)

    throwaway_env.pip_install(str(plugin_dir))

    listed = interop(throwaway_env, "plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    tiny = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "tiny")
    assert tiny["status"] == "ok" and tiny["distribution"] == "interop-tiny"
    assert tiny["converters"][0]["available"] is True

    made = throwaway_env.run("make_sample.py", cwd=plugin_dir)
    assert made.returncode == 0, made.stderr
    converted = interop(throwaway_env, "convert", "sample.tiny", "-o", "sample.onnx", cwd=plugin_dir)
    assert converted.returncode == 0, converted.stderr
    assert (plugin_dir / "sample.onnx").stat().st_size > 0

    checked = interop(throwaway_env, "check", "sample.tiny", "sample.onnx", "--dataset", "iris",
                      cwd=plugin_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "tiny (NumPy)" in checked.stdout and "0 failure(s)" in checked.stdout

    tested = throwaway_env.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
                               cwd=plugin_dir)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout


def test_the_tutorial_plugin_is_not_installed_in_the_project_environment() -> None:
    """The throwaway environment must not leak into the project's (it is layered on top)."""
    import importlib.metadata as md

    assert "tiny" not in {ep.name for ep in md.entry_points(group="interop.plugins")}
