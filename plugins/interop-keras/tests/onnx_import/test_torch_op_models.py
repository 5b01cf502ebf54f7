"""PyTorch models whose exports use TopK, CumSum, GatherElements, Einsum, Trilu and DepthToSpace, the user's way,
and a sequence-first encoder (several sizes known only at run time).

Each is saved as a ``.pt2`` with a dynamic batch, converted by ``interop.convert`` into
``.keras`` (the route torch -> onnx -> keras), checked by ``interop.check`` against the
``.pt2`` and the intermediate ONNX file at two batch sizes, loaded through interop's safety
check and Keras' safe mode, and has as many trainable weights as the torch model, each with a
gradient (one SGD step lowers a loss).
"""

from __future__ import annotations

import numpy as np
import pytest

import interop

from .test_models import one_step_lowers_the_loss

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")
F = torch.nn.functional


class TopKPool(torch.nn.Module):
    """Text-ish: embedding, cumsum positions, top-k pooling over time, linear head."""
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 16)
        self.head = torch.nn.Linear(16 * 3, 4)
    def forward(self, x):
        h = torch.tanh(self.proj(x))  # [N, T, 16]; no ties for topk to order (torch leaves their order open)
        h = h + torch.cumsum(h, dim=1) / 10
        top = torch.topk(h, 3, dim=1)                    # [N, 3, 16]
        picked = torch.gather(x, 1, top.indices[:, :, :8])  # the inputs at the strongest steps
        return self.head(top.values.flatten(1)) + picked.mean((1, 2))[:, None]

class EinsumCausal(torch.nn.Module):
    """Single-head causal self-attention written with einsum and a triu mask."""
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(8, 24)
        self.out = torch.nn.Linear(8, 8)
    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = torch.einsum("btd,bsd->bts", q, k) / 8 ** 0.5
        t = x.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.tril(scores.softmax(-1))  # zero above the diagonal already: Trilu of a computed tensor
        return self.out(torch.einsum("bts,bsd->btd", weights, v))

class SubPixel(torch.nn.Module):
    """ESPCN-style super-resolution: convs, pixel_shuffle, then pixel_unshuffle back (a U-shaped detail)."""
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = torch.nn.Conv2d(16, 3 * 4, 3, padding=1)
        self.c3 = torch.nn.Conv2d(12, 3, 1)
    def forward(self, x):
        up = F.pixel_shuffle(self.c2(torch.tanh(self.c1(x))), 2)
        return up, self.c3(F.pixel_unshuffle(up, 2))


MODELS = {
    "topk_cumsum_gather": (TopKPool, (7, 8), {"TopK", "CumSum", "GatherElements"}),
    "einsum_causal_attention": (EinsumCausal, (6, 8), {"Einsum", "Trilu"}),
    "pixel_shuffle": (SubPixel, (3, 8, 8), {"DepthToSpace"}),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_model_goes_through_onnx_into_keras(name, tmp_path):
    import onnx

    from interop_keras.loading import load_keras_model

    cls, shape, ops = MODELS[name]
    torch.manual_seed(0)
    model = cls().eval()
    example = torch.randn(2, *shape)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", max=1024)},))
    source = tmp_path / "model.pt2"
    torch.export.save(program, source)
    exported = tmp_path / "model.onnx"
    interop.convert(source, exported)
    assert ops <= {node.op_type for node in onnx.load(exported).graph.node}
    imported = tmp_path / "model.keras"
    assert interop.convert(exported, imported).route == ["onnx", "keras"]
    report = interop.check(source, [imported, exported], batch_sizes=(1, 5))
    assert report.passed, report.to_dict()
    loaded = load_keras_model(imported)  # interop's safety check, then keras.saving.load_model(safe_mode=True)
    count = int(sum(int(np.prod(w.shape)) for w in loaded.trainable_weights))
    assert count == sum(p.numel() for p in model.parameters())
    x = np.random.default_rng(1).standard_normal((4, *shape)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x))
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = loaded(x if not isinstance(loaded.input, dict) else {next(iter(loaded.input)): x})
    got = got if isinstance(got, (list, tuple)) else [got]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e.numpy(), rtol=1e-4, atol=1e-5)
    one_step_lowers_the_loss(loaded, x, training=True)


class SequenceFirstEncoder(torch.nn.Module):
    """nn.TransformerEncoderLayer as PyTorch defaults it: [seq, batch, features] (batch_first=False)."""

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)

    def forward(self, x):
        return self.encoder(x)


def test_a_sequence_first_encoder_imports_with_the_sequence_as_keras_batch_axis(tmp_path):
    """Both the sequence and the batch are known only at run time; the heads split batch * 2 and merge it
    again with sizes read from the input. Compared with onnxruntime at sequence and batch sizes that differ."""
    import onnx

    from interop_keras.loading import load_keras_model

    from .helpers import keras_run, ort_run

    torch.manual_seed(0)
    model = SequenceFirstEncoder().eval()
    with torch.no_grad():  # as if trained: torch.onnx shares initializers that are equal
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    dims = {0: torch.export.Dim("seq", max=512), 1: torch.export.Dim("batch", max=512)}
    program = torch.export.export(model, (torch.randn(5, 2, 8),), dynamic_shapes=(dims,))
    source = tmp_path / "model.pt2"
    torch.export.save(program, source)
    exported, imported = tmp_path / "model.onnx", tmp_path / "model.keras"
    interop.convert(source, exported)
    interop.convert(exported, imported)
    loaded = load_keras_model(imported)
    graph = onnx.load(exported)
    for seq, batch in [(5, 2), (1, 3), (4, 1), (3, 6)]:
        x = np.random.default_rng(seq).standard_normal((seq, batch, 8)).astype(np.float32)
        expected = ort_run(graph, {graph.graph.input[0].name: x})
        actual = keras_run(loaded, graph, {graph.graph.input[0].name: x})
        for name, ref in expected.items():
            np.testing.assert_allclose(actual[name], ref, rtol=1e-4, atol=1e-5, err_msg=f"{name} at {seq}x{batch}")
        with torch.no_grad():
            np.testing.assert_allclose(next(iter(actual.values())), model(torch.from_numpy(x)).numpy(),
                                       rtol=1e-4, atol=1e-5)
    count = int(sum(int(np.prod(w.shape)) for w in loaded.trainable_weights))
    assert count == sum(p.numel() for p in model.parameters())
