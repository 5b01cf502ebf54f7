"""PyTorch recurrent models to Core ML as a user does it: ``.pt2 → ONNX → .mlpackage``, then ``interop check``.

nn.LSTM, nn.GRU and nn.RNN (tanh and relu) with tiny hidden sizes, and the text classifier
that found the gap (Embedding → Conv1d → bidirectional GRU → LayerNorm → Linear), each
exported by ``torch.export`` with a dynamic batch, converted through the CLI and checked
against the PyTorch program at batch sizes 1 and 3. torch.export specialises the sequence
length of ``aten.lstm``/``aten.gru``/``aten.rnn_*`` (their decomposition loops over the
steps), so each model is exported at two sequence lengths; a dynamic sequence length is
covered from torch.onnx's TorchScript exporter in ``onnx2mil/test_recurrent.py``.
Outputs are batch-first (``interop check`` varies the batch on axis 0).
"""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from torch import nn
from torch.export import Dim

SEQUENCE_LENGTHS = (5, 9)


class Recurrent(nn.Module):
    """A recurrent layer returning its sequence and its final states, all batch-first."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        y, state = self.layer(x)
        states = state if isinstance(state, tuple) else (state,)
        return (y, *(s.transpose(0, 1) for s in states))


class TextClassifier(nn.Module):
    """Embedding -> Conv1d -> bidirectional GRU -> LayerNorm -> Linear on the last step."""

    def __init__(self, vocab: int = 40, width: int = 8, hidden: int = 6, classes: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width)
        self.conv = nn.Conv1d(width, width, 3, padding=1)
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(2 * hidden)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, ids):
        x = self.conv(self.embedding(ids).transpose(1, 2)).relu().transpose(1, 2)
        y, _ = self.gru(x)
        return self.head(self.norm(y[:, -1]))


MODELS = {
    "lstm_2_layers_bidirectional": lambda: Recurrent(nn.LSTM(5, 4, num_layers=2, bidirectional=True, batch_first=True)),
    "gru_2_layers": lambda: Recurrent(nn.GRU(5, 4, num_layers=2, batch_first=True)),
    "rnn_tanh_bidirectional": lambda: Recurrent(nn.RNN(5, 4, bidirectional=True, batch_first=True)),
    "rnn_relu_2_layers": lambda: Recurrent(nn.RNN(5, 4, num_layers=2, nonlinearity="relu", batch_first=True)),
    "text_classifier_gru": TextClassifier,
}


def example(name: str, length: int) -> torch.Tensor:
    if name == "text_classifier_gru":
        return torch.randint(0, 40, (2, length))
    return torch.randn(2, length, 5)


def convert_and_check(name: str, length: int, folder: pathlib.Path, run_cli, *convert_options: str) -> dict:
    torch.manual_seed(0)
    module = MODELS[name]().eval()
    program = torch.export.export(module, (example(name, length),), dynamic_shapes=({0: Dim("batch", min=1, max=8)},))
    pt2, onnx_path, package = (folder / f"{name}_{length}{suffix}" for suffix in (".pt2", ".onnx", ".mlpackage"))
    torch.export.save(program, str(pt2))
    code, out, err = run_cli("convert", pt2, "-o", onnx_path)
    assert code == 0, err
    code, out, err = run_cli("convert", onnx_path, "-o", package, *convert_options)
    assert code == 0, err
    report = folder / f"check_{name}_{length}.json"
    code, out, err = run_cli("check", pt2, package, "--batch-sizes", "1,3", "--samples", "4", "--json-file", report)
    assert code == 0, out + err
    return json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_recurrent_model_passes_check(name, tmp_path, run_cli):
    for length in SEQUENCE_LENGTHS:
        (pair,) = convert_and_check(name, length, tmp_path, run_cli)["pairs"]
        assert pair["passed"], pair
        assert pair["engine"] == "coreml (reference interpreter)"
        for output in pair["outputs"]:
            assert output["max_abs"] < 1e-4, (length, output)


@pytest.mark.slow
def test_pytorch_gru_on_ios18_uses_mil_gru(tmp_path, run_cli):
    """PyTorch's GRU (linear_before_reset=1) maps to iOS18's gru with reset_after, no loop."""
    import coremltools as ct

    report = convert_and_check("gru_2_layers", 5, tmp_path, run_cli, "--minimum-deployment-target", "iOS18")
    assert report["pairs"][0]["passed"], report
    spec = ct.utils.load_spec(str(tmp_path / "gru_2_layers_5.mlpackage"))
    ops = [op.type for op in spec.mlProgram.functions["main"].block_specializations["CoreML8"].operations]
    assert ops.count("gru") == 2 and "while_loop" not in ops


@pytest.mark.slow
def test_keras_lstms_through_tf2onnx_pass_check(tmp_path, run_cli):
    """Keras LSTM, Bidirectional(LSTM) and LSTM(go_backwards) (tf2onnx: LSTM nodes and a ReverseSequence).

    tf2onnx fuses Keras 3's GRU and SimpleRNN into ONNX Loop nodes, not GRU/RNN ones, so they
    are not covered here.
    """
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 5), name="x")
    y = keras.layers.LSTM(4, return_sequences=True)(inputs)
    y = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))(y)
    y = keras.layers.LSTM(4, go_backwards=True)(y)
    source, onnx_path, package = tmp_path / "lstm.keras", tmp_path / "lstm.onnx", tmp_path / "lstm.mlpackage"
    keras.Model(inputs, keras.layers.Dense(2)(y)).save(source)
    for command in (("convert", source, "-o", onnx_path), ("convert", onnx_path, "-o", package)):
        code, out, err = run_cli(*command)
        assert code == 0, err
    import onnx

    op_types = {node.op_type for node in onnx.load(str(onnx_path)).graph.node}
    assert {"LSTM", "ReverseSequence"} <= op_types and "Loop" not in op_types
    for length in SEQUENCE_LENGTHS:
        report = tmp_path / f"check{length}.json"
        code, out, err = run_cli("check", source, package, "--batch-sizes", "1,3", "--samples", "4",
                                 "--input-shape", f"x=3,{length},5", "--json-file", report)
        assert code == 0, out + err
        (pair,) = json.loads(report.read_text())["pairs"]
        assert pair["passed"] and all(output["max_abs"] < 1e-5 for output in pair["outputs"]), pair
