"""Matrix products: Linear (Gemm/MatMul), broadcasting MatMul, batched products."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class BroadcastMatMul(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 5, 3))

    def forward(self, x):
        # (N, 1, 4, 5) @ (2, 5, 3) broadcasts the leading dims.
        return x.unsqueeze(1) @ self.weight


class SelfProduct(nn.Module):
    def forward(self, x):
        return x @ x.transpose(-1, -2)


CASES = {
    "linear": (nn.Linear(6, 4), (6,)),
    "linear_3d": (nn.Linear(6, 4), (5, 6)),
    "linear_no_bias": (nn.Linear(6, 4, bias=False), (6,)),
    "broadcast_matmul": (BroadcastMatMul(), (4, 5)),
    "batched_self_product": (SelfProduct(), (4, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matmul_layers_match_onnxruntime(name, torch_check):
    torch.manual_seed(0)
    module, shape = CASES[name]
    model = torch_check(module, shape)
    assert any(node.op_type in ("Gemm", "MatMul") for node in model.graph.node)
