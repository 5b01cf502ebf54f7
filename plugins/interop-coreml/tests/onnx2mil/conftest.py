"""Shared fixtures for the ONNX → Core ML translator tests.

``roundtrip`` converts an ONNX model, saves the ``.mlpackage``, runs it in the
reference interpreter and returns outputs keyed by ONNX names, so each test
compares them with onnxruntime's. Zoo conversions are cached per session.
"""

from __future__ import annotations

import logging
import pathlib
import warnings

import numpy as np
import onnx
import pytest

logging.getLogger("coremltools").setLevel(logging.ERROR)


def pytest_configure(config):
    # The largest networks (tens of seconds each) carry this marker so a quick
    # run can deselect them with -m "not slow"; the default run includes them.
    config.addinivalue_line("markers", "slow: converts a large network (tens of seconds)")


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def save(model: onnx.ModelProto, path: pathlib.Path, **options) -> pathlib.Path:
    from interop_coreml.onnx2mil import save_mlpackage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_mlpackage(model, path, **options)
    return path


def interpret(path: pathlib.Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from interop_coreml.runtime import load_interpreter

    return load_interpreter(path).run(feeds)


def assert_close(got: dict, expected: dict, rtol: float = 1e-3, atol: float = 1e-4) -> None:
    """FP32 agreement; atol is relative to the output's largest magnitude, so deep nets
    with large activations and nets with tiny ones are judged on the same scale."""
    assert set(expected) <= set(got), f"missing outputs {set(expected) - set(got)}"
    for name, reference in expected.items():
        value = np.asarray(got[name])
        assert value.shape == reference.shape, f"{name}: shape {value.shape} != {reference.shape}"
        scale = float(np.max(np.abs(reference))) if reference.size else 1.0
        scale = scale if scale > 0 else 1.0
        np.testing.assert_allclose(value.astype(np.float64), reference.astype(np.float64), rtol=rtol,
                                   atol=atol * scale, err_msg=name)


@pytest.fixture
def roundtrip(tmp_path):
    """roundtrip(model, feeds_list, **options) -> list of (ours, onnxruntime) output dicts."""
    counter = iter(range(10_000))

    def run(model: onnx.ModelProto, feeds_list: list[dict[str, np.ndarray]], **options):
        path = save(model, tmp_path / f"model{next(counter)}.mlpackage", **options)
        return [(interpret(path, feeds), ort_run(model, feeds)) for feeds in feeds_list]

    return run


@pytest.fixture
def check_model(roundtrip):
    """check_model(model, feeds_list): convert, run, compare with onnxruntime at FP32 tolerance."""

    def check(model, feeds_list, rtol=1e-3, atol=1e-4, **options):
        for ours, reference in roundtrip(model, feeds_list, **options):
            assert_close(ours, reference, rtol=rtol, atol=atol)

    return check


def torch_to_onnx(module, example, path: pathlib.Path, dynamic_batch: bool = True, opset: int = 17) -> onnx.ModelProto:
    """Export a torch module with the TorchScript-based exporter (fast) and a symbolic batch."""
    import torch

    module.eval()
    kwargs = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["input"], output_names=["output"],
                          opset_version=opset, dynamo=False, **kwargs)
    return onnx.load(str(path))


@pytest.fixture
def torch_check(tmp_path, check_model):
    """torch_check(module, shape_without_batch): export, convert, compare at batch 1 and 3."""
    counter = iter(range(10_000))

    def check(module, shape, rtol=1e-3, atol=1e-4, batches=(1, 3)):
        import torch

        torch.manual_seed(0)
        example = torch.randn(2, *shape)
        model = torch_to_onnx(module, example, tmp_path / f"t{next(counter)}.onnx")
        rng = np.random.default_rng(0)
        feeds = [{"input": rng.standard_normal((b, *shape)).astype(np.float32)} for b in batches]
        check_model(model, feeds, rtol=rtol, atol=atol)
        return model

    return check


class LambdaModule:
    """Factory of a torch module whose forward is ``fn`` (import of torch deferred)."""

    def __new__(cls, fn):
        from torch import nn

        class _Fn(nn.Module):
            def forward(self, x):
                return fn(x)

        return _Fn()


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 18) -> onnx.ModelProto:
    """A one-graph ONNX model from helper-made nodes and value infos."""
    graph = onnx.helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def tensor_info(name: str, shape, elem_type=onnx.TensorProto.FLOAT):
    return onnx.helper.make_tensor_value_info(name, elem_type, shape)
