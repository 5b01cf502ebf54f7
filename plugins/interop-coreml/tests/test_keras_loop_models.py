"""Keras 3 recurrent layers that tf2onnx writes as an ONNX ``Loop``, to Core ML as a user does it.

tf2onnx rewrites Keras LSTMs into ONNX LSTM nodes, but Keras 3's GRU and SimpleRNN, and an
LSTM behind ``Masking`` (the mask is read per time step), stay the TensorFlow while loop of
the layer: a ``Loop`` whose body reads the transposed input sequence from the outer graph
and threads the cell's weights through unchanged. Each tiny model here is a
``keras.Sequential`` saved to ``.keras``, converted ``.keras → .onnx → .mlpackage`` through
the CLI, and checked against the Keras model with ``interop check`` at two batch sizes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

STEPS, FEATURES = 5, 4


def _models():
    import keras
    from keras import layers

    return {
        "gru": lambda: keras.Sequential([keras.Input((STEPS, FEATURES)), layers.GRU(16), layers.Dense(3)]),
        "simple_rnn": lambda: keras.Sequential([keras.Input((STEPS, FEATURES)), layers.SimpleRNN(16), layers.Dense(3)]),
        "bidirectional_gru": lambda: keras.Sequential(
            [keras.Input((STEPS, FEATURES)), layers.Bidirectional(layers.GRU(8)), layers.Dense(3)]),
        "masked_lstm": lambda: keras.Sequential(
            [keras.Input((STEPS, FEATURES)), layers.Masking(), layers.LSTM(8), layers.Dense(3)]),
        # The second LSTM reads a sequence whose length (and batch) the translator knows only at run
        # time: tf2onnx's x[0] of it is a Slice the reader of the saved program must type as [1, N, 8].
        "masked_bidirectional_lstm_then_lstm": lambda: keras.Sequential(
            [keras.Input((STEPS, FEATURES)), layers.Masking(),
             layers.Bidirectional(layers.LSTM(4, return_sequences=True)), layers.LSTM(3), layers.Dense(2)]),
        # A dynamic sequence length: the Loop's trip count is computed at run time, and the scan output
        # (every step's state) has a row per step.
        "gru_sequences_any_length": lambda: keras.Sequential(
            [keras.Input((None, FEATURES)), layers.GRU(6, return_sequences=True), layers.Dense(3)]),
    }


def _masked_batch(name: str, batch: int, steps: int) -> dict[str, np.ndarray]:
    """Random steps, some of them all zeros (what Masking skips): leading, trailing, inner and a whole row."""
    x = np.random.default_rng(batch).normal(size=(batch, steps, FEATURES)).astype(np.float32)
    x[0, steps - 2:] = 0
    if batch > 1:
        x[1, :2] = 0
    if batch > 2:
        x[2, 1:3] = 0
        x[-1] = 0
    return {name: x}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gru", "simple_rnn", "bidirectional_gru", "masked_lstm",
                                  "masked_bidirectional_lstm_then_lstm", "gru_sequences_any_length"])
def test_keras_loop_model_passes_check(name, tmp_path, run_cli):
    import keras
    import onnx

    keras.utils.set_random_seed(0)
    source, onnx_path, package = (tmp_path / f"{name}{suffix}" for suffix in (".keras", ".onnx", ".mlpackage"))
    _models()[name]().save(source)
    for command in (("convert", source, "-o", onnx_path), ("convert", onnx_path, "-o", package)):
        code, out, err = run_cli(*command)
        assert code == 0, err
    graph = onnx.load(str(onnx_path)).graph
    assert "Loop" in {node.op_type for node in graph.node}  # what this test is about
    (input_name,) = [value.name for value in graph.input]

    runs = []
    if name.startswith("masked"):
        for batch in (1, 4):
            inputs = tmp_path / f"masked{batch}.npz"
            np.savez(inputs, **_masked_batch(input_name, batch, STEPS))
            runs.append(("--inputs", inputs))
    elif name == "gru_sequences_any_length":
        runs = [("--batch-sizes", "1,3", "--input-shape", f"{input_name}=3,{steps},{FEATURES}") for steps in (2, 7)]
    else:
        runs = [("--batch-sizes", "1,3", "--samples", "6")]
    for index, options in enumerate(runs):
        report = tmp_path / f"check{index}.json"
        code, out, err = run_cli("check", source, package, *options, "--json-file", report)
        assert code == 0, out + err
        (pair,) = json.loads(report.read_text())["pairs"]
        assert pair["passed"] and pair["engine"] == "coreml (reference interpreter)", pair
        for output in pair["outputs"]:
            assert output["max_abs"] < 1e-5, (options, output)
