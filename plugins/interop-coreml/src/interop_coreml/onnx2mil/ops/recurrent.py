"""Recurrent layers: ONNX LSTM, GRU and RNN.

Each direction becomes one MIL ``lstm`` / ``gru`` / ``rnn`` op run forward (a reverse
direction reverses the sequence before and after it, as coremltools' own PyTorch
frontend does), with the weights reordered from ONNX's gate order (LSTM i,o,f,c; GRU
z,r,h) to MIL's (LSTM i,f,o,c; GRU r,o,z) and the two biases summed where MIL has one.

What a MIL op cannot express runs as a ``while_loop`` over the time steps that computes
ONNX's equations literally (the input projection of every step is one ``linear`` before
the loop): GRU ``linear_before_reset=1`` (what PyTorch writes) below iOS18, where MIL's gru
has no ``reset_after``; ``clip``, which ONNX applies to every gate's pre-activation and MIL
only to the cell; LSTM ``input_forget``; HardSigmoid in a GRU or RNN; ``sequence_lens`` (constant or computed at run time;
a batch entry's states stop at its length and its later outputs are zero, and a reverse
direction starts at its own last step, through ``reverse_sequence``); and float16 graphs
below iOS17 (MIL's recurrent ops take float16 from iOS17; the loop keeps float32 inside). Both forms keep the batch and
the sequence length dynamic.

Refused, naming the attribute: activations other than Sigmoid, Tanh, Relu, HardSigmoid
(alpha 0.2, beta 0.5), and Affine (1, 0) and ScaledTanh (1, 1) given explicitly.
"""

from __future__ import annotations

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, cast_to, mb, mil_dtype_name, np, scalar_like,
)
from interop_coreml.onnx2mil.op_converters import register

_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
# ONNX gate blocks in MIL's order: LSTM iofc -> ifoc, GRU zrh -> rhz.
_MIL_GATE_ORDER = {"LSTM": [0, 2, 1, 3], "GRU": [1, 2, 0], "RNN": [0]}
# ONNX activation -> (MIL recurrent activation name, the alpha and beta it computes with).
_ACTIVATIONS = {
    "sigmoid": ("sigmoid", None, None),
    "tanh": ("tanh", None, None),
    "relu": ("relu", None, None),
    "hardsigmoid": ("hard_sigmoid", 0.2, 0.5),
    "affine": ("linear", 1.0, 0.0),
    "scaledtanh": ("tanh", 1.0, 1.0),
}
# Defaults when activation_alpha/beta run out: HardSigmoid's are the operator's (0.2, 0.5) in the
# spec and in onnxruntime; for Affine and ScaledTanh onnxruntime uses 0 where the spec says the
# operators' defaults, so without explicit values the node means two different things.
_DEFAULTS = {"hardsigmoid": (0.2, 0.5)}


def _activations(node, op_type: str, directions: int) -> list[str]:
    """The MIL activation names, one per ONNX activation slot (per direction, in order)."""
    names = attr(node, "activations")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names else \
        _DEFAULT_ACTIVATIONS[op_type] * directions
    alphas = list(attr(node, "activation_alpha") or [])
    betas = list(attr(node, "activation_beta") or [])
    expected = len(_DEFAULT_ACTIVATIONS[op_type]) * directions
    if len(names) != expected:
        raise NodeNotConvertible(f"activations has {len(names)} entries; {op_type} with {directions} direction(s) "
                                 f"takes {expected}")
    result = []
    for name in names:
        entry = _ACTIVATIONS.get(name.lower())
        if entry is None:
            raise NodeNotConvertible(f"activations: {name} is not supported (Core ML's recurrent ops take Sigmoid, "
                                     f"Tanh, Relu, HardSigmoid(0.2, 0.5), Affine(1, 0), ScaledTanh(1, 1))")
        mil_name, alpha, beta = entry
        if alpha is not None:
            # The alpha/beta lists are consumed in order by the activations that take them.
            default = _DEFAULTS.get(name.lower())
            given_alpha = alphas.pop(0) if alphas else (default[0] if default else None)
            given_beta = betas.pop(0) if betas else (default[1] if default else None)
            if given_alpha is None or given_beta is None:
                raise NodeNotConvertible(
                    f"activation_alpha/activation_beta: {name} needs explicit values (onnxruntime takes 0 for a "
                    f"missing one, the ONNX spec the operator's default)")
            if not (np.isclose(given_alpha, alpha) and np.isclose(given_beta, beta)):
                raise NodeNotConvertible(
                    f"activation_alpha/activation_beta: {name}({given_alpha:g}, {given_beta:g}) is not supported; Core "
                    f"ML's recurrent activation computes {name}({alpha:g}, {beta:g})")
        result.append(mil_name)
    return result


