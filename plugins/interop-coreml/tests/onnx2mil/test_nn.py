"""Convolution, pooling and normalisation layers exported by torch.onnx, checked against onnxruntime."""

from __future__ import annotations

import pytest
import torch
from torch import nn

CASES = {
    "conv1d": (lambda: nn.Conv1d(4, 6, 3, padding=1), (4, 16)),
    "conv2d_strided": (lambda: nn.Conv2d(3, 8, 3, stride=2, padding=1), (3, 16, 16)),
    "conv2d_grouped": (lambda: nn.Conv2d(8, 12, 3, groups=4, padding=2, dilation=2), (8, 12, 12)),
    "conv2d_depthwise": (lambda: nn.Conv2d(6, 6, 3, groups=6, padding=1, bias=False), (6, 10, 10)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1), (4, 7, 7)),
    "conv_transpose2d_grouped": (lambda: nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), (4, 5, 5)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(5), (5, 6, 6)),
    "batchnorm1d": (lambda: nn.BatchNorm1d(7), (7,)),
    "layernorm": (lambda: nn.LayerNorm(10), (4, 10)),
    "layernorm_2d": (lambda: nn.LayerNorm([4, 10]), (4, 10)),
    "instancenorm": (lambda: nn.InstanceNorm2d(3, affine=True), (3, 8, 8)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), (4, 6, 6)),
    "maxpool": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (3, 11, 11)),
    "maxpool_ceil": (lambda: nn.MaxPool2d(2, ceil_mode=True), (3, 9, 9)),
    "avgpool": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (3, 10, 10)),
    "avgpool_exclude_pad": (lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), (3, 6, 6)),
    "adaptive_avgpool_1": (lambda: nn.AdaptiveAvgPool2d(1), (3, 7, 7)),
    "adaptive_avgpool_2": (lambda: nn.AdaptiveAvgPool2d(2), (3, 8, 8)),
    "adaptive_maxpool_1": (lambda: nn.AdaptiveMaxPool2d(1), (3, 5, 5)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), (3, 10)),
}


def _randomize_norm_stats(module: nn.Module) -> nn.Module:
    # Non-trivial running statistics so BatchNorm is not an identity.
    for sub in module.modules():
        if isinstance(sub, (nn.BatchNorm1d, nn.BatchNorm2d)):
            sub.running_mean.uniform_(-0.5, 0.5)
            sub.running_var.uniform_(0.5, 2.0)
            sub.weight.data.uniform_(0.5, 1.5)
            sub.bias.data.uniform_(-0.5, 0.5)
    return module


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_layer_matches_onnxruntime(name, torch_check):
    torch.manual_seed(0)
    factory, shape = CASES[name]
    model = torch_check(_randomize_norm_stats(factory()), shape)
    assert model.graph.node, "export produced an empty graph"
