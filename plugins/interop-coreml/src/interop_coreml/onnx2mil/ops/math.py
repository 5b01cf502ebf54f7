"""Matrix products: MatMul, Gemm, Einsum."""

from __future__ import annotations

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import ConversionContext, as_var, attr, mb, mil_dtype_name, np, unify
from interop_coreml.onnx2mil.registry import register


@register("MatMul")
def convert_matmul(ctx: ConversionContext, node) -> None:
    a, b = unify(ctx.input(node, 0), ctx.input(node, 1))
    if mil_dtype_name(a) == "int32":
        raise NodeNotConvertible("MatMul on integer tensors: Core ML multiplies float matrices only")
    a = as_var(a)
    if isinstance(b, np.ndarray) and b.ndim == 2 and a.rank >= 2:
        # x @ W with constant W is Core ML's linear layer (weight stored [out, in]).
        ctx.output(node, 0, mb.linear(x=a, weight=np.ascontiguousarray(b.T), name=ctx.out_name(node)))
        return
    # ONNX follows numpy for 1-D operands: promote to a matrix, then drop that axis.
    squeeze = []
    if a.rank == 1:
        a = mb.expand_dims(x=a, axes=[0])
        squeeze.append(-2)
    if len(b.shape) == 1:
        b = b.reshape(-1, 1) if isinstance(b, np.ndarray) else mb.expand_dims(x=b, axes=[-1])
        squeeze.append(-1)
    if not squeeze:
        ctx.output(node, 0, mb.matmul(x=a, y=b, name=ctx.out_name(node)))
        return
    product = mb.matmul(x=a, y=b)
    ctx.output(node, 0, mb.squeeze(x=product, axes=[product.rank + s for s in squeeze], name=ctx.out_name(node)))


@register("Gemm")
def convert_gemm(ctx: ConversionContext, node) -> None:
    a, b = unify(ctx.input(node, 0), ctx.input(node, 1))
    c = ctx.input(node, 2)
    alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
    trans_a, trans_b = bool(attr(node, "transA", 0)), bool(attr(node, "transB", 0))
    a = as_var(a)
    if isinstance(b, np.ndarray) and not trans_a and (c is None or isinstance(c, np.ndarray)):
        weight = (b if trans_b else b.T) * np.asarray(alpha, dtype=b.dtype)
        kwargs = {}
        if c is not None:
            bias = np.asarray(c, dtype=weight.dtype) * np.asarray(beta, dtype=weight.dtype)
            if bias.size == weight.shape[0] and bias.ndim <= 1 or (bias.ndim == 2 and bias.shape[0] == 1):
                kwargs["bias"] = np.ascontiguousarray(bias.reshape(-1) if bias.size == weight.shape[0] else bias)
            else:
                y = mb.linear(x=a, weight=np.ascontiguousarray(weight))
                ctx.output(node, 0, mb.add(x=y, y=bias, name=ctx.out_name(node)))
                return
        ctx.output(node, 0, mb.linear(x=a, weight=np.ascontiguousarray(weight), name=ctx.out_name(node), **kwargs))
        return
    y = mb.matmul(x=a, y=b, transpose_x=trans_a, transpose_y=trans_b)
    if alpha != 1.0:
        y = mb.mul(x=y, y=np.float32(alpha))
    if c is not None:
        c = unify(y, c)[1]
        if beta != 1.0:
            c = mb.mul(x=as_var(c), y=np.float32(beta))
        y = mb.add(x=y, y=c)
    ctx.output(node, 0, mb.identity(x=y, name=ctx.out_name(node)))


@register("Einsum", since_version=12)
def convert_einsum(ctx: ConversionContext, node) -> None:
    equation = attr(node, "equation").replace(" ", "")
    values = [as_var(ctx.input(node, i)) for i in range(len(node.input))]
    try:
        y = mb.einsum(values=values, equation=equation, name=ctx.out_name(node))
    except Exception as error:  # noqa: BLE001 - MIL supports only some equations
        raise NodeNotConvertible(f"einsum equation {equation!r} is not supported by Core ML: {error}") from None
    ctx.output(node, 0, y)
