"""LSTM, GRU and RNN -> keras.layers.LSTM / GRU / SimpleRNN (Bidirectional for both directions).

The imported layer is Keras' own recurrent layer, so the model trains like any Keras
RNN. What the node's equations need and Keras' layers do not express is refused by
name: ``clip``, ``input_forget``, peepholes (``P``), activations other than the
defaults (SimpleRNN also takes Relu and Sigmoid), and ``sequence_lens`` shorter than
the sequence.

Weights, per direction:

- ONNX ``W`` is ``[G*H, input]`` and ``R`` ``[G*H, H]`` with the gates stacked in ONNX's
  order; Keras' ``kernel`` is ``[input, G*H]`` and ``recurrent_kernel`` ``[H, G*H]`` in
  Keras' order. LSTM gates are i, o, f, c in ONNX and i, f, c, o in Keras; GRU is
  z, r, h in both.
- ``B`` holds ``Wb`` then ``Rb``. Keras' LSTM, SimpleRNN and GRU(reset_after=False)
  have one bias, so it is ``Wb + Rb`` (the same function, with fewer trainable
  numbers than the ONNX file); GRU with ``linear_before_reset=1`` (PyTorch's GRU)
  becomes ``reset_after=True``, whose ``(2, 3H)`` bias keeps both.

Layouts: Keras runs batch-first, so ``layout=0`` (seq, batch, input) is read through
the importer's per-tensor layout; ``Y`` comes out of Keras as (batch, seq, dirs, H)
and ``Y_h``/``Y_c`` as (batch, dirs, H), labelled with the ONNX axes they hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop_keras.onnx_import.context import Constant, NodeContext, NotConvertible
from interop_keras.onnx_import.layer_table import converter
from interop_keras.onnx_import.layout import identity
from interop_keras.onnx_import.ops._common import float_array

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh"), "RNN": ("tanh",)}
_RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid")
#: Keras' gate blocks as ONNX gate indices (LSTM: Keras i, f, c, o = ONNX 0, 2, 3, 1).
_KERAS_ORDER = {"LSTM": (0, 2, 3, 1), "GRU": (0, 1, 2), "RNN": (0,)}
#: ONNX input positions of the initial states.
_STATE_INPUTS = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}


SUMMED_BIAS_NOTE = ("Keras' LSTM, SimpleRNN and GRU(reset_after=False) keep one bias where ONNX's B (and PyTorch) "
                    "has two: it is Wb + Rb (the same function), so the Keras model has one bias vector fewer per "
                    "recurrent layer and direction to train than the ONNX file")


class _Directions:
    """The Keras variables of one ONNX tensor, one per direction, read together (for the weight binding)."""

    def __init__(self, variables: list[Any]):
        self.variables = variables

    def numpy(self) -> np.ndarray:
        return np.stack([np.asarray(v.numpy()) for v in self.variables])


def _blocks(matrix: np.ndarray, order: tuple[int, ...], hidden: int) -> np.ndarray:
    """The gate blocks of ``matrix``'s first axis in ``order``."""
    return np.concatenate([matrix[g * hidden:(g + 1) * hidden] for g in order], axis=0)


def _unblocks(matrix: np.ndarray, order: tuple[int, ...], hidden: int) -> np.ndarray:
    out = np.empty_like(matrix)
    for k, g in enumerate(order):
        out[g * hidden:(g + 1) * hidden] = matrix[k * hidden:(k + 1) * hidden]
    return out


