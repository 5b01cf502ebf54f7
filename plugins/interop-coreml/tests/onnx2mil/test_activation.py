"""Activation and softmax layers exported by torch.onnx, checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from .conftest import assert_close, interpret, make_model, ort_run, save, tensor_info

LAYERS = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": lambda: nn.LeakyReLU(0.1), "prelu": lambda: nn.PReLU(4),
    "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid, "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh, "softplus": nn.Softplus, "softmax": lambda: nn.Softmax(dim=1),
    "log_softmax": lambda: nn.LogSoftmax(dim=-1), "mish": nn.Mish, "softsign": nn.Softsign, "celu": nn.CELU,
    "hardtanh": lambda: nn.Hardtanh(-0.5, 0.5),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_activation_matches_onnxruntime(name, torch_check):
    torch.manual_seed(0)
    model = torch_check(LAYERS[name](), (4, 5, 5))
    assert model.graph.node


def test_softmax_opset11_non_last_axis(tmp_path):
    """Before opset 13 Softmax flattens at the axis; the converter must honour that."""
    node = onnx.helper.make_node("Softmax", ["x"], ["y"], axis=1)
    model = make_model([node], [tensor_info("x", ["N", 3, 4])], [tensor_info("y", ["N", 3, 4])], opset=11)
    path = save(model, tmp_path / "softmax.mlpackage")
    for batch in (1, 3):
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 3, 4)).astype(np.float32)}
        assert_close(interpret(path, feeds), ort_run(model, feeds))


@pytest.mark.parametrize("op", ["Hardmax", "Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axis,dims", [(1, [2, 4, 3, 5]), (-2, ["N", 4, "D", 5]), (0, ["N", "C", "D", "W"])])
def test_softmax_family_over_static_and_symbolic_axes(op, opset, axis, dims, tmp_path):
    """Hardmax needs a run-time depth when the axis is symbolic; opset < 13 flattens symbolic inner dims."""
    node = onnx.helper.make_node(op, ["x"], ["y"], axis=axis)
    model = make_model([node], [tensor_info("x", dims)], [tensor_info("y", dims)], opset=opset)
    path = save(model, tmp_path / "m.mlpackage")
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4, 3, 5)).astype(np.float32)}
    assert_close(interpret(path, feeds), ort_run(model, feeds))
