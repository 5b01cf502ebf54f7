"""A core-only install (`pip install interop`, no plugin): every error names what to pip install.

The interpreter runs with the project's third-party packages but without any interop
distribution: ``python -S`` with a folder of links to every installed package except
interop's own distributions and editable finders, and the core's source on the path.
So the registry sees what a core-only install sees: no plugin at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core_only_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    site = tmp_path_factory.mktemp("core-only-site")
    plugin_sources = [REPO / "plugins", REPO / "examples"]
    for entry in [Path(item) for item in sys.path if item]:
        if not entry.is_dir() or entry == REPO or any(entry.is_relative_to(p) for p in plugin_sources):
            continue
        for child in entry.iterdir():
            name = child.name
            if (name.startswith(("interop", "__editable__", "__pycache__")) or name.endswith(".pth")
                    or (site / name).exists()):
                continue
            (site / name).symlink_to(child)
    return f"{site}{os.pathsep}{REPO}"


def _run(core_only_path: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTEROP_")}
    env["PYTHONPATH"] = core_only_path
    return subprocess.run([sys.executable, "-S", "-m", "interop", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, code, needle", [
    (["plugins"], 0, "pip install interop-coreml"),
    (["check", "a.onnx", "b.onnx"], 2, "the onnx plugin reads '.onnx' models: pip install interop-onnx"),
    (["convert", "a.onnx", "-o", "a.mlpackage"], 2,
     "the onnx plugin reads '.onnx' models and the coreml plugin writes '.mlpackage' models: "
     "pip install interop-onnx interop-coreml"),
    (["convert", "a.onnx", "-o", "a", "--to", "keras"], 2,
     "the keras plugin writes keras models: pip install interop-onnx interop-keras"),
    (["train", "--framework", "keras", "-o", "m.keras"], 2,
     "the keras plugin trains with keras: pip install interop-keras"),
])
def test_a_core_only_install_names_the_distribution_to_install(
    tmp_path: Path, core_only_path: str, args: list[str], code: int, needle: str,
) -> None:
    for name in ("a.onnx", "b.onnx"):
        (tmp_path / name).write_bytes(b"\x08\x07")
    done = _run(core_only_path, tmp_path, *args)
    text = done.stdout + done.stderr
    assert needle in text and done.returncode == code, text
    assert "--from" not in text and "Traceback" not in text


def test_the_core_only_interpreter_sees_no_plugin_but_the_core(tmp_path: Path, core_only_path: str) -> None:
    """The set-up above has teeth: the core imports from the source, and no plugin is discovered."""
    listed = _run(core_only_path, tmp_path, "plugins", "--json")
    import json

    document = json.loads(listed.stdout)
    assert document["plugins"] == []
    assert "no interop plugin is installed" in listed.stderr
