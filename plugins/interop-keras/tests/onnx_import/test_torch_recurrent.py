"""The issue's PyTorch design with nn.LSTM and nn.GRU, through ONNX into Keras' recurrent layers.

Saved as a ``.pt2`` with a dynamic batch, converted with ``interop convert`` (.pt2 -> .onnx,
then .onnx -> .keras), checked against the ``.pt2``, loaded through interop's safety check and
Keras' safe mode, and trained one step. Keras' LSTM has one bias vector where PyTorch has
bias_ih and bias_hh, so the Keras model has fewer trainable numbers than the ``.pt2`` by
exactly one bias per LSTM layer and direction (the same function: the sum of the two).
"""

from __future__ import annotations

import numpy as np
import pytest
import interop

from .test_cli import _cli
from .test_models import one_step_lowers_the_loss

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


class LstmGru(torch.nn.Module):
    """The issue's repro: LSTM(5, 8) -> GRU(8, 6) -> Linear(6, 3) on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(5, 8, batch_first=True)
        self.gru = torch.nn.GRU(8, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.head(y[:, -1])


class BidirectionalStack(torch.nn.Module):
    """Sequence-first: a bidirectional GRU, then a 2-layer LSTM's final states.

    (nn.RNN is not here: torch.export unrolls it into per-step matrix products, so its
    ONNX has no RNN node; the Keras import of ONNX RNN is tested graph by graph.)
    """

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(5, 4, bidirectional=True)
        self.lstm = torch.nn.LSTM(8, 3, num_layers=2)

    def forward(self, x):
        y, _ = self.gru(x)
        _, (h, c) = self.lstm(y)
        return h[-1] + c[-1]


def _bias_only_in_torch(model) -> int:
    """Numbers PyTorch keeps twice and Keras once: bias_hh of each LSTM layer and direction."""
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith("lstm.bias_hh"))


@pytest.mark.parametrize("cls, shape, batch_axis", [(LstmGru, (7, 5), 0), (BidirectionalStack, (7, 5), 1)])
def test_torch_recurrent_design_converts_checks_loads_and_trains(cls, shape, batch_axis, tmp_path):
    from interop_keras.loading import load_keras_model

    torch.manual_seed(0)
    model = cls().eval()
    example = torch.randn(*shape[:batch_axis], 2, *shape[batch_axis:])
    program = torch.export.export(model, (example,), dynamic_shapes=({batch_axis: torch.export.Dim("batch", max=1024)},))
    source, exported, imported = tmp_path / "r.pt2", tmp_path / "r.onnx", tmp_path / "r.keras"
    torch.export.save(program, source)
    if batch_axis == 0:  # the commands
        for args in [("convert", "r.pt2", "-o", "r.onnx"), ("convert", "r.onnx", "-o", "r.keras"),
                     ("check", "r.pt2", "r.keras")]:
            done = _cli(*args, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        report = interop.check(source, [imported], batch_sizes=(1, 5))
    else:
        interop.convert(source, exported)
        interop.convert(exported, imported)
        report = interop.check(source, [imported, exported], batch_sizes=(1, 5))
    assert report.passed, report.to_dict()
    loaded = load_keras_model(imported)  # interop's safety check, then keras.saving.load_model(safe_mode=True)
    kinds = {type(layer).__name__ for layer in loaded.layers}
    assert kinds & {"LSTM", "GRU", "SimpleRNN", "Bidirectional"}
    count = int(sum(int(np.prod(w.shape)) for w in loaded.trainable_weights))
    assert count == sum(p.numel() for p in model.parameters()) - _bias_only_in_torch(model)
    x = np.random.default_rng(1).standard_normal((*shape[:batch_axis], 4, *shape[batch_axis:])).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = loaded(x if not isinstance(loaded.input, dict) else {next(iter(loaded.input)): x})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)
    before, after = one_step_lowers_the_loss(loaded, x, training=True)  # every weight gets a gradient
    assert after < before
