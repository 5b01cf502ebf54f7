"""Reductions and arg-reductions exported by torch.onnx."""

from __future__ import annotations

import pytest
import torch

from .conftest import LambdaModule

CASES = {
    "sum": lambda x: x.sum(dim=1),
    "mean_keepdim": lambda x: x.mean(dim=(1, 2), keepdim=True),
    "max_min": lambda x: x.amax(dim=-1) - x.amin(dim=-1),
    "prod": lambda x: (x * 0.5 + 1).prod(dim=2),
    "norms": lambda x: torch.linalg.vector_norm(x, dim=1) + x.abs().sum(dim=1),
    "logsumexp": lambda x: torch.logsumexp(x, dim=-1),
    "argmax": lambda x: x.argmax(dim=1).float(),
    "argmin_keepdim": lambda x: x.argmin(dim=-1, keepdim=True).float(),
    "variance": lambda x: x.var(dim=-1, unbiased=False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reduction_matches_onnxruntime(name, torch_check):
    model = torch_check(LambdaModule(CASES[name]), (3, 4, 5))
    assert model.graph.node
