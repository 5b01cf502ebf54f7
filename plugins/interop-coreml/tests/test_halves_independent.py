"""The translator (onnx2mil) and the reference interpreter share no code: neither imports the other.

A wrong op mapping written once in shared code would make both halves agree on a
wrong answer; kept apart, it shows up as a mismatch. Checked twice: statically (no
module of one half names the other, directly or through the runtime glue that loads
the interpreter) and dynamically (importing every module of one half in a fresh
interpreter loads nothing of the other).
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "interop_coreml"
HALVES = {"onnx2mil": ("interpreter", "runtime", "op_coverage"), "interpreter": ("onnx2mil", "converter", "op_coverage")}


def _imported_names(path: Path, package: str) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved against ``package``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("half", sorted(HALVES))
def test_no_module_of_one_half_names_the_other(half: str) -> None:
    forbidden = tuple(f"interop_coreml.{name}" for name in HALVES[half])
    offenders = []
    for path in sorted((PACKAGE / half).rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        package = ".".join(relative.parts[:-1]) if path.name != "__init__.py" else ".".join(relative.parts[:-1])
        for name in _imported_names(path, package):
            if name == forbidden or name.startswith(forbidden):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


_PROBE = """
import importlib, json, pkgutil, sys
from interop_coreml.coremltools_import import import_coremltools
import_coremltools()  # without TensorFlow and PyTorch: seconds, not a minute
import interop_coreml.{half} as half
for info in pkgutil.walk_packages(half.__path__, half.__name__ + "."):
    importlib.import_module(info.name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith({other!r}))))
"""


@pytest.mark.slow
@pytest.mark.parametrize("half, other", [("onnx2mil", "interop_coreml.interpreter"),
                                         ("interpreter", "interop_coreml.onnx2mil")])
def test_importing_one_half_loads_nothing_of_the_other(half: str, other: str) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(half=half, other=other)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