def _sequence_lengths(ctx: ConversionContext, node, x):
    """sequence_lens as int32 [batch], or None when absent or equal to a static sequence length throughout."""
    if len(node.input) <= 4 or not node.input[4]:
        return None
    lengths = ctx.const(node, 4)
    steps = x.shape[0]
    if lengths is not None and isinstance(steps, (int, np.integer)) and np.all(np.asarray(lengths) == int(steps)):
        return None  # every sequence is full length: the same as no sequence_lens
    return cast_to(ctx.input(node, 4), "int32")


def _zeros_state(x, hidden: int, dtype: str):
    """A [batch, hidden] zero state; the batch may be dynamic."""
    batch = x.shape[1]
    numpy_dtype = np.float16 if dtype == "fp16" else np.float32
    if isinstance(batch, (int, np.integer)):
        return np.zeros((int(batch), hidden), dtype=numpy_dtype)
    batch_dim = mb.slice_by_index(x=mb.shape(x=x), begin=[1], end=[2])
    shape = mb.concat(values=[batch_dim, np.array([hidden], dtype=np.int32)], axis=0)
    return mb.fill(shape=shape, value=numpy_dtype(0))


def _state(ctx: ConversionContext, node, index: int, x, hidden: int, directions: int, layout: int, dtype: str):
    """The initial state input as one [batch, hidden] value per direction (zeros when absent)."""
    value = ctx.input(node, index)
    if value is None:
        zeros = _zeros_state(x, hidden, dtype)
        return [zeros] * directions
    value = cast_to(value, dtype)
    axis = 1 if layout else 0  # layout 0: [directions, batch, H]; layout 1: [batch, directions, H]
    if isinstance(value, np.ndarray):
        return [np.take(value, d, axis=axis) for d in range(directions)]
    states = []
    for d in range(directions):
        # A slice that drops the direction axis, which may be a symbolic dim (squeeze would keep it).
        begin, end = [0, 0, 0], [0, 0, 0]
        begin[axis], end[axis] = d, d + 1
        end_mask = [i != axis for i in range(3)]
        squeeze_mask = [i == axis for i in range(3)]
        state = mb.slice_by_index(x=value, begin=begin, end=end, end_mask=end_mask, squeeze_mask=squeeze_mask)
        batch = x.shape[1]
        if isinstance(batch, (int, np.integer)) and state.shape[0] != batch:
            state = mb.reshape(x=state, shape=np.array([int(batch), hidden], dtype=np.int32))  # a batch dim declared symbolic
        states.append(state)
    return states


def _gate_blocks(array: np.ndarray, gates: int) -> list[np.ndarray]:
    return np.split(array, gates, axis=0)


class _Direction:
    """One direction's parameters in ONNX layout: W [G*H, I], R [G*H, H], Wb and Rb [G*H], P [3H] or None."""

    def __init__(self, w, r, b, p, hidden: int, gates: int):
        self.w, self.r, self.p = w, r, p
        self.wb = np.zeros(gates * hidden, dtype=w.dtype) if b is None else b[: gates * hidden]
        self.rb = np.zeros(gates * hidden, dtype=w.dtype) if b is None else b[gates * hidden:]


def _reorder(array: np.ndarray, order: list[int], gates: int) -> np.ndarray:
    blocks = _gate_blocks(array, gates)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _native(op_type: str, params: _Direction, x, h0, c0, acts: list[str], hidden: int, linear_before_reset: bool):
    """One forward direction as a MIL op; returns (Y [seq, batch, H], Y_h, Y_c or None)."""
    gates = _GATES[op_type]
    order = _MIL_GATE_ORDER[op_type]
    w_ih, w_hh = _reorder(params.w, order, gates), _reorder(params.r, order, gates)
    if op_type == "LSTM":
        bias = _reorder(params.wb + params.rb, order, gates)
        kwargs = dict(recurrent_activation=acts[0], cell_activation=acts[1], activation=acts[2])
        if params.p is not None:
            p_i, p_o, p_f = np.split(params.p, 3)
            kwargs["peephole"] = np.concatenate([p_i, p_f, p_o])
        y, h, c = mb.lstm(x=x, initial_h=h0, initial_c=c0, weight_ih=w_ih, weight_hh=w_hh, bias=bias,
                          output_sequence=True, **kwargs)
        return y, h, c
    if op_type == "GRU":
        kwargs = dict(recurrent_activation=acts[0], activation=acts[1])
        if linear_before_reset:
            # iOS18's reset_after: bias is the recurrent bias (inside r * (...)), input_bias the input one.
            kwargs.update(reset_after=True, input_bias=_reorder(params.wb, order, gates),
                          bias=_reorder(params.rb, order, gates))
        else:
            kwargs["bias"] = _reorder(params.wb + params.rb, order, gates)
        y, h = mb.gru(x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, output_sequence=True, **kwargs)
        return y, h, None
    y, h = mb.rnn(x=x, initial_h=h0, weight_ih=w_ih, weight_hh=w_hh, bias=params.wb + params.rb,
                  output_sequence=True, activation=acts[0])
    return y, h, None