def _check_attributes(ctx: NodeContext, op: str) -> str:
    """Refuse what Keras' layers cannot express; return the activation Keras uses."""
    if ctx.attr("clip") is not None:
        raise NotConvertible("clip (Keras' recurrent layers do not clip the gates)")
    if op == "LSTM" and int(ctx.attr("input_forget", 0) or 0):
        raise NotConvertible("input_forget=1 (coupled input and forget gates)")
    if op == "LSTM" and ctx.has_input(7):
        raise NotConvertible("peepholes (input P; Keras' LSTM has none)")
    activations = tuple(str(a.decode() if isinstance(a, bytes) else a).lower() for a in ctx.attr("activations", ()) or ())
    default = _DEFAULT_ACTIVATIONS[op]
    dirs = 2 if ctx.attr("direction", "forward") == "bidirectional" else 1
    if activations and len(activations) != len(default) * dirs:
        raise NotConvertible(f"{len(activations)} activations for {dirs} direction(s)")
    per_direction = [activations[d * len(default):(d + 1) * len(default)] for d in range(dirs)] if activations else []
    if any(p != per_direction[0] for p in per_direction):
        raise NotConvertible("different activations per direction")
    if ctx.attr("activation_alpha") or ctx.attr("activation_beta"):
        raise NotConvertible("activation_alpha/activation_beta (non-default activations)")
    chosen = per_direction[0] if per_direction else default
    if op == "RNN":
        if chosen[0] not in _RNN_ACTIVATIONS:
            raise NotConvertible(f"activation {chosen[0]} (SimpleRNN takes Tanh, Relu or Sigmoid)")
        return chosen[0]
    if chosen != default:
        raise NotConvertible(f"activations {', '.join(chosen)} (Keras' {op} uses the defaults "
                             f"{', '.join(default)})")
    return "tanh"


def _check_sequence_lens(ctx: NodeContext, seq: Any) -> None:
    if not ctx.has_input(4):
        return
    if not ctx.is_constant(4):
        raise NotConvertible("sequence_lens computed at run time (Keras runs every sequence to its full length)")
    lens = np.asarray(ctx.constant(4, "sequence_lens").value).reshape(-1)
    if not isinstance(seq, (int, np.integer)):
        raise NotConvertible("sequence_lens with a sequence length known only at run time (Keras runs every "
                             "sequence to its full length)")
    if np.any(lens != seq):
        raise NotConvertible("sequence_lens other than the full sequence length")


def _initial_states(ctx: NodeContext, op: str, x: Any, dirs: int, hidden: int, layout_attr: int) -> list[Any] | None:
    """Keras initial states, per direction then per state (h, c), or None for zeros."""
    import keras

    from interop_keras import layers as interop_layers

    present = [i for i in _STATE_INPUTS[op] if ctx.has_input(i)]
    if not present:
        return None
    if all(ctx.is_constant(i) and not np.any(float_array(ctx.constant(i)) != 0) for i in present):
        return None  # zeros: Keras' default
    by_state: list[list[Any]] = []
    for index in _STATE_INPUTS[op]:
        if not ctx.has_input(index):
            # A missing state is zeros, as a constant: one state given, the other not.
            value = np.zeros((dirs, 1, hidden) if layout_attr == 0 else (1, dirs, hidden), np.float32)
            by_state.append(_constant_states(ctx, value, x, dirs, hidden, layout_attr, index))
        elif ctx.is_constant(index):
            value = float_array(ctx.constant(index, "initial state"))
            by_state.append(_constant_states(ctx, value, x, dirs, hidden, layout_attr, index))
        else:
            state = ctx.value(index)
            if state.rank != 3:
                raise NotConvertible(f"initial state of rank {state.rank}")
            state = ctx.with_sizes(state, {0 if layout_attr == 0 else 1: dirs, 2: hidden})
            tensor = ctx.to_layout(state, (1, 0, 2) if layout_attr == 0 else identity(3))  # (batch, dirs, H)
            per_direction = []
            for d in range(dirs):
                part = tensor if dirs == 1 else interop_layers.Slice(
                    [d], [d + 1], [1], [1], name=ctx.name(f"state{index}_dir{d}"))(tensor)
                per_direction.append(keras.layers.Reshape((hidden,), name=ctx.name(f"state{index}_{d}"))(part))
            by_state.append(per_direction)
    return [by_state[s][d] for d in range(dirs) for s in range(len(by_state))]


