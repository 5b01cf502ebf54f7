"""Shape and data-movement layers (flatten, concat, split, slice, pad, upsample, reshape chains)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from .conftest import LambdaModule

CASES = {
    "flatten": (nn.Flatten(), (3, 4, 5)),
    "view_batch_minus_one": (LambdaModule(lambda x: x.view(x.size(0), -1)), (3, 4, 5)),
    "reshape_symbolic": (LambdaModule(lambda x: x.reshape(x.shape[0], x.shape[1] * 2, -1)), (4, 6, 5)),
    "concat": (LambdaModule(lambda x: torch.cat([x, x * 2, x[:, :1]], dim=1)), (3, 4, 4)),
    "split": (LambdaModule(lambda x: sum(p.sum(dim=1, keepdim=True) for p in torch.split(x, [1, 2, 3], dim=1))), (6, 4)),
    "chunk": (LambdaModule(lambda x: torch.chunk(x, 2, dim=-1)[1] * 3), (3, 8)),
    "slice": (LambdaModule(lambda x: x[:, 1:3, ::2, -3:]), (4, 6, 7)),
    "pad_constant": (LambdaModule(lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)), (2, 4, 4)),
    "pad_reflect": (nn.ReflectionPad2d(2), (2, 5, 5)),
    "pad_replicate": (nn.ReplicationPad2d((1, 0, 2, 1)), (2, 5, 5)),
    "upsample_nearest": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4, 5)),
    "upsample_bilinear": (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), (3, 4, 5)),
    "upsample_bilinear_aligned": (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (3, 4, 5)),
    "interpolate_size": (LambdaModule(lambda x: F.interpolate(x, size=(6, 9), mode="nearest")), (2, 3, 3)),
    "dropout_eval": (nn.Sequential(nn.Dropout(0.5), nn.Linear(5, 3)), (5,)),
    "transpose_permute": (LambdaModule(lambda x: x.permute(0, 2, 3, 1).contiguous()), (3, 4, 5)),
    "unsqueeze_squeeze": (LambdaModule(lambda x: x.unsqueeze(1).squeeze(1) + x.unsqueeze(-1).mean(-1)), (4, 5)),
    "pixel_shuffle": (nn.PixelShuffle(2), (8, 3, 3)),
    "expand": (LambdaModule(lambda x: x[:, :1].expand(-1, 4, -1)), (3, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensor_layer_matches_onnxruntime(name, torch_check):
    module, shape = CASES[name]
    model = torch_check(module, shape)
    assert model.graph.node
