"""The .pt2 -> ONNX converter (torch.onnx's torch.export-based exporter) on programs it needs help with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.export import Dim  # noqa: E402

from .conftest import ort_run  # noqa: E402


class BiasedAttention(nn.Module):
    """Attention with a dense additive bias as SDPA's attn_mask, heads merged by contiguous() + reshape.

    T5 (position bias), BEiT and Swin (relative-position bias) are written like this. With a dynamic
    batch and sequence, torch.onnx's own decomposition of the program loses the contiguous() and
    fails on the reshape ("Cannot view a tensor with shape [s0, s1, 4, 8] and strides ...").
    """

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(32, 32)

    def forward(self, x):
        b, n, _ = x.shape
        q = self.q(x).view(b, n, -1, 8).transpose(1, 2)
        bias = (q[:, :, :, :1] * q[:, :, :1, :1].transpose(-1, -2)).expand(b, 4, n, n).contiguous()
        y = nn.functional.scaled_dot_product_attention(q, q, q, attn_mask=bias, scale=1.0)
        y = y.reshape(b, -1, n, 8).transpose(1, 2).contiguous()
        return y.reshape(b, n, -1).contiguous()


def test_attention_with_a_dense_bias_and_dynamic_batch_and_sequence_exports(tmp_path: Path) -> None:
    import onnx

    from interop_torch.convert import torch_to_onnx

    torch.manual_seed(0)
    module = BiasedAttention().eval()
    program = torch.export.export(module, (torch.randn(2, 5, 32),),
                                  dynamic_shapes={"x": {0: Dim("batch", max=8), 1: Dim("sequence", max=32)}})
    torch.export.save(program, str(tmp_path / "attention.pt2"))
    with pytest.raises(Exception, match="Cannot view a tensor"):  # what torch.onnx alone does with it
        torch.onnx.export(program, (torch.randn(2, 5, 32),), dynamo=True, verbose=False)

    torch_to_onnx(tmp_path / "attention.pt2", tmp_path / "attention.onnx", {})
    model = onnx.load(str(tmp_path / "attention.onnx"))
    rng = np.random.default_rng(0)
    for batch, sequence in [(1, 3), (4, 9)]:
        x = rng.standard_normal((batch, sequence, 32)).astype(np.float32)
        (got,) = ort_run(model, {model.graph.input[0].name: x})
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, sequence, 32)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
