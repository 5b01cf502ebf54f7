"""Recurrent layers converted from PyTorch by coremltools, run by the interpreter, compared with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from interop_coreml.interpreter import load_program  # noqa: E402


class LastStates(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        output, _ = self.layer(x)
        return output


@pytest.mark.parametrize(
    "layer,op_type",
    [
        (lambda: nn.LSTM(5, 7), "lstm"),
        (lambda: nn.LSTM(5, 6, bidirectional=True), "lstm"),
        # coremltools' frontend unrolls GRU into a while_loop of primitive ops.
        (lambda: nn.GRU(5, 7), "while_loop"),
        (lambda: nn.RNN(5, 4), "rnn"),
    ],
    ids=["lstm", "bilstm", "gru", "rnn"],
)
def test_recurrent_layer_matches_pytorch(tmp_path, layer, op_type):
    torch.manual_seed(3)
    model = LastStates(layer()).eval()
    example = torch.randn(6, 2, 5)
    traced = torch.jit.trace(model, example)
    path = tmp_path / "rnn.mlpackage"
    ct.convert(traced, inputs=[ct.TensorType(name="x", shape=example.shape)], convert_to="mlprogram",
               compute_precision=ct.precision.FLOAT32).save(str(path))
    program = load_program(path)
    ops = {record.op_type for record in program.ops}
    (output,) = program.outputs
    got = program.run({"x": example.numpy()})[output.name]
    with torch.no_grad():
        expected = model(example).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # Fails if coremltools decomposed the layer, in which case the recurrent kernel went untested.
    assert op_type in ops, ops


def test_gru_op_with_reset_after_matches_pytorch():
    """The iOS18 gru op (reset gate applied after the recurrent product) is PyTorch's GRU cell."""
    from coremltools.converters.mil import Builder as mb

    from interop_coreml.interpreter import Program

    torch.manual_seed(4)
    layer = nn.GRU(3, 5).eval()
    x = torch.randn(4, 2, 3)
    h0 = torch.randn(1, 2, 5)
    with torch.no_grad():
        expected_sequence, expected_h = layer(x, h0)
    # PyTorch orders the gate blocks (reset, update, new); MIL orders them (reset, new, update).
    def mil_order(tensor):
        r, z, n = np.split(tensor.detach().numpy(), 3)
        return np.concatenate([r, n, z])

    @mb.program(input_specs=[mb.TensorSpec(shape=(4, 2, 3)), mb.TensorSpec(shape=(2, 5))],
                opset_version=ct.target.iOS18)
    def program(x, h):
        return mb.gru(
            x=x, initial_h=h, weight_ih=mil_order(layer.weight_ih_l0), weight_hh=mil_order(layer.weight_hh_l0),
            input_bias=mil_order(layer.bias_ih_l0), bias=mil_order(layer.bias_hh_l0), reset_after=True,
            output_sequence=True,
        )

    names = list(program.functions["main"].inputs)
    outputs = Program(program).run({names[0]: x.numpy(), names[1]: h0[0].numpy()})
    sequence, final_h = (outputs[var.name] for var in program.functions["main"].outputs)
    np.testing.assert_allclose(sequence, expected_sequence.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final_h, expected_h[0].numpy(), rtol=1e-5, atol=1e-6)
