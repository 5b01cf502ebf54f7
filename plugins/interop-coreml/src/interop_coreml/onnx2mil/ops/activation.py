"""Activation functions and the softmax family."""

from __future__ import annotations

from interop_coreml.onnx2mil.context import ConversionContext
from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    as_var, attr, cast_to, mb, mil_dtype_name, norm_axis, np, scalar_like, unify,
)
from interop_coreml.onnx2mil.op_converters import register


def _x(ctx: ConversionContext, node):
    return as_var(ctx.input(node, 0))


# Activations that map one to one onto a MIL op without attributes.
_DIRECT = {"Relu": mb.relu, "Sigmoid": mb.sigmoid, "Softplus": mb.softplus, "Softsign": mb.softsign}
for _op, _fn in _DIRECT.items():
    register(_op)(lambda ctx, node, _fn=_fn: ctx.output(node, 0, _fn(x=_x(ctx, node), name=ctx.out_name(node))))


@register("LeakyRelu")
def convert_leaky_relu(ctx, node):
    x = _x(ctx, node)
    ctx.output(node, 0, mb.leaky_relu(x=x, alpha=scalar_like(x, attr(node, "alpha", 0.01)), name=ctx.out_name(node)))


@register("PRelu")
def convert_prelu(ctx, node):
    # max(x, 0) + slope * min(x, 0) broadcasts any slope shape ONNX allows.
    x = _x(ctx, node)
    x, slope = unify(x, ctx.input(node, 1))
    zero = scalar_like(x, 0)
    neg = mb.mul(x=mb.minimum(x=x, y=zero), y=slope)
    ctx.output(node, 0, mb.add(x=mb.maximum(x=x, y=zero), y=neg, name=ctx.out_name(node)))


@register("Elu")
def convert_elu(ctx, node):
    x = _x(ctx, node)
    ctx.output(node, 0, mb.elu(x=x, alpha=scalar_like(x, attr(node, "alpha", 1.0)), name=ctx.out_name(node)))


@register("Selu")
def convert_selu(ctx, node):
    alpha = attr(node, "alpha", 1.67326319217681884765625)
    gamma = attr(node, "gamma", 1.05070102214813232421875)
    x = _x(ctx, node)
    elu = mb.elu(x=x, alpha=scalar_like(x, alpha))
    ctx.output(node, 0, mb.mul(x=elu, y=scalar_like(x, gamma), name=ctx.out_name(node)))


@register("Celu")
def convert_celu(ctx, node):
    x = _x(ctx, node)
    alpha = scalar_like(x, attr(node, "alpha", 1.0))
    neg = mb.mul(x=mb.sub(x=mb.exp(x=mb.real_div(x=mb.minimum(x=x, y=scalar_like(x, 0)), y=alpha)), y=scalar_like(x, 1)), y=alpha)
    ctx.output(node, 0, mb.add(x=mb.relu(x=x), y=neg, name=ctx.out_name(node)))


@register("HardSigmoid")
def convert_hard_sigmoid(ctx, node):
    x = _x(ctx, node)
    alpha, beta = scalar_like(x, attr(node, "alpha", 0.2)), scalar_like(x, attr(node, "beta", 0.5))
    ctx.output(node, 0, mb.sigmoid_hard(x=x, alpha=alpha, beta=beta, name=ctx.out_name(node)))


@register("HardSwish")
def convert_hard_swish(ctx, node):
    x = _x(ctx, node)
    gate = mb.sigmoid_hard(x=x, alpha=scalar_like(x, 1 / 6), beta=scalar_like(x, 0.5))
    ctx.output(node, 0, mb.mul(x=x, y=gate, name=ctx.out_name(node)))


@register("Gelu", since_version=20)
def convert_gelu(ctx, node):
    mode = "TANH_APPROXIMATION" if attr(node, "approximate", "none") == "tanh" else "EXACT"
    ctx.output(node, 0, mb.gelu(x=_x(ctx, node), mode=mode, name=ctx.out_name(node)))


@register("Mish", since_version=18)
def convert_mish(ctx, node):
    x = _x(ctx, node)
    ctx.output(node, 0, mb.mul(x=x, y=mb.tanh(x=mb.softplus(x=x)), name=ctx.out_name(node)))


@register("ThresholdedRelu", since_version=10)
def convert_thresholded_relu(ctx, node):
    x = _x(ctx, node)
    # alpha is a float32 attribute, compared with a float16 x in float32 as Shrink's lambd is
    # (x = 1.0 is above alpha = 0.99978, which float16 would round to 1.0)
    keep = mb.greater(x=cast_to(x, "fp32"), y=np.float32(attr(node, "alpha", 1.0)))
    ctx.output(node, 0, mb.select(cond=keep, a=x, b=scalar_like(x, 0), name=ctx.out_name(node)))


