"""Element-wise arithmetic, comparisons and unary math exported by torch.onnx."""

from __future__ import annotations

import pytest
import torch

from .conftest import LambdaModule

CASES = {
    "arith": lambda x: (x * 2.0 + 1.0) / 3.0 - x,
    "pow_sqrt_abs": lambda x: torch.sqrt(x.abs() + 1) ** 2.5,
    "exp_log": lambda x: torch.log(torch.exp(x * 0.5) + 1.0),
    "trig": lambda x: torch.sin(x) + torch.cos(x) * torch.tanh(x) + torch.atan(x),
    "minmax": lambda x: torch.maximum(x, x * 0.5) - torch.minimum(x, -x) + torch.clamp(x, -0.3, 0.4),
    "compare_where": lambda x: torch.where(x > 0.1, x, -x) + (x <= 0).float() + (x == x).float(),
    "floor_ceil_round": lambda x: torch.floor(x * 3) + torch.ceil(x * 2) + torch.round(x * 5),
    "reciprocal_neg_sign": lambda x: torch.reciprocal(x.abs() + 1) - x + torch.sign(x),
    "erf": lambda x: torch.erf(x),
    "logical": lambda x: ((x > 0) & (x < 0.5) | (x < -1)).float(),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_elementwise_matches_onnxruntime(name, torch_check):
    model = torch_check(LambdaModule(CASES[name]), (3, 4))
    assert model.graph.node
