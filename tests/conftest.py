"""Shared fixtures: the reference MLP trained once per session in each framework, and its ONNX copies.

Trained models are real files made by the real frameworks through interop's own
API, so every test downstream exercises the same path a user takes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Helper modules beside the tests (cli_assertions.py) are importable from every test module.
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def keras_model(model_dir: Path) -> Path:
    import interop

    path = model_dir / "iris.keras"
    interop.train("keras", path)
    return path


@pytest.fixture(scope="session")
def torch_model(model_dir: Path) -> Path:
    import interop

    path = model_dir / "iris.pt2"
    interop.train("torch", path)
    return path


@pytest.fixture(scope="session")
def keras_onnx(keras_model: Path, model_dir: Path) -> Path:
    import interop

    path = model_dir / "iris_from_keras.onnx"
    interop.convert(keras_model, path)
    return path


@pytest.fixture(scope="session")
def torch_onnx(torch_model: Path, model_dir: Path) -> Path:
    import interop

    path = model_dir / "iris_from_torch.onnx"
    interop.convert(torch_model, path)
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the interop CLI in a fresh process, as a user would (no INTEROP_DEBUG unless given)."""
    full_env = {k: v for k, v in os.environ.items() if k != "INTEROP_DEBUG"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "interop", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="session")
def cli():
    """The CLI runner: ``cli("convert", src, "-o", dst)`` -> CompletedProcess."""
    return run_cli


@pytest.fixture(scope="session")
def sample_batches() -> list[np.ndarray]:
    """The 150 Iris samples plus random batches of 1, 7 and 64 over the petal plane."""
    from interop.datasets import load_iris

    x, _ = load_iris()
    rng = np.random.default_rng(0)
    batches = [x]
    for size in (1, 7, 64):
        batches.append(rng.uniform([0.5, 0.0], [7.5, 2.8], size=(size, 2)).astype(np.float32))
    return batches
