"""Matrix products: MatMul, Gemm (Einsum: einsum.py)."""

from __future__ import annotations

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, cast_to, mb, mil_dtype_name, np,
)
from interop_coreml.onnx2mil.op_converters import register


def _float_operands(values):
    """Operands of one float product: ints (a Shape, a constant) join the float operand's dtype.

    ONNX gives A, B and C of MatMul/Gemm one type; an int32 among floats comes from a producer
    whose result MIL keeps in int32, and casting the float side down would truncate it.
    """
    kinds = {mil_dtype_name(v) for v in values if v is not None}
    if not kinds & {"fp32", "fp16"}:
        raise NodeNotConvertible("integer matrix product: Core ML multiplies float matrices only")
    dtype = "fp32" if "fp32" in kinds else "fp16"
    return [None if v is None else cast_to(v, dtype) for v in values], dtype


@register("MatMul")
def convert_matmul(ctx: ConversionContext, node) -> None:
    (a, b), _ = _float_operands([ctx.input(node, 0), ctx.input(node, 1)])
    a = as_var(a)
    if isinstance(b, np.ndarray) and b.ndim == 2 and a.rank >= 2:
        # x @ W with constant W is Core ML's linear layer (weight stored [out, in]). The transpose
        # stays a view: a weight mapped from external data is then read once, when coremltools
        # writes it, instead of being copied here (onnx2mil/weights.py).
        ctx.output(node, 0, mb.linear(x=a, weight=b.T, name=ctx.out_name(node)))
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
    (a, b, c), dtype = _float_operands([ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)])
    np_dtype = np.float16 if dtype == "fp16" else np.float32
    alpha, beta = attr(node, "alpha", 1.0), attr(node, "beta", 1.0)
    trans_a, trans_b = bool(attr(node, "transA", 0)), bool(attr(node, "transB", 0))
    a = as_var(a)
    if a.rank != 2 or len(b.shape) != 2:
        raise NodeNotConvertible(f"Gemm of rank-{a.rank} and rank-{len(b.shape)} operands (ONNX requires 2 and 2)")
    if isinstance(b, np.ndarray):
        # A @ W with constant W is Core ML's linear layer (weight [N, K]); C joins as its bias when it
        # varies along N only (shapes [], [1], [N], [1, 1], [1, N]), else as an add.
        oriented = b if trans_b else b.T
        if alpha == 1.0 and oriented.dtype == np_dtype:
            weight = oriented  # a view: no copy of a weight mapped from external data
        else:
            weight = np.ascontiguousarray(oriented.astype(np.float64) * alpha).astype(np_dtype)
        n_out = weight.shape[0]
        if trans_a:
            a = mb.transpose(x=a, perm=[1, 0])
        kwargs = {}
        if isinstance(c, np.ndarray) and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1):
            row = c.reshape(c.shape[-1:]).astype(np.float64) * beta
            kwargs["bias"] = np.ascontiguousarray(np.broadcast_to(row, (n_out,))).astype(np_dtype)
            c = None
        y = mb.linear(x=a, weight=weight, **kwargs)
    else:
        y = mb.matmul(x=a, y=as_var(b), transpose_x=trans_a, transpose_y=trans_b)
        if alpha != 1.0:
            y = mb.mul(x=y, y=np_dtype(alpha))
    if c is not None:
        if isinstance(c, np.ndarray):
            c = (c.astype(np.float64) * beta).astype(np_dtype)
        elif beta != 1.0:
            c = mb.mul(x=c, y=np_dtype(beta))
        y = mb.add(x=y, y=c)
    ctx.output(node, 0, mb.identity(x=y, name=ctx.out_name(node)))