def _apply(name: str, value):
    if name == "sigmoid":
        return mb.sigmoid(x=value)
    if name == "tanh":
        return mb.tanh(x=value)
    if name == "relu":
        return mb.relu(x=value)
    if name == "hard_sigmoid":
        return mb.sigmoid_hard(x=value, alpha=0.2, beta=0.5)
    return value  # linear


def _loop(op_type: str, params: _Direction, x, h0, c0, acts: list[str], hidden: int, clip,
          linear_before_reset: bool, input_forget: bool, lengths=None):
    """One forward direction as a while_loop computing ONNX's equations; returns (Y, Y_h, Y_c or None).

    With ``lengths``, batch entry b stops at step lengths[b]: its states keep their value and its
    later rows of Y are zero, as onnxruntime computes sequence_lens.

    A float16 recurrence is computed in float32 and Y, Y_h and Y_c are rounded to float16 once, as
    onnxruntime and Core ML's own recurrent layers keep their states: rounding each of the loop's
    dozen ops per step to float16 drifts by several ulps within a few steps (a float16 GRU of six
    steps 7 ulps from the exact state, fuzz seed 21 trial 571, which a later RNN amplified to 9 %).
    """
    gates = _GATES[op_type]
    half = mil_dtype_name(x) == "fp16"
    if half:
        x, h0 = mb.cast(x=x, dtype="fp32"), cast_to(h0, "fp32")
        c0 = None if c0 is None else cast_to(c0, "fp32")

    def cast(array: np.ndarray) -> np.ndarray:  # float16 weights widen exactly
        return array.astype(np.float32)

    wb, rb = cast(params.wb), cast(params.rb)  # summed in float32: a float16 sum would round the bias
    in_bias = wb + rb
    if op_type == "GRU":  # the candidate's recurrent bias stays inside the loop (next to r)
        in_bias = np.concatenate([wb[: 2 * hidden] + rb[: 2 * hidden], wb[2 * hidden:]])
    projected = mb.linear(x=x, weight=cast(params.w), bias=in_bias)  # [seq, batch, G*H]
    steps = mb.gather(x=mb.shape(x=x), indices=0, axis=0)
    h0, c0 = as_var(h0), (as_var(c0) if c0 is not None else None)
    leading = mb.slice_by_index(x=mb.shape(x=x), begin=[0], end=[2])  # [seq, batch]
    shape = mb.concat(values=[leading, np.array([hidden], dtype=np.int32)], axis=0)
    sequence = mb.fill(shape=shape, value=scalar_like(projected, 0))  # Y, filled step by step
    r_weight = cast(params.r)
    low, high = (None, None) if clip is None else (scalar_like(projected, -clip), scalar_like(projected, clip))

    def clipped(value):
        return value if clip is None else mb.clip(x=value, alpha=low, beta=high)

    def cond(step, h, *rest):
        return mb.less(x=step, y=steps)

    def body(step, h, *rest):
        x_t = mb.gather(x=projected, indices=step, axis=0)  # [batch, G*H]
        if op_type == "LSTM":
            c, out = rest
            pre = mb.add(x=x_t, y=mb.linear(x=h, weight=r_weight))
            g_i, g_o, g_f, g_c = mb.split(x=pre, num_splits=4, axis=1)
            p_i = p_o = p_f = None
            if params.p is not None:
                p_i, p_o, p_f = (cast(p) for p in np.split(params.p, 3))
            i = _apply(acts[0], clipped(g_i if p_i is None else mb.add(x=g_i, y=mb.mul(x=c, y=p_i))))
            if input_forget:
                f = mb.sub(x=scalar_like(i, 1), y=i)
            else:
                f = _apply(acts[0], clipped(g_f if p_f is None else mb.add(x=g_f, y=mb.mul(x=c, y=p_f))))
            c_new = mb.add(x=mb.mul(x=f, y=c), y=mb.mul(x=i, y=_apply(acts[1], clipped(g_c))))
            o = _apply(acts[0], clipped(g_o if p_o is None else mb.add(x=g_o, y=mb.mul(x=c_new, y=p_o))))
            h_new = mb.mul(x=o, y=_apply(acts[2], c_new))
        elif op_type == "GRU":
            (out,) = rest
            x_z, x_r, x_h = mb.split(x=x_t, num_splits=3, axis=1)
            r_z, r_r, r_h = np.split(r_weight, 3)
            b_h = cast(params.rb[2 * hidden:])
            z = _apply(acts[0], clipped(mb.add(x=x_z, y=mb.linear(x=h, weight=r_z))))
            r = _apply(acts[0], clipped(mb.add(x=x_r, y=mb.linear(x=h, weight=r_r))))
            if linear_before_reset:
                recurrent = mb.mul(x=r, y=mb.linear(x=h, weight=r_h, bias=b_h))
            else:
                recurrent = mb.linear(x=mb.mul(x=r, y=h), weight=r_h, bias=b_h)
            candidate = _apply(acts[1], clipped(mb.add(x=x_h, y=recurrent)))
            # h' = (1 - z) * candidate + z * h = candidate + z * (h - candidate)
            h_new = mb.add(x=candidate, y=mb.mul(x=z, y=mb.sub(x=h, y=candidate)))
        else:
            (out,) = rest
            h_new = _apply(acts[0], clipped(mb.add(x=x_t, y=mb.linear(x=h, weight=r_weight))))
        if lengths is not None:
            running = mb.expand_dims(x=mb.less(x=step, y=lengths), axes=[1])  # [batch, 1]
            h_new = mb.select(cond=running, a=h_new, b=h)
            if op_type == "LSTM":
                c_new = mb.select(cond=running, a=c_new, b=c)
            step_output = mb.select(cond=running, a=h_new, b=scalar_like(h_new, 0))
        else:
            step_output = h_new
        index = mb.expand_dims(x=step, axes=[0])
        out = mb.scatter(data=out, indices=index, updates=mb.expand_dims(x=step_output, axes=[0]), axis=0, mode="update")
        following = mb.add(x=step, y=np.int32(1))
        if op_type == "LSTM":
            return following, h_new, c_new, out
        return following, h_new, out

    loop_vars = [np.int32(0), h0] + ([c0] if op_type == "LSTM" else []) + [sequence]
    results = mb.while_loop(_cond=cond, _body=body, loop_vars=tuple(as_var(v) for v in loop_vars))
    h, y = results[1], results[-1]
    c = results[2] if op_type == "LSTM" else None
    if lengths is not None:
        # An empty sequence's final states are zero in onnxruntime, not the initial ones (the spec is silent).
        nonempty = mb.expand_dims(x=mb.greater(x=lengths, y=np.int32(0)), axes=[1])
        h = mb.select(cond=nonempty, a=h, b=scalar_like(h, 0))
        c = None if c is None else mb.select(cond=nonempty, a=c, b=scalar_like(c, 0))
    if half:
        y, h, c = cast_to(y, "fp16"), cast_to(h, "fp16"), (None if c is None else cast_to(c, "fp16"))
    return y, h, c


