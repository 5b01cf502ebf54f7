"""Plugin API 1.1: sessions that return intermediate values, and the recorded ONNX -> Core ML value map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interop.checker.models import open_model, parse_model_arg
from interop.plugin_api import IntermediatesSession, supports_intermediates
from interop.plugin_registry import get_registry

from .conftest import build_linear_onnx


def _session(path: Path):
    registry = get_registry()
    return open_model(parse_model_arg(str(path), registry), {}, registry).session


@pytest.fixture(scope="module")
def linear_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import interop

    folder = tmp_path_factory.mktemp("intermediates")
    onnx_path = build_linear_onnx(folder / "linear.onnx")
    mlpackage = folder / "linear.mlpackage"
    interop.convert(onnx_path, mlpackage)
    return onnx_path, mlpackage


def test_onnxruntime_lists_and_returns_every_node_output(linear_pair: tuple[Path, Path]) -> None:
    session = _session(linear_pair[0])
    assert isinstance(session, IntermediatesSession) and supports_intermediates(session)
    specs = session.intermediates()
    assert [(s.name, s.op_type, s.inputs) for s in specs] == [
        ("mm", "MatMul", ("x",)), ("y", "Add", ("mm",)), ("z", "Relu", ("y",))]
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    values = session.run_intermediates({"x": x}, ["mm", "z"])
    outputs = session.run({"x": x})
    assert sorted(values) == ["mm", "z"]
    np.testing.assert_array_equal(values["z"], outputs["z"])
    assert np.all(values["z"] == np.maximum(outputs["y"], 0))


def test_core_ml_session_maps_its_variables_to_the_onnx_values(linear_pair: tuple[Path, Path]) -> None:
    reference, candidate = (_session(path) for path in linear_pair)
    specs = candidate.intermediates()
    sources = {s.source: s.name for s in specs if s.source}
    # Every ONNX value that survived coremltools' passes names the MIL variable it became.
    assert {"y", "z"} <= set(sources)
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    mine = candidate.run_intermediates({"x": x}, [sources["y"], sources["z"]])
    theirs = reference.run_intermediates({"x": x}, ["y", "z"])
    for onnx_name in ("y", "z"):
        np.testing.assert_allclose(mine[sources[onnx_name]], theirs[onnx_name], rtol=1e-6, atol=1e-6)


def test_capturing_keeps_memory_reuse_safe(linear_pair: tuple[Path, Path]) -> None:
    """A captured value read last by an op that may overwrite its input keeps its own value."""
    session = _session(linear_pair[1])
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(4, 4)
    names = [s.name for s in session.intermediates()]
    every = session.run_intermediates({"x": x}, names)
    for name in names:
        alone = session.run_intermediates({"x": x}, [name])
        np.testing.assert_array_equal(alone[name], every[name])
