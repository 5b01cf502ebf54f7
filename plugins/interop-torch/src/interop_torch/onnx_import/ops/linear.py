"""Gemm, MatMul (+ the Add of its bias) and Einsum: nn.Linear where a weight is constant, matmul otherwise."""

from __future__ import annotations

import numpy as np
import onnx

from interop_torch.onnx_import.context import ImportContext, Value, literal
from interop_torch.onnx_import.ops._common import dtype_kw
from interop_torch.onnx_import.module_table import converter


def _linear(ctx: ImportContext, output: str, x_expr: str, weight: np.ndarray, weight_from: Value,
            bias: np.ndarray | None, bias_from: Value | None, transform: str | None) -> None:
    out_features, in_features = weight.shape
    ctor = (f"nn.Linear({in_features}, {out_features}{', bias=False' if bias is None else ''}"
            f"{dtype_kw(weight)})")
    state = {"weight": (weight, weight_from, True)}
    if bias is not None:
        state["bias"] = (bias, bias_from, True)
    layer = ctx.add_layer(ctor, state)
    if transform:
        ctx.state[f"{layer}.weight"].transform.append(transform)
    ctx.emit(output, f"self.{layer}({x_expr})")


def _bias_vector(ctx: ImportContext, value: Value | None, size: int) -> np.ndarray | None:
    """A constant bias a Linear can own: shape (N,) or (1, N)."""
    if value is None or not ctx.owns(value) or value.array.dtype.kind != "f":
        return None
    array = value.array
    if array.shape in ((size,), (1, size)):
        return array.reshape(size)
    return None


@converter("Gemm", 1, 6, 7, 9, 11, 13)
def gemm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    a, b, c = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert a is not None and b is not None
    alpha, beta = float(ctx.attr(node, "alpha", 1.0)), float(ctx.attr(node, "beta", 1.0))
    trans_a, trans_b = int(ctx.attr(node, "transA", 0)), int(ctx.attr(node, "transB", 0))
    x_expr = f"{ctx.t(a)}.t()" if trans_a else ctx.t(a)
    if ctx.owns(b) and b.array.ndim == 2 and a.kind != "const":
        weight = b.array if trans_b else b.array.T
        bias = _bias_vector(ctx, c, weight.shape[0])
        if c is None or bias is not None:
            steps = [] if trans_b else ["transposed to (out, in)"]
            if alpha != 1.0:
                weight = weight * np.asarray(alpha, weight.dtype)
                steps.append(f"times alpha={alpha}")
            if bias is not None and beta != 1.0:
                bias = bias * np.asarray(beta, bias.dtype)
                ctx.note(f"Gemm {node.name or node.output[0]!r}: the bias holds beta * C (beta={beta})")
            _linear(ctx, node.output[0], x_expr, np.ascontiguousarray(weight), b, bias, c,
                    "; ".join(steps) or None)
            return
    y_expr = f"{ctx.t(b)}.t()" if trans_b else ctx.t(b)
    expr = f"{x_expr} @ {y_expr}"
    if alpha != 1.0:
        expr = f"{literal(alpha)} * ({expr})"
    if c is not None:
        c_expr = ctx.operand(c)
        expr = f"{expr} + {c_expr if beta == 1.0 else f'{literal(beta)} * {c_expr}'}"
    ctx.emit(node.output[0], expr)


@converter("MatMul", 1, 9, 13)
def matmul(ctx: ImportContext, node: onnx.NodeProto) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    if ctx.owns(b) and b.array.ndim == 2 and a.kind != "const" and b.array.dtype.kind == "f":
        weight = np.ascontiguousarray(b.array.T)
        add, bias, bias_from = _bias_add(ctx, node, weight.shape[0])
        output = add.output[0] if add is not None else node.output[0]
        _linear(ctx, output, ctx.t(a), weight, b, bias, bias_from, "transposed to (out, in)")
        if add is not None:
            ctx.done(add)
        return
    ctx.emit(node.output[0], f"{ctx.t(a)} @ {ctx.t(b)}")


def _bias_add(ctx: ImportContext, node: onnx.NodeProto, size: int):  # type: ignore[no-untyped-def]
    """The ``Add`` that adds a constant bias right after this MatMul, with that bias (Dense in two ops)."""
    users = ctx.prepared.consumers.get(node.output[0], [])
    graph_outputs = {v.name for v in ctx.prepared.outputs}
    if len(users) != 1 or node.output[0] in graph_outputs:
        return None, None, None
    add, index = users[0]
    if add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.input) != 2:
        return None, None, None
    other = ctx.values.get(add.input[1 - index])
    if other is None or other.kind != "const":
        return None, None, None
    # The bias must belong to this Add only; owns() checks the node being converted, so check here.
    bias_users = ctx.prepared.consumers.get(other.name, [])
    if other.init is None or other.role != "weight" or other.init.uses != 1 or other.init.name in ctx.claimed:
        return None, None, None
    if len(bias_users) != 1 or bias_users[0][0] is not add:
        return None, None, None
    if other.array.dtype.kind != "f" or other.array.shape not in ((size,), (1, size)):
        return None, None, None
    return add, other.array.reshape(size), other


@converter("Einsum", 12, 28)
def einsum(ctx: ImportContext, node: onnx.NodeProto) -> None:
    equation = ctx.attr(node, "equation")
    operands = ", ".join(ctx.t(v) for v in ctx.inputs(node) if v is not None)
    ctx.emit(node.output[0], f"torch.einsum({literal(equation.replace(' ', ''))}, {operands})")