def _convert(ctx: ConversionContext, node, op_type: str) -> None:
    import coremltools as ct

    gates = _GATES[op_type]
    x = as_var(ctx.input(node, 0))
    dtype = mil_dtype_name(x)
    if x.rank != 3:
        raise NodeNotConvertible(f"X has rank {x.rank}; {op_type} takes [seq, batch, input]")
    layout = int(attr(node, "layout", 0))
    if layout:
        x = mb.transpose(x=x, perm=[1, 0, 2])  # [batch, seq, input] -> [seq, batch, input]
    direction = attr(node, "direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise NodeNotConvertible(f"direction {direction!r} is not forward, reverse or bidirectional")
    directions = 2 if direction == "bidirectional" else 1
    w = ctx.require_const(node, 1, f"{op_type} W")
    r = ctx.require_const(node, 2, f"{op_type} R")
    b = ctx.const(node, 3)
    if len(node.input) > 3 and node.input[3] and b is None:
        ctx.require_const(node, 3, f"{op_type} B")
    hidden = int(attr(node, "hidden_size", r.shape[-1]))
    if w.shape[1] != gates * hidden or r.shape[-1] != hidden:
        raise NodeNotConvertible(f"hidden_size {hidden} does not match W {list(w.shape)} and R {list(r.shape)}")
    features = x.shape[-1]
    if isinstance(features, (int, np.integer)) and int(features) != w.shape[-1]:
        # Core ML's recurrent ops do not check it, so the package would fail at its first prediction. The
        # two disagree when an earlier op's output size, as the ONNX spec defines it, is not the size the
        # model's author (or ONNX shape inference) expected, e.g. a SAME ConvTranspose with a kernel
        # shorter than its stride (docs/coreml.md).
        raise NodeNotConvertible(f"X has {int(features)} features per step as the ONNX spec computes it, but W "
                                 f"{list(w.shape)} takes {w.shape[-1]}: the model is inconsistent; fix the op "
                                 "that produces X or W")
    lengths = _sequence_lengths(ctx, node, x)
    acts = _activations(node, op_type, directions)
    per_direction = len(acts) // directions
    clip = attr(node, "clip")
    linear_before_reset = op_type == "GRU" and bool(attr(node, "linear_before_reset", 0))
    input_forget = op_type == "LSTM" and bool(attr(node, "input_forget", 0))
    peepholes = None
    if op_type == "LSTM":
        peepholes = ctx.const(node, 7)
        if len(node.input) > 7 and node.input[7] and peepholes is None:
            ctx.require_const(node, 7, "LSTM P")
    initial_h = _state(ctx, node, 5, x, hidden, directions, layout, dtype)
    initial_c = _state(ctx, node, 6, x, hidden, directions, layout, dtype) if op_type == "LSTM" else [None] * directions

    native = clip is None and not input_forget and lengths is None and not (
        dtype == "fp16" and ctx.target < ct.target.iOS17)
    if linear_before_reset and ctx.target < ct.target.iOS18:
        native = False
    if op_type != "LSTM" and "hard_sigmoid" in acts:
        # coremltools validates "hard_sigmoid" for lstm only, and its rnn docs spell it "sigmoid_hard":
        # which name Core ML's gru/rnn accept is not documented, so compute it in the loop.
        native = False
    to_dtype = (lambda a: a.astype(np.float16)) if dtype == "fp16" else (lambda a: np.asarray(a, dtype=np.float32))
    ys, hs, cs = [], [], []
    for d in range(directions):
        params = _Direction(to_dtype(w[d]), to_dtype(r[d]), None if b is None else to_dtype(b[d]),
                            None if peepholes is None else to_dtype(peepholes[d]), hidden, gates)
        reverse = direction == "reverse" or d == 1
        def backwards(value):
            # With sequence_lens, a reverse direction starts at each sequence's own last step.
            if lengths is None:
                return mb.reverse(x=value, axes=[0])
            return mb.reverse_sequence(x=value, lengths=lengths, seq_axis=0, batch_axis=1)

        steps = backwards(x) if reverse else x
        d_acts = acts[d * per_direction:(d + 1) * per_direction]
        if native:
            y, h, c = _native(op_type, params, steps, initial_h[d], initial_c[d], d_acts, hidden, linear_before_reset)
        else:
            y, h, c = _loop(op_type, params, steps, initial_h[d], initial_c[d], d_acts, hidden, clip,
                            linear_before_reset, input_forget, lengths)
        ys.append(backwards(y) if reverse else y)
        hs.append(h)
        cs.append(c)

    def stacked(values, axis, index):
        if directions == 1:
            return mb.expand_dims(x=values[0], axes=[axis], name=ctx.out_name(node, index))
        return mb.stack(values=values, axis=axis, name=ctx.out_name(node, index))

    if len(node.output) > 0 and node.output[0]:
        # Y: layout 0 [seq, directions, batch, H]; layout 1 [batch, seq, directions, H].
        y = stacked(ys, 1, 0) if not layout else mb.transpose(
            x=mb.stack(values=ys, axis=1) if directions > 1 else mb.expand_dims(x=ys[0], axes=[1]),
            perm=[2, 0, 1, 3], name=ctx.out_name(node, 0))
        ctx.output(node, 0, y)
    state_axis = 1 if layout else 0
    if len(node.output) > 1 and node.output[1]:
        ctx.output(node, 1, stacked(hs, state_axis, 1))
    if op_type == "LSTM" and len(node.output) > 2 and node.output[2]:
        ctx.output(node, 2, stacked(cs, state_axis, 2))


@register("LSTM", since_version=7)
def convert_lstm(ctx: ConversionContext, node) -> None:
    _convert(ctx, node, "LSTM")


@register("GRU", since_version=7)
def convert_gru(ctx: ConversionContext, node) -> None:
    _convert(ctx, node, "GRU")


@register("RNN", since_version=7)
def convert_rnn(ctx: ConversionContext, node) -> None:
    _convert(ctx, node, "RNN")
