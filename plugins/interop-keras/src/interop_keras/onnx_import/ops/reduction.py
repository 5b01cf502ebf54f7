"""ReduceMean/Sum/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp -> global pooling or interop's Reduce."""

from __future__ import annotations

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import channels_last
from interop_keras.onnx_import.layer_table import converter

#: What a reduction over no axis leaves of each composite reduction.
_NOOP_ELEMENTWISE = {"ReduceL1": "Abs", "ReduceL2": "Abs", "ReduceSumSquare": "Square", "ReduceLogSum": "Log"}
#: The first version whose axes come as an input instead of an attribute.
_AXES_INPUT = {"ReduceSum": 13}


def _axes(ctx: NodeContext, rank: int) -> list[int] | None:
    if ctx.since >= _AXES_INPUT.get(ctx.op_type, 18):
        axes = ctx.ints(1, "axes") if ctx.has_input(1) else None
    else:
        axes = ctx.attr("axes")
    if not axes:
        if ctx.attr("noop_with_empty_axes", 0):
            return None
        return list(range(rank))
    return sorted(int(a) % rank for a in axes)


@converter(("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
            "ReduceLogSum", "ReduceLogSumExp"), versions=(1, 11, 13, 18))
@converter("ReduceSum", versions=(1, 11, 13))
@converter(("ReduceMax", "ReduceMin"), versions=(12, 20))
def reduce(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    axes = _axes(ctx, x.rank)
    if axes is None:
        # No axes and noop_with_empty_axes: a reduction over nothing, but the elementwise part of
        # the composite reductions still applies (ReduceLogSum is Log of ReduceSum, and so on).
        elementwise = _NOOP_ELEMENTWISE.get(ctx.op_type)
        if elementwise is None:
            ctx.output(x.tensor, x.perm)
        else:
            ctx.output(interop_layers.Unary(elementwise, name=ctx.name())(x.tensor), x.perm)
        return
    keepdims = bool(ctx.attr("keepdims", 1))
    spatial = list(range(2, x.rank))
    if ctx.op_type in ("ReduceMean", "ReduceMax") and axes == spatial and x.perm == channels_last(x.rank) and 1 <= len(spatial) <= 3:
        n = len(spatial)
        average = ctx.op_type == "ReduceMean"
        cls = {(True, 1): keras.layers.GlobalAveragePooling1D, (True, 2): keras.layers.GlobalAveragePooling2D,
               (True, 3): keras.layers.GlobalAveragePooling3D, (False, 1): keras.layers.GlobalMaxPooling1D,
               (False, 2): keras.layers.GlobalMaxPooling2D, (False, 3): keras.layers.GlobalMaxPooling3D}[(average, n)]
        out = cls(keepdims=keepdims, name=ctx.name())(x.tensor)
        perm = x.perm if keepdims else (0, 1)
        ctx.output(out, perm)
        return
    layer = interop_layers.Reduce(ctx.op_type, sorted(x.keras_axis(a) for a in axes), keepdims, name=ctx.name())
    if keepdims:
        perm = x.perm
    else:
        kept = [a for a in x.perm if a not in axes]
        perm = tuple(sorted(kept).index(a) for a in kept)
    ctx.output(layer(x.tensor), perm)
