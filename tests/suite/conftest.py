"""Fixtures of the suite tests: a trained numpy-mlp model (fast, no framework) and a plugin whose converters crash or hang."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fake_plugins import fake_install

FAULTS = '''
"""Converters that fail the way real ones sometimes do: a segmentation fault, a hang."""
from interop.plugin_api import Converter, Format, Plugin

plugin = Plugin(
    name="suite-faults", api_version=1,
    formats=(Format("crashing", extensions=(".crashing",)), Format("hanging", extensions=(".hanging",))),
    converters=(Converter("onnx", "crashing", "suite_faults:crash"), Converter("onnx", "hanging", "suite_faults:hang")),
)


def crash(src, dst, options):
    import ctypes
    ctypes.string_at(0)  # reads address 0: SIGSEGV, the interpreter dies


def hang(src, dst, options):
    import time
    time.sleep(3600)
'''


@pytest.fixture(scope="session")
def npmlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference MLP trained by the numpy-mlp example plugin (a folder model, about a second)."""
    import interop

    path = tmp_path_factory.mktemp("npmlp") / "iris.npmlp"
    interop.train("numpy-mlp", path)
    return path


@pytest.fixture(scope="session")
def faults_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder to put on PYTHONPATH: it installs the suite-faults plugin."""
    return fake_install(tmp_path_factory.mktemp("faults"), "interop-suite-faults",
                        {"suite-faults": "suite_faults:plugin"}, {"suite_faults": FAULTS})


@pytest.fixture(scope="module")
def cluster(faults_site: Path):
    """Two Dask worker processes with the suite-faults plugin installed.

    Spawned workers copy this process's sys.path; the entry processes they start read PYTHONPATH.
    """
    sys.path.insert(0, str(faults_site))
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(faults_site)
    try:
        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as local:  # any free port
            yield local
    finally:
        sys.path.remove(str(faults_site))
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """The JSON results without what may differ between two identical runs: times, the executor, cache flags."""
    varying = ("seconds", "timings", "executor", "cached", "log_tail")
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in varying}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(document)


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    return _diff(comparable(first), comparable(second))


@pytest.fixture(scope="session")
def differences():  # type: ignore[no-untyped-def]
    """Where two suite JSON documents differ, leaving out what two identical runs may not share."""
    return _differences


@pytest.fixture(scope="session")
def valid_suite_document():  # type: ignore[no-untyped-def]
    """Asserts a document follows the published schema interop/schemas/suite.schema.json."""
    import json

    import jsonschema

    import interop

    schema = json.loads((Path(interop.__file__).parent / "schemas" / "suite.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def check(document: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
        return document

    return check
