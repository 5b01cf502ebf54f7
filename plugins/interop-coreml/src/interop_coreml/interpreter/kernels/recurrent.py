"""Kernels of MIL recurrent layers: rnn, gru (iOS15/iOS17/iOS18 reset_after) and lstm.

Shapes follow the op docs: x is [seq, batch, input]; states are [batch, DIRECTIONS*H].
A single "reverse" direction returns its sequence in processing order (last
time step first), as coremltools' reference tests do; a bidirectional lstm
aligns the backward outputs with the input time steps.
"""

from __future__ import annotations

import numpy as np

from .activation import _sigmoid
from .linear import parallel_matmul
from .table import kernel

_ACTIVATIONS = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    # With the op's default alpha/beta (1, 1), scaled_tanh is tanh.
    "scaled_tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0),
    "linear": lambda v: v,
    "hard_sigmoid": lambda v: np.minimum(np.maximum(0.2 * v + 0.5, 0), 1),
}


def _activation(name):
    try:
        return _ACTIVATIONS[str(name)]
    except KeyError:
        raise ValueError(f"unsupported recurrent activation {name!r}") from None


def _finish(outputs, output_sequence):
    sequence = np.stack(outputs)
    return sequence if bool(output_sequence) else sequence[-1:]


@kernel("rnn")
def rnn(ctx, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward", output_sequence=False,
        activation="tanh"):
    x = np.asarray(x)
    act = _activation(activation)
    steps = x[::-1] if direction == "reverse" else x
    projected = parallel_matmul(steps, np.asarray(weight_ih).T) + (0 if bias is None else bias)
    h = np.asarray(initial_h)
    outputs = []
    for t in range(len(steps)):
        h = act(projected[t] + h @ np.asarray(weight_hh).T)
        outputs.append(h)
    return _finish(outputs, output_sequence), h


@kernel("gru")
def gru(ctx, x, initial_h, weight_ih, weight_hh, bias=None, direction="forward", output_sequence=False,
        recurrent_activation="sigmoid", activation="tanh", reset_after=False, input_bias=None):
    x = np.asarray(x)
    gate_act, out_act = _activation(recurrent_activation), _activation(activation)
    hidden = np.asarray(weight_hh).shape[1]
    steps = x[::-1] if direction == "reverse" else x
    # Gate blocks are ordered [reset, output (new), update].
    projected = parallel_matmul(steps, np.asarray(weight_ih).T)
    if input_bias is not None:
        projected = projected + input_bias
    recurrent_bias = np.zeros(3 * hidden, dtype=projected.dtype) if bias is None else np.asarray(bias)
    w_hh = np.asarray(weight_hh)
    w_r, w_o, w_z = w_hh[:hidden], w_hh[hidden : 2 * hidden], w_hh[2 * hidden :]
    b_r, b_o, b_z = np.split(recurrent_bias, 3)
    h = np.asarray(initial_h)
    outputs = []
    for t in range(len(steps)):
        x_r, x_o, x_z = np.split(projected[t], 3, axis=-1)
        r = gate_act(x_r + h @ w_r.T + b_r)
        z = gate_act(x_z + h @ w_z.T + b_z)
        if bool(reset_after):
            o = out_act(x_o + r * (h @ w_o.T + b_o))
        else:
            o = out_act(x_o + (r * h) @ w_o.T + b_o)
        h = (1 - z) * o + z * h
        outputs.append(h)
    return _finish(outputs, output_sequence), h


def _lstm_direction(steps, h, c, weight_ih, weight_hh, bias, peephole, acts, clip):
    gate_act, cell_act, out_act = acts
    hidden = h.shape[-1]
    projected = parallel_matmul(steps, np.asarray(weight_ih).T) + (0 if bias is None else bias)
    peep = np.zeros(3 * hidden, dtype=projected.dtype) if peephole is None else np.asarray(peephole)
    p_i, p_f, p_o = np.split(peep, 3)
    outputs = []
    for t in range(len(steps)):
        # Gate blocks are ordered [input, forget, output, cell].
        gates = projected[t] + h @ np.asarray(weight_hh).T
        g_i, g_f, g_o, g_z = np.split(gates, 4, axis=-1)
        i = gate_act(g_i + p_i * c)
        f = gate_act(g_f + p_f * c)
        c = f * c + i * cell_act(g_z)
        if clip is not None:
            c = np.clip(c, -float(clip), float(clip))
        o = gate_act(g_o + p_o * c)
        h = o * out_act(c)
        outputs.append(h)
    return outputs, h, c


@kernel("lstm")
def lstm(ctx, x, initial_h, initial_c, weight_ih, weight_hh, bias=None, peephole=None, weight_ih_back=None,
         weight_hh_back=None, bias_back=None, peephole_back=None, direction="forward", output_sequence=False,
         recurrent_activation="sigmoid", cell_activation="tanh", activation="tanh", clip=None):
    x = np.asarray(x)
    acts = (_activation(recurrent_activation), _activation(cell_activation), _activation(activation))
    h0, c0 = np.asarray(initial_h), np.asarray(initial_c)
    if direction != "bidirectional":
        steps = x[::-1] if direction == "reverse" else x
        outputs, h, c = _lstm_direction(steps, h0, c0, weight_ih, weight_hh, bias, peephole, acts, clip)
        return _finish(outputs, output_sequence), h, c
    hidden = h0.shape[-1] // 2
    forward, h_f, c_f = _lstm_direction(
        x, h0[:, :hidden], c0[:, :hidden], weight_ih, weight_hh, bias, peephole, acts, clip
    )
    backward, h_b, c_b = _lstm_direction(
        x[::-1], h0[:, hidden:], c0[:, hidden:], weight_ih_back, weight_hh_back, bias_back, peephole_back, acts, clip
    )
    backward = backward[::-1]  # align with the input time steps
    if bool(output_sequence):
        sequence = np.concatenate([np.stack(forward), np.stack(backward)], axis=-1)
    else:
        sequence = np.concatenate([forward[-1], backward[0]], axis=-1)[None]
    return sequence, np.concatenate([h_f, h_b], axis=-1), np.concatenate([c_f, c_b], axis=-1)