@register("Shrink", since_version=9)
def convert_shrink(ctx, node):
    x = _x(ctx, node)
    if mil_dtype_name(x) not in ("fp32", "fp16"):
        raise NodeNotConvertible("Shrink on integer tensors is not supported")
    # lambd is a float32 attribute: onnxruntime and the reference evaluator compare a float16 x with
    # it in float32 (x = 0.4622 is above lambd = 0.46214, which float16 would round to x itself)
    wide = cast_to(x, "fp32")
    lambd, bias = np.float32(attr(node, "lambd", 0.5)), scalar_like(x, attr(node, "bias", 0.0))
    below = mb.select(cond=mb.less(x=wide, y=-lambd), a=mb.add(x=x, y=bias), b=scalar_like(x, 0))
    ctx.output(node, 0, mb.select(cond=mb.greater(x=wide, y=lambd), a=mb.sub(x=x, y=bias), b=below,
                                  name=ctx.out_name(node)))


@register("Clip")
def convert_clip(ctx, node):
    x = _x(ctx, node)
    if ctx.opset < 11:
        low, high = attr(node, "min"), attr(node, "max")
        low = None if low is None else np.array(low, dtype=np.float32)
        high = None if high is None else np.array(high, dtype=np.float32)
    else:
        low, high = ctx.input(node, 1), ctx.input(node, 2)
    result = x
    if low is not None:
        result = mb.maximum(x=result, y=unify(result, low)[1])
    if high is not None:
        result = mb.minimum(x=result, y=unify(result, high)[1])
    ctx.output(node, 0, mb.identity(x=result, name=ctx.out_name(node)))


def _coerced_2d(ctx, node, x, axis):
    """Softmax before opset 13 flattens to 2-D at ``axis``; reshape around it."""
    inner_dims = x.shape[axis:]
    if all(isinstance(d, (int, np.integer)) for d in inner_dims):
        target = np.array([-1, int(np.prod(inner_dims))], dtype=np.int32)
    else:
        inner = mb.slice_by_index(x=mb.shape(x=x), begin=[axis], end=[x.rank], end_mask=[True])
        target = mb.concat(values=[np.array([-1], dtype=np.int32),
                                   mb.reduce_prod(x=inner, axes=[0], keep_dims=True)], axis=0)
    return mb.reshape(x=x, shape=target), x.shape


def _softmax_like(ctx, node, fn):
    x = _x(ctx, node)
    default_axis = -1 if ctx.opset >= 13 else 1
    axis = norm_axis(attr(node, "axis", default_axis), x.rank)
    if ctx.opset < 13 and axis != x.rank - 1:
        flat, shape = _coerced_2d(ctx, node, x, axis)
        y = fn(flat, 1)
        ctx.output(node, 0, mb.reshape(x=y, shape=mb.shape(x=x), name=ctx.out_name(node)))
        return
    ctx.output(node, 0, mb.identity(x=fn(x, axis), name=ctx.out_name(node)))


def _log_softmax(x, axis):
    return mb.sub(x=x, y=mb.reduce_log_sum_exp(x=x, axes=[axis], keep_dims=True))


def _hardmax(x, axis):
    """1 at the first maximum along ``axis``, else 0: argmax compared with an index ramp along the axis.

    The ramp comes from the run-time shape, so a symbolic axis length works (one_hot needs a
    constant depth).
    """
    index = mb.reduce_argmax(x=x, axis=axis, keep_dims=True)
    length = mb.slice_by_index(x=mb.shape(x=x), begin=[axis], end=[axis + 1], squeeze_mask=[True])
    ramp = mb.range_1d(start=np.int32(0), end=length, step=np.int32(1))
    ramp = mb.reshape(x=ramp, shape=np.array([1] * axis + [-1] + [1] * (x.rank - axis - 1), dtype=np.int32))
    return mb.cast(x=mb.equal(x=index, y=ramp), dtype=mil_dtype_name(x))


register("Softmax")(lambda ctx, node: _softmax_like(ctx, node, lambda x, a: mb.softmax(x=x, axis=a)))
register("LogSoftmax")(lambda ctx, node: _softmax_like(ctx, node, _log_softmax))
register("Hardmax")(lambda ctx, node: _softmax_like(ctx, node, _hardmax))


@register("Swish", since_version=24)
def convert_swish(ctx, node):
    x = _x(ctx, node)
    alpha = np.float32(attr(node, "alpha", 1.0))
    ctx.output(node, 0, mb.mul(x=x, y=mb.sigmoid(x=mb.mul(x=x, y=alpha)), name=ctx.out_name(node)))