def _constant_states(ctx: NodeContext, value: np.ndarray, x: Any, dirs: int, hidden: int, layout_attr: int,
                     index: int) -> list[Any]:
    """A fixed initial state broadcast to the run's batch: per direction, (batch, H)."""
    import keras

    from interop_keras import layers as interop_layers

    if value.ndim != 3:
        raise NotConvertible(f"initial state of rank {value.ndim}")
    value = value if layout_attr == 0 else np.transpose(value, (1, 0, 2))  # (dirs, batch, H)
    if value.shape[0] != dirs or value.shape[2] != hidden:
        raise NotConvertible(f"initial state of shape {value.shape} for {dirs} direction(s) of {hidden} units")
    # A (batch, 1) tensor of the input to broadcast against: the first element of each sequence.
    anchor = interop_layers.Slice([0, 0], [1, 1], [1, 2], [1, 1], name=ctx.name(f"state{index}_anchor"))(x)
    anchor = keras.layers.Reshape((1,), name=ctx.name(f"state{index}_batch"))(anchor)
    out = []
    for d in range(dirs):
        layer = interop_layers.Expand(constant_shape=list(value.shape[1:]), name=ctx.name(f"state{index}_{d}"))
        out.append(layer(anchor))
        layer.constant.assign(value[d].astype(np.float32))
    return out


def _make_layer(op: str, hidden: int, activation: str, reset_after: bool, use_bias: bool, backwards: bool,
                name: str) -> Any:
    import keras

    common = {"return_sequences": True, "return_state": True, "go_backwards": backwards, "use_bias": use_bias,
              "name": name}
    if op == "LSTM":
        return keras.layers.LSTM(hidden, activation="tanh", recurrent_activation="sigmoid",
                                 unit_forget_bias=False, **common)
    if op == "GRU":
        return keras.layers.GRU(hidden, activation="tanh", recurrent_activation="sigmoid", reset_after=reset_after,
                                **common)
    return keras.layers.SimpleRNN(hidden, activation=activation, **common)


def _set_weights(ctx: NodeContext, op: str, cells: list[Any], w: Constant, r: Constant, b: Constant | None,
                 hidden: int, reset_after: bool) -> None:
    """Copy W, R and B into the cells' kernels (gate order and bias rule of the module docstring)."""
    order = _KERAS_ORDER[op]
    gates = _GATES[op] * hidden
    w_value, r_value = float_array(w), float_array(r)
    for d, cell in enumerate(cells):
        cell.kernel.assign(_blocks(w_value[d], order, hidden).T)
        cell.recurrent_kernel.assign(_blocks(r_value[d], order, hidden).T)
    ctx.bind(w, _Directions([c.kernel for c in cells]),
             lambda a: np.stack([_unblocks(k.T, order, hidden) for k in a]))
    ctx.bind(r, _Directions([c.recurrent_kernel for c in cells]),
             lambda a: np.stack([_unblocks(k.T, order, hidden) for k in a]))
    if b is None:
        return
    b_value = float_array(b)
    for d, cell in enumerate(cells):
        wb, rb = b_value[d, :gates], b_value[d, gates:]
        if reset_after:
            cell.bias.assign(np.stack([_blocks(wb, order, hidden), _blocks(rb, order, hidden)]))
        else:
            cell.bias.assign(_blocks(wb + rb, order, hidden))
    if reset_after:
        ctx.bind(b, _Directions([c.bias for c in cells]),
                 lambda a: np.stack([np.concatenate([_unblocks(p[0], order, hidden), _unblocks(p[1], order, hidden)])
                                     for p in a]))
    else:  # the summed bias goes back as Wb (Rb zero): the same function
        ctx.bind(b, _Directions([c.bias for c in cells]),
                 lambda a: np.stack([np.concatenate([_unblocks(p, order, hidden), np.zeros_like(p)]) for p in a]))


