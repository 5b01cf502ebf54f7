"""Fixtures of the `interop check` tests: hand-built ONNX files, the in-process CLI, aliases of the trained models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


# The trained models and their ONNX copies come from tests/conftest.py (trained once per session):
# keras_model, torch_model, keras_onnx, torch_onnx. These names read better in the check tests.
@pytest.fixture(scope="session")
def torch_mlp(torch_model: Path) -> Path:
    return torch_model


@pytest.fixture(scope="session")
def keras_mlp(keras_model: Path) -> Path:
    return keras_model


@pytest.fixture(scope="session")
def models_dir(model_dir: Path) -> Path:
    return model_dir


def build_linear_onnx(
    path: Path, *, weight_delta: float = 0.0, swap_outputs: bool = False, nan_bias: bool = False,
    fp16: bool = False, input_name: str = "x", output_names: tuple[str, ...] = ("y", "z"),
) -> Path:
    """y = x @ W + b and z = relu(y) for x of shape (N, 4); W and b fixed by a seed.

    ``weight_delta`` is added to W[0, 0]; ``swap_outputs`` lists z before y;
    ``nan_bias`` puts a NaN in b[1]; ``fp16`` computes in float16 (x is cast in);
    ``output_names`` selects which of y and z the graph returns.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    dtype = np.float16 if fp16 else np.float32
    weight = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    weight[0, 0] += weight_delta
    bias = rng.uniform(-1, 1, 3).astype(np.float32)
    if nan_bias:
        bias[1] = np.nan
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    nodes = []
    source = input_name
    if fp16:
        nodes.append(helper.make_node("Cast", [input_name], ["x16"], to=TensorProto.FLOAT16))
        source = "x16"
    nodes += [
        helper.make_node("MatMul", [source, "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["y"]),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    outputs = [helper.make_tensor_value_info(n, elem, ["N", 3]) for n in output_names]
    if swap_outputs:
        outputs.reverse()
    graph = helper.make_graph(
        nodes, "linear",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 4])],
        outputs,
        initializer=[numpy_helper.from_array(weight.astype(dtype), "W"),
                     numpy_helper.from_array(bias.astype(dtype), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture
def linear_onnx(tmp_path: Path) -> Callable[..., Path]:
    """Build a hand-made linear ONNX model in the test's folder: ``linear_onnx("name.onnx", **variant)``."""
    def build(name: str, **variant: object) -> Path:
        return build_linear_onnx(tmp_path / name, **variant)  # type: ignore[arg-type]

    return build


@pytest.fixture
def run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``interop ARGS...`` in-process from the test's folder; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)  # failure files and pyproject lookup stay inside the test's folder

    def run(*args: object) -> tuple[int, str, str]:
        from interop.cli.main import main

        with pytest.raises(SystemExit) as exit_info:
            main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return int(exit_info.value.code or 0), captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def valid_check_document():  # type: ignore[no-untyped-def]
    """Asserts a document follows the published schema interop/schemas/check.schema.json; returns it."""
    import jsonschema

    from interop.checker.report import schema

    published = schema()
    jsonschema.Draft202012Validator.check_schema(published)
    validator = jsonschema.Draft202012Validator(published)

    def check(document: dict) -> dict:  # type: ignore[type-arg]
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
        return document

    return check
