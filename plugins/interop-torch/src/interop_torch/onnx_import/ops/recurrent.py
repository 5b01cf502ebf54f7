"""LSTM, GRU and RNN as nn.LSTM / nn.GRU / nn.RNN owning their weights.

ONNX stacks the weights of both directions in one tensor and orders the gates differently:
LSTM (i, o, f, c) where torch has (i, f, g, o), GRU (z, r, h) where torch has (r, z, n).
The importer splits and reorders them into torch's ``weight_ih_l0``/``weight_hh_l0``/biases
(same element count) and reshapes the outputs into ONNX's layouts. What torch's layers do
not compute is refused: custom activations, clipping, peepholes, coupled input-forget
gates, ragged ``sequence_lens``, and GRU's default ``linear_before_reset=0``.
"""

from __future__ import annotations

import numpy as np
import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, Value
from interop_torch.onnx_import.ops._common import dtype_kw
from interop_torch.onnx_import.module_table import converter

#: For each op: torch's gate order as indices into ONNX's gate blocks, and the default activations.
_GATES = {"LSTM": ([0, 2, 3, 1], ["Sigmoid", "Tanh", "Tanh"]), "GRU": ([1, 0, 2], ["Sigmoid", "Tanh"]),
          "RNN": ([0], ["Tanh"])}
_LAYERS = {"LSTM": "LSTM", "GRU": "GRU", "RNN": "RNN"}


def _reorder(array: np.ndarray, order: list[int]) -> np.ndarray:
    blocks = np.split(array, len(order), axis=0)
    return np.ascontiguousarray(np.concatenate([blocks[i] for i in order], axis=0))


def _check_supported(ctx: ImportContext, node: onnx.NodeProto, x: Value, directions: int) -> None:
    op = node.op_type
    activations = ctx.attr(node, "activations")
    defaults = _GATES[op][1] * directions
    if activations and [a.lower() for a in activations] != [a.lower() for a in defaults]:
        if not (op == "RNN" and [a.lower() for a in activations] == ["relu"] * directions):
            raise NodeNotConvertible(f"activations {activations} (torch's {op} uses {defaults[:len(defaults) // directions]})")
    if ctx.attr(node, "clip") is not None:
        raise NodeNotConvertible("clip (torch's recurrent layers do not clip)")
    if int(ctx.attr(node, "input_forget", 0)):
        raise NodeNotConvertible("input_forget=1 (coupled gates)")
    if op == "GRU" and not int(ctx.attr(node, "linear_before_reset", 0)):
        raise NodeNotConvertible("linear_before_reset=0 (torch's GRU applies the reset gate after the linear map)")
    if op == "LSTM" and ctx.input(node, 7) is not None:
        raise NodeNotConvertible("peephole weights (P)")
    lengths = ctx.input(node, 4)
    if lengths is not None:
        known = ctx.ints(lengths)
        static = ctx.static_shape(x)
        time_axis = 1 if int(ctx.attr(node, "layout", 0)) else 0
        steps = static[time_axis] if static is not None else None
        if known is None or not isinstance(steps, int) or any(n != steps for n in known):
            raise NodeNotConvertible("sequence_lens shorter than the sequence (packed sequences)")


def _recurrent(ctx: ImportContext, node: onnx.NodeProto) -> None:
    op = node.op_type
    x, w, r, b = (ctx.input(node, i) for i in range(4))
    assert x is not None and w is not None and r is not None
    direction = ctx.attr(node, "direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    _check_supported(ctx, node, x, directions)
    if not (ctx.owns(w) and ctx.owns(r) and (b is None or ctx.owns(b))):
        raise NodeNotConvertible("its weights must be constants only this node uses")
    hidden = int(ctx.attr(node, "hidden_size", w.array.shape[1] // len(_GATES[op][0])))
    batch_first = bool(int(ctx.attr(node, "layout", 0)))
    order = _GATES[op][0]
    state = {}
    for d in range(directions):
        suffix = "_reverse" if d == 1 else ""
        state[f"weight_ih_l0{suffix}"] = (_reorder(w.array[d], order), w, True)
        state[f"weight_hh_l0{suffix}"] = (_reorder(r.array[d], order), r, True)
        if b is not None:
            half = b.array.shape[1] // 2
            state[f"bias_ih_l0{suffix}"] = (_reorder(b.array[d, :half], order), b, True)
            state[f"bias_hh_l0{suffix}"] = (_reorder(b.array[d, half:], order), b, True)
    options = ""
    if b is None:
        options += ", bias=False"
    if batch_first:
        options += ", batch_first=True"
    if directions == 2:
        options += ", bidirectional=True"
    activations = ctx.attr(node, "activations")
    if op == "RNN" and activations and activations[0].lower() == "relu":
        options += ', nonlinearity="relu"'
    layer = ctx.add_layer(f"nn.{_LAYERS[op]}({w.array.shape[2]}, {hidden}{options}{dtype_kw(w.array)})", state, w, r, b)
    for key in state:
        ctx.state[f"{layer}.{key}"].transform.append(
            f"direction {1 if key.endswith('_reverse') else 0}, gates reordered to torch's order")
    time_axis = 1 if batch_first else 0
    x_expr = ctx.t(x)
    reverse = direction == "reverse"
    if reverse:
        x_expr = f"{x_expr}.flip({time_axis})"
    states = []
    for index in ((5, 6) if op == "LSTM" else (5,)):
        value = ctx.input(node, index)
        if value is not None:
            expr = ctx.t(value)
            states.append(f"{expr}.transpose(0, 1)" if batch_first else expr)
    if states and len(states) != (2 if op == "LSTM" else 1):
        raise NodeNotConvertible("initial_h without initial_c (torch takes both)")
    call = f"self.{layer}({x_expr}" + (f", ({', '.join(states)})" if op == "LSTM" and states else
                                      f", {states[0]}" if states else "") + ")"
    base = node.output[0] or f"{layer}_output"
    raw = [f"{base}__all", f"{base}__h"] + ([f"{base}__c"] if op == "LSTM" else [])
    if op == "LSTM":
        y_var, h_var, c_var = (ctx.var(name) for name in raw)
        ctx.lines.append(f"{y_var}, ({h_var}, {c_var}) = {call}")
        finals = [h_var, c_var]
    else:
        y_var, h_var = ctx.emit(raw, call)
        finals = [h_var]
    outputs = list(node.output) + [""] * 3
    if outputs[0]:
        y_expr = f"{y_var}.flip({time_axis})" if reverse else y_var
        split = f"{y_expr}.unflatten(-1, ({directions}, {hidden}))"
        ctx.emit(outputs[0], split if batch_first else f"{split}.permute(0, 2, 1, 3)")
    for onnx_name, var in zip(outputs[1:3], finals):
        if onnx_name:
            ctx.emit(onnx_name, f"{var}.transpose(0, 1)" if batch_first else var)


converter("LSTM", 1, 7, 14, 22)(_recurrent)
converter("GRU", 1, 3, 7, 14, 22)(_recurrent)
converter("RNN", 1, 7, 14, 22)(_recurrent)