@converter(("LSTM", "GRU", "RNN"), versions=(7, 14, 22))
def recurrent(ctx: NodeContext) -> None:
    import keras

    op = ctx.op_type
    activation = _check_attributes(ctx, op)
    direction = ctx.attr("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise NotConvertible(f"direction {direction!r}")
    dirs = 2 if direction == "bidirectional" else 1
    layout_attr = int(ctx.attr("layout", 0) or 0) if ctx.since >= 14 else 0
    if not (ctx.is_constant(1) and ctx.is_constant(2)):
        raise NotConvertible("W or R computed at run time (Keras' recurrent layers hold fixed kernels)")
    w, r = ctx.constant(1, "W"), ctx.constant(2, "R")
    b = ctx.constant(3, "B") if ctx.has_input(3) else None
    hidden = int(r.value.shape[-1])
    gates = _GATES[op] * hidden
    if w.value.shape[:2] != (dirs, gates) or r.value.shape != (dirs, gates, hidden) or (
            b is not None and b.value.shape != (dirs, 2 * gates)):
        raise NotConvertible("W, R or B do not match the direction and hidden size")
    reset_after = op == "GRU" and bool(int(ctx.attr("linear_before_reset", 0) or 0))
    x = ctx.value(0)
    if x.rank != 3:
        raise NotConvertible(f"X of rank {x.rank}")
    x = ctx.with_sizes(x, {2: int(w.value.shape[2])})
    _check_sequence_lens(ctx, ctx.importer.dims(ctx.node.input[0], x)[0 if layout_attr == 0 else 1])
    x_tensor = ctx.to_layout(x, (1, 0, 2) if layout_attr == 0 else identity(3))  # (batch, seq, input)
    states = _initial_states(ctx, op, x_tensor, dirs, hidden, layout_attr)
    name = ctx.name(weights=[ctx.node.input[1]])
    use_bias = b is not None
    state_count = 2 if op == "LSTM" else 1
    if dirs == 2:
        layer = keras.layers.Bidirectional(
            _make_layer(op, hidden, activation, reset_after, use_bias, False, f"{name}.forward"),
            merge_mode=None, name=name)
        outputs = layer(x_tensor, initial_state=states) if states else layer(x_tensor)
        sequences = [outputs[0], outputs[1]]
        finals = [list(outputs[2:2 + state_count]), list(outputs[2 + state_count:])]
        cells = [layer.forward_layer.cell, layer.backward_layer.cell]
    else:
        layer = _make_layer(op, hidden, activation, reset_after, use_bias, direction == "reverse", name)
        outputs = layer(x_tensor, initial_state=states) if states else layer(x_tensor)
        sequence = outputs[0]
        if direction == "reverse":  # go_backwards yields the steps last to first; ONNX indexes Y by time
            from interop_keras import layers as interop_layers

            sequence = interop_layers.Slice([-1], [-(2 ** 62)], [1], [-1], name=ctx.name("in_time_order"))(sequence)
        sequences = [sequence]
        finals = [list(outputs[1:])]
        cells = [layer.cell]
    _set_weights(ctx, op, cells, w, r, b, hidden, reset_after)
    if b is not None and not reset_after:
        ctx.note(SUMMED_BIAS_NOTE)
    node_outputs = ctx.node.output
    if len(node_outputs) > 0 and ctx.importer.is_used(node_outputs[0]):
        parts = [keras.layers.Reshape((-1, 1, hidden), name=ctx.name(f"Y_dir{d}"))(s) for d, s in enumerate(sequences)]
        y = parts[0] if dirs == 1 else keras.layers.Concatenate(axis=2, name=ctx.name("Y"))(parts)
        ctx.output(y, (2, 0, 1, 3) if layout_attr == 0 else identity(4), 0)  # Keras (batch, seq, dirs, H)
    for index in range(1, 1 + state_count):
        if len(node_outputs) > index and ctx.importer.is_used(node_outputs[index]):
            label = "Y_h" if index == 1 else "Y_c"
            parts = [keras.layers.Reshape((1, hidden), name=ctx.name(f"{label}_dir{d}"))(f[index - 1])
                     for d, f in enumerate(finals)]
            state = parts[0] if dirs == 1 else keras.layers.Concatenate(axis=1, name=ctx.name(label))(parts)
            ctx.output(state, (1, 0, 2) if layout_attr == 0 else identity(3), index)  # Keras (batch, dirs, H)
