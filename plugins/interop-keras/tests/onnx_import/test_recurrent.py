"""ONNX LSTM, GRU and RNN into Keras' LSTM / GRU / SimpleRNN, against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from interop.plugin_api import UnsupportedModelError
from interop_keras.onnx_import.ops.recurrent import SUMMED_BIAS_NOTE

from .helpers import assert_matches_onnxruntime, keras_run, make_model, ort_run, random_feeds

INPUT, HIDDEN, SEQ = 3, 4, 5
CONSTANT_BATCH = 3
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}


def _recurrent(op: str, direction: str = "forward", layout: int = 0, states: str = "none", bias: bool = True,
               outputs: tuple[str, ...] = ("Y", "Y_h", "Y_c"), seed: int = 0, **attrs):
    """A model of one ``op`` node; ``states`` is none, input (graph inputs) or constant (initializers)."""
    rng = np.random.default_rng(seed)
    dirs, gates = DIRECTIONS[direction], GATES[op] * HIDDEN
    inits = {"W": rng.uniform(-0.5, 0.5, (dirs, gates, INPUT)).astype(np.float32),
             "R": rng.uniform(-0.5, 0.5, (dirs, gates, HIDDEN)).astype(np.float32)}
    if bias:
        inits["B"] = rng.uniform(-0.5, 0.5, (dirs, 2 * gates)).astype(np.float32)
    x_shape = [SEQ, "N", INPUT] if layout == 0 else ["N", SEQ, INPUT]
    state_shape = [dirs, "N", HIDDEN] if layout == 0 else ["N", dirs, HIDDEN]
    inputs = {"X": x_shape}
    names = ["h0", "c0"] if op == "LSTM" else ["h0"]
    if states == "input":
        inputs.update({n: state_shape for n in names})
    elif states == "constant":
        # onnxruntime takes a fixed state for exactly its batch: the model runs at batch CONSTANT_BATCH.
        fixed = (dirs, CONSTANT_BATCH, HIDDEN) if layout == 0 else (CONSTANT_BATCH, dirs, HIDDEN)
        inits.update({n: rng.uniform(-1, 1, fixed).astype(np.float32) for n in names})
    node_inputs = ["X", "W", "R", "B" if bias else "", ""] + (names if states != "none" else [])
    wanted = [o for o in outputs if o != "Y_c" or op == "LSTM"]
    node_outputs = [o if o in wanted else "" for o in ("Y", "Y_h", "Y_c")[: 3 if op == "LSTM" else 2]]
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(op, node_inputs, node_outputs, hidden_size=HIDDEN, direction=direction, **attrs)
    return make_model([node], inputs, wanted, inits, opset=14 if seed % 2 == 0 else 7)


def _matches(op: str, direction: str, layout: int, states: str, **kwargs):
    """Layout 0 against onnxruntime; layout 1 (which onnxruntime's CPU kernels refuse) against
    onnxruntime on the same node in layout 0, with the inputs and outputs transposed."""
    batches = (CONSTANT_BATCH,) if states == "constant" else (1, 3)
    if layout == 0:
        return assert_matches_onnxruntime(_recurrent(op, direction, 0, states, **kwargs), batches=batches)
    from interop_keras.onnx_import import import_onnx

    model = _recurrent(op, direction, 1, states, **kwargs)
    reference = _recurrent(op, direction, 0, states, **kwargs)
    fixed = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.name in ("h0", "c0")}
    for tensor in reference.graph.initializer:  # the same fixed states, in layout 0
        if tensor.name in fixed:
            tensor.CopyFrom(numpy_helper.from_array(np.transpose(fixed[tensor.name], (1, 0, 2)), tensor.name))
    result = import_onnx(model)
    for batch in batches:
        feeds = random_feeds(model, batch, seed=batch)
        expected = ort_run(reference, {k: np.transpose(v, (1, 0, 2)) for k, v in feeds.items()})
        actual = keras_run(result.model, model, feeds)
        assert set(actual) == set(expected)
        for name, ref in expected.items():
            ref = np.transpose(ref, (2, 0, 1, 3) if ref.ndim == 4 else (1, 0, 2))
            np.testing.assert_allclose(actual[name], ref, rtol=1e-4, atol=1e-5, err_msg=f"{name}, batch {batch}")
    return result


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("states", ["none", "input", "constant"])
def test_each_direction_layout_and_initial_state_matches_onnxruntime(op, direction, layout, states):
    attrs = {"linear_before_reset": 1} if op == "GRU" else {}
    result = _matches(op, direction, layout, states, **attrs)
    dirs, gates = DIRECTIONS[direction], GATES[op] * HIDDEN
    # Keras keeps one bias (Wb + Rb) except in GRU(reset_after=True), which keeps both.
    bias = dirs * (2 if op == "GRU" else 1) * gates
    assert result.trainable_weight_count == dirs * gates * (INPUT + HIDDEN) + bias
    layers = {type(layer).__name__ for layer in result.model.layers}
    native = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "SimpleRNN"}[op]
    assert (native in layers) if dirs == 1 else ("Bidirectional" in layers)
    assert (SUMMED_BIAS_NOTE in result.notes) == (op != "GRU")


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_gru_without_linear_before_reset_is_reset_after_false(direction):
    result = _matches("GRU", direction, 1, "input", linear_before_reset=0)
    gru = [layer for layer in result.model.layers if type(layer).__name__ in ("GRU", "Bidirectional")][0]
    cell = gru.forward_layer.cell if direction == "bidirectional" else gru.cell
    assert cell.reset_after is False


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_no_bias_only_final_state_and_relu_rnn(op):
    attrs = {"activations": ["Relu"]} if op == "RNN" else {}
    assert_matches_onnxruntime(_recurrent(op, "forward", 0, "none", bias=False, outputs=("Y_h",), seed=1, **attrs))


def test_explicit_default_activations_are_accepted():
    model = _recurrent("LSTM", "bidirectional", 0, "none", activations=["Sigmoid", "Tanh", "Tanh"] * 2)
    assert_matches_onnxruntime(model)


def test_onnx_weights_map_back_to_the_initializers():
    from interop_keras.onnx_import import import_onnx

    model = _recurrent("LSTM", "bidirectional", 0, "none")
    weights = import_onnx(model).onnx_weights()
    inits = {t.name: t for t in model.graph.initializer}
    for name in ("W", "R"):
        np.testing.assert_array_equal(weights[name], numpy_helper.to_array(inits[name]))
    b = numpy_helper.to_array(inits["B"])
    gates = 4 * HIDDEN
    summed = weights["B"][:, :gates] + weights["B"][:, gates:]
    np.testing.assert_allclose(summed, b[:, :gates] + b[:, gates:], rtol=1e-6)


@pytest.mark.parametrize("attrs, message", [
    ({"clip": 1.0}, "clip"),
    ({"input_forget": 1}, "input_forget"),
    ({"activations": ["Sigmoid", "Tanh", "Relu"]}, "activations"),
])
def test_what_keras_cannot_express_is_refused_by_name(attrs, message):
    from interop_keras.onnx_import import import_onnx

    with pytest.raises(UnsupportedModelError, match=message):
        import_onnx(_recurrent("LSTM", **attrs))


def test_peepholes_and_short_sequence_lens_are_refused():
    from interop_keras.onnx_import import import_onnx

    model = _recurrent("LSTM")
    node = model.graph.node[0]
    node.input[4] = "lens"
    model.graph.initializer.append(helper.make_tensor("lens", 6, [1], [SEQ - 1]))
    with pytest.raises(UnsupportedModelError, match="sequence_lens other than the full"):
        import_onnx(model)
    model = _recurrent("LSTM")
    model.graph.node[0].input.extend(["", "", "P"])
    model.graph.initializer.append(helper.make_tensor("P", 1, [1, 3 * HIDDEN], [0.1] * (3 * HIDDEN)))
    with pytest.raises(UnsupportedModelError, match="peepholes"):
        import_onnx(model)


def test_zero_initial_state_of_a_run_time_batch_is_expanded_from_the_input():
    """torch.onnx's initial state: Expand(0, Concat([1], Shape(X)[1:2], [H])) with a sequence-first X."""
    inits = {"zero": np.array(0.0, np.float32), "one": np.array([1], np.int64), "two": np.array([2], np.int64),
             "hidden": np.array([HIDDEN], np.int64)}
    nodes = [helper.make_node("Shape", ["X"], ["shape"]), helper.make_node("Slice", ["shape", "one", "two"], ["batch"]),
             helper.make_node("Concat", ["one", "batch", "hidden"], ["state_shape"], axis=0),
             helper.make_node("Expand", ["zero", "state_shape"], ["h0"]),
             helper.make_node("Add", ["h0", "bias"], ["y"])]
    inits["bias"] = np.arange(HIDDEN, dtype=np.float32)
    model = make_model(nodes, {"X": [SEQ, "N", INPUT]}, ["y"], inits)
    assert_matches_onnxruntime(model, batches=(1, 4))


def test_the_cli_refuses_a_clipped_lstm_with_exit_3_and_writes_nothing(tmp_path):
    import onnx

    from .test_cli import _cli

    onnx.save(_recurrent("LSTM", clip=2.0), tmp_path / "m.onnx")
    done = _cli("convert", "m.onnx", "-o", "m.keras", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "clip" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_a_sequence_length_known_only_at_run_time(op, direction):
    from interop_keras.onnx_import import import_onnx

    model = _recurrent(op, direction, 0, "input", **({"linear_before_reset": 1} if op == "GRU" else {}))
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name in ("X", "Y"):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "T"
    result = import_onnx(model)
    for seq, batch in [(2, 3), (9, 1)]:
        feeds = random_feeds(model, batch, seed=seq, shapes={"X": [seq, batch, INPUT]})
        expected = ort_run(model, feeds)
        actual = keras_run(result.model, model, feeds)
        for name, ref in expected.items():
            np.testing.assert_allclose(actual[name], ref, rtol=1e-4, atol=1e-5, err_msg=f"{name} at {seq}x{batch}")


def test_a_state_read_in_two_layouts_keeps_each():
    """Y_h is added to a row (broadcast) and also transposed: one Keras tensor with two ONNX layouts, each relaid
    out on its own (the importer once reused the first relayout for the second; fuzz seed 375)."""
    model = _recurrent("GRU", "bidirectional", 0, "none", outputs=("Y_h",), linear_before_reset=1)
    graph = model.graph
    graph.output.pop()
    graph.node.extend([helper.make_node("Add", ["Y_h", "row"], ["shifted"]),
                       helper.make_node("Transpose", ["Y_h"], ["flipped"])])
    model = make_model(list(graph.node), {"X": [SEQ, "N", INPUT], "row": [HIDDEN]}, ["shifted", "flipped"],
                       {t.name: numpy_helper.to_array(t) for t in graph.initializer})
    assert_matches_onnxruntime(model, batches=(1, 3))
