"""Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Slice, Pad, Gather, Cast, Shape, Expand,
DepthToSpace, SpaceToDepth.

Transpose only changes a tensor's layout. A reshape that merely adds or drops
axes of size 1 (Flatten after global pooling, the Squeeze/Unsqueeze around
squeeze-and-excitation blocks) keeps the order of the other axes, so it is done
in whatever layout the tensor has; any other reshape first returns the tensor
to the ONNX layout, because reshaping is defined on that order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop_keras.onnx_import import fold
from interop_keras.onnx_import.context import Constant, NodeContext, NotConvertible
from interop_keras.onnx_import.layout import Perm, Value, channels_last, identity, inverse
from interop_keras.onnx_import.layer_table import converter


def _is_batch(x: Value, axis: int) -> bool:
    """ONNX axis ``axis`` of ``x`` is the batch axis: first in the Keras tensor and of unknown size."""
    return x.rank > 0 and x.perm[0] == axis and x.keras_shape[0] is None


def reshape(ctx: NodeContext, x: Value, spec: list[int]) -> None:
    """Reshape ``x`` to the ONNX shape ``spec`` (entries: size, 0 = copy the input's size, -1 = infer)."""
    import keras

    from interop_keras import layers as interop_layers

    shape = x.shape
    if sum(1 for d in spec if d == -1) > 1:
        raise NotConvertible("more than one -1 in the target shape")
    if any(d == 0 and i >= x.rank for i, d in enumerate(spec)):
        raise NotConvertible("0 (copy) past the input's rank")
    resolved: list[int | None] = [shape[i] if d == 0 else (None if d == -1 else d) for i, d in enumerate(spec)]
    if x.rank == 0 or not spec:
        # A scalar in or out: no batch axis to keep, so a plain reshape of the whole tensor.
        if x.rank and None in shape:
            raise NotConvertible("reshaping a tensor whose size is known only at run time to a scalar")
        layer = interop_layers.Reshape([d if d is not None else -1 for d in resolved], name=ctx.name())
        ctx.output(layer(ctx.to_layout(x, identity(x.rank))), identity(len(spec)))
        return
    batch_kept = bool(spec) and spec[0] == 0 and x.rank > 0 and _is_batch(x, 0)
    if -1 in spec:
        j = spec.index(-1)
        others = [resolved[i] for i in range(len(spec)) if i != j]
        if None not in shape and None not in others:
            resolved[j] = int(np.prod(shape, dtype=np.int64)) // max(int(np.prod(others, dtype=np.int64)), 1)
        elif x.rank and _is_batch(x, 0) and None not in shape[1:]:
            rest_in = int(np.prod(shape[1:], dtype=np.int64))
            known = [resolved[i] for i in range(1, len(spec)) if i != j]
            if j != 0 and batch_kept and None not in known:
                resolved[j] = rest_in // max(int(np.prod(known, dtype=np.int64)), 1)
            elif j == 0 and None not in others and int(np.prod(others, dtype=np.int64)) == rest_in:
                batch_kept = True  # the -1 is the batch: everything else is accounted for
    groups = _groups(x, resolved, batch_kept)
    out_perm = None if groups is None else _layout_free_perm(x, x.perm, resolved, groups)
    if out_perm is None and groups is not None:
        # One transpose that brings each group together keeps the rest of the layout.
        regrouped = _regrouped(x, groups)
        out_perm = _layout_free_perm(x, regrouped, resolved, groups)
        if out_perm is not None:
            x = Value(ctx.to_layout(x, regrouped), regrouped)
    if out_perm is not None:
        target = [resolved[a] for a in out_perm]
        if len(target) == x.rank and all(t == k for t, k in zip(target, x.keras_shape)):
            ctx.output(x.tensor, out_perm)  # the same Keras shape: nothing to do
            return
        tensor, perm = x.tensor, out_perm
    else:
        tensor, perm = ctx.to_layout(x, identity(x.rank)), identity(len(resolved))
        target = list(resolved)
    rest = target[1:]
    keeps_first = (batch_kept and target[0] is None) or (target[0] is not None and target[0] == x.keras_shape[0])
    if keeps_first and sum(1 for d in rest if d is None) <= 1:
        layer = keras.layers.Reshape(tuple(-1 if d is None else d for d in rest), name=ctx.name())
    else:
        full = [0 if (i == 0 and batch_kept) else (-1 if d is None else d) for i, d in enumerate(target)]
        if sum(1 for d in full if d == -1) > 1:
            raise NotConvertible("a reshape with several sizes known only at run time")
        layer = interop_layers.Reshape(full, name=ctx.name())
    ctx.output(layer(tensor), perm)


def _groups(x: Value, resolved: list[int | None], batch_kept: bool) -> list[tuple[list[int], list[int]]] | None:
    """Runs of input axes whose sizes multiply to runs of output axes (size-1 axes aside), or None."""
    shape = x.shape
    ins = [a for a in range(x.rank) if shape[a] != 1]
    outs = [b for b in range(len(resolved)) if resolved[b] != 1]
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(ins) and j < len(outs):
        a, b = ins[i], outs[j]
        i, j = i + 1, j + 1
        if shape[a] is None or resolved[b] is None:
            if a == 0 and b == 0 and batch_kept:
                groups.append(([a], [b]))
                continue
            return None
        group_in, group_out = [a], [b]
        size_in, size_out = shape[a], resolved[b]
        while size_in != size_out:
            if size_in < size_out:  # type: ignore[operator]
                if i >= len(ins) or shape[ins[i]] is None:
                    return None
                group_in.append(ins[i])
                size_in *= shape[ins[i]]  # type: ignore[operator]
                i += 1
            else:
                if j >= len(outs) or resolved[outs[j]] is None:
                    return None
                group_out.append(outs[j])
                size_out *= resolved[outs[j]]  # type: ignore[operator]
                j += 1
        groups.append((group_in, group_out))
    if i != len(ins) or j != len(outs):
        return None
    return groups


def _layout_free_perm(x: Value, perm_in: Perm, resolved: list[int | None],
                      groups: list[tuple[list[int], list[int]]]) -> Perm | None:
    """The output layout when the reshape can be done on the Keras tensor in layout ``perm_in``.

    It can when every group's input axes sit side by side, in ONNX order, in the
    Keras tensor: reshaping it then splits or merges the same elements, and the
    output keeps each group where it was (shufflenet's channel split, a Flatten
    after global pooling, Squeeze/Unsqueeze of size-1 axes).
    """
    shape = x.shape
    position = {a: index for index, a in enumerate(a for a in perm_in if shape[a] != 1)}
    for group_in, _ in groups:
        places = [position[a] for a in group_in]
        if places != list(range(places[0], places[0] + len(places))):
            return None
    # Output axes follow the input's Keras order: each group where its first axis was, and the
    # size-1 axes of the output in the places size-1 axes had (extra ones at the end).
    group_of = {a: index for index, (group_in, _) in enumerate(groups) for a in group_in}
    units = iter([b for b in range(len(resolved)) if resolved[b] == 1])
    emitted: set[int] = set()
    order: list[int] = []
    for a in perm_in:
        if shape[a] == 1:
            unit = next(units, None)
            if unit is not None:
                order.append(unit)
        elif group_of[a] not in emitted:
            emitted.add(group_of[a])
            order.extend(groups[group_of[a]][1])
    order.extend(units)
    perm = tuple(order)
    if x.rank and x.keras_shape[0] is None and (perm[0] != 0 or perm_in[0] != 0):
        return None
    return perm


def _regrouped(x: Value, groups: list[tuple[list[int], list[int]]]) -> Perm:
    """The layout closest to ``x``'s where every group's axes are side by side in ONNX order."""
    group_of = {a: index for index, (group_in, _) in enumerate(groups) for a in group_in}
    emitted: set[int] = set()
    perm: list[int] = []
    for a in x.perm:
        if a not in group_of:
            perm.append(a)
        elif group_of[a] not in emitted:
            emitted.add(group_of[a])
            perm.extend(groups[group_of[a]][0])
    return tuple(perm)


def _spec(ctx: NodeContext, index: int) -> list[Any]:
    if not ctx.has_input(index):
        raise NotConvertible("no target shape")
    constant = ctx.importer.constants.get(ctx.node.input[index])
    if constant is None:
        raise NotConvertible("the target shape is computed at run time")
    value = list(constant.value.reshape(-1))
    if not any(isinstance(d, fold.Dim) for d in value):
        return [int(d) for d in value]
    x = ctx.value(0)
    own = ctx.importer.dims(ctx.node.input[0], x)
    spec: list[Any] = list(value)
    symbolic = [i for i, d in enumerate(spec) if isinstance(d, fold.Dim)]
    if len(symbolic) > 1 and x.rank and _is_batch(x, 0) and fold.same(spec[0], own[0]):
        spec[0] = 0  # the input's first axis, copied (a sequence-first model's sequence and batch)
        symbolic = symbolic[1:]
    if len(symbolic) == 1:
        if -1 in spec:
            # What the -1 stands for is the input's element count over the other sizes, symbols
            # included: [batch * seq, -1] of a [batch, seq, 4] tensor leaves 4.
            j = spec.index(-1)
            others = [own[i] if d == 0 else d for i, d in enumerate(spec) if i != j]
            inferred = fold.quotient(fold.product(own), fold.product(others))
            if inferred is None:
                raise NotConvertible("the target shape holds sizes known only at run time")
            if isinstance(inferred, fold.Dim):
                return spec  # the -1 stands for a size known at run time too: read the other one then
            spec[j] = int(inferred)
        # The one size known at run time is what -1 infers from the element count.
        spec[symbolic[0]] = -1
        return [int(d) for d in spec]
    if not symbolic:
        return [int(d) for d in spec]
    return spec  # several sizes known only at run time: read from tensors that have them


@converter("Reshape", versions=(5, 13, 14, 19, 21))
def reshape_op(ctx: NodeContext) -> None:
    raw = ctx.importer.constants.get(ctx.node.input[1]) if ctx.has_input(1) else None
    spec = _spec(ctx, 1)
    if ctx.attr("allowzero", 0) and raw is not None and any(not isinstance(d, fold.Dim) and d == 0
                                                             for d in raw.value.reshape(-1)):
        raise NotConvertible("allowzero=1 with a 0 in the shape (an empty tensor)")
    if any(isinstance(d, fold.Dim) for d in spec):
        _reshape_to_run_time_sizes(ctx, ctx.value(0), spec)
        return
    reshape(ctx, ctx.value(0), spec)


def _reshape_to_run_time_sizes(ctx: NodeContext, x: Value, spec: list[Any]) -> None:
    """Reshape to a target with several sizes known only at run time (a sequence-first model's
    ``[seq, batch * heads, width]``): one of them is the -1, the others are read at run time from
    tensors that have them (the graph's inputs, the tensors a Shape node read)."""
    from interop_keras import layers as interop_layers

    symbolic = [i for i, d in enumerate(spec) if isinstance(d, fold.Dim)]
    if -1 not in spec:
        spec[symbolic.pop(0)] = -1
    refs: list[Any] = []
    sizes: list[list[Any]] = []
    for index in symbolic:
        axes = []
        for term in spec[index].terms:
            source = ctx.importer.size_sources.get(id(term))
            if source is None:
                raise NotConvertible(f"the target shape holds a size ({term}) no tensor of the graph has")
            tensor, axis = source
            if not any(ref is tensor for ref in refs):
                refs.append(tensor)
            axes.append([next(i for i, ref in enumerate(refs) if ref is tensor), axis])
        sizes.append([index, spec[index].factor, axes])
        spec[index] = 1
    layer = interop_layers.Reshape([int(d) for d in spec], sizes=sizes, name=ctx.name())
    ctx.output(layer([ctx.to_layout(x, identity(x.rank)), *refs]), identity(len(spec)))


@converter("Flatten", versions=(1, 9, 11, 13, 21))
def flatten(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axis = int(ctx.attr("axis", 1))
    axis = axis + x.rank if axis < 0 else axis
    shape = x.shape
    inner = shape[axis:]
    inner_size = None if any(s is None for s in inner) else int(np.prod(inner, dtype=np.int64))
    if axis == 1:
        reshape(ctx, x, [0, -1 if inner_size is None else inner_size])
    elif axis == 0:
        reshape(ctx, x, [1, -1])
    else:
        outer = shape[:axis]
        if all(s is not None for s in outer):
            reshape(ctx, x, [int(np.prod(outer, dtype=np.int64)), -1])
        elif inner_size is not None:
            reshape(ctx, x, [-1, inner_size])
        else:
            raise NotConvertible("Flatten of sizes known only at run time")


@converter("Squeeze", versions=(1, 11, 13, 21))
def squeeze(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axes = ctx.attr("axes") if ctx.since < 13 else ctx.ints(1, "axes")
    shape = x.shape
    if axes is None:
        if any(s is None for s in shape):
            raise NotConvertible("Squeeze without axes of sizes known only at run time")
        axes = [a for a in range(x.rank) if shape[a] == 1]
    axes = [int(a) % x.rank for a in axes]
    if any(shape[a] != 1 for a in axes):
        raise NotConvertible("squeezing an axis whose size is not 1")
    _resize_axes(ctx, x, [shape[a] for a in range(x.rank) if a not in axes], [a for a in range(x.rank) if a not in axes])


@converter("Unsqueeze", versions=(1, 11, 13, 21))
def unsqueeze(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axes = ctx.attr("axes") if ctx.since < 13 else ctx.ints(1, "axes")
    rank = x.rank + len(axes)
    axes = sorted(int(a) % rank for a in axes)
    sizes: list[int | None] = []
    sources: list[int | None] = []
    source = iter(range(x.rank))
    for b in range(rank):
        if b in axes:
            sizes.append(1)
            sources.append(None)
        else:
            a = next(source)
            sizes.append(x.shape[a])
            sources.append(a)
    _resize_axes(ctx, x, sizes, sources)


def _resize_axes(ctx: NodeContext, x: Value, sizes: list[int | None], sources: list[int | None]) -> None:
    """Reshape to ``sizes`` where output axis b is input axis ``sources[b]`` (None: a new size-1 axis)."""
    spec = []
    for b, (size, a) in enumerate(zip(sizes, sources)):
        if size is not None:
            spec.append(size)
        elif a == 0 and b == 0 and _is_batch(x, 0):
            spec.append(0)
        else:
            spec.append(-1)
    if sum(1 for d in spec if d == -1) <= 1:
        reshape(ctx, x, spec)
        return
    # Several sizes known only at run time (a sequence-first model's sequence and batch): the
    # size-1 axes are removed from or appended to the Keras tensor as it is, whatever its layout.
    from interop_keras import layers as interop_layers

    kept = [a for a in sources if a is not None]
    remove = [k for k, a in enumerate(x.perm) if a not in kept]
    new_index = {a: b for b, a in enumerate(sources) if a is not None}
    added = [b for b, a in enumerate(sources) if a is None]
    perm = tuple(new_index[a] for a in x.perm if a in kept) + tuple(added)
    layer = interop_layers.SizeOneAxes(remove, len(added), name=ctx.name())
    ctx.output(layer(x.tensor), perm)


@converter("Transpose", versions=(1, 13, 21))
def transpose(ctx: NodeContext) -> None:
    x = ctx.value(0)
    perm = ctx.attr("perm") or list(reversed(range(x.rank)))
    moved = inverse(tuple(int(p) for p in perm))
    ctx.output(x.tensor, tuple(moved[a] for a in x.perm))


@converter("Concat", versions=(4, 11, 13))
def concat(ctx: NodeContext) -> None:
    import keras

    names = [i for i in range(len(ctx.node.input)) if ctx.has_input(i)]
    if any(ctx.is_constant(i) for i in names):
        raise NotConvertible("a constant among the concatenated tensors")
    values = [ctx.value(i) for i in names]
    rank = values[0].rank
    axis = int(ctx.attr("axis")) % rank
    perm = values[0].perm
    tensors = [ctx.to_layout(v, perm) for v in values]
    if len(tensors) == 1:
        ctx.output(tensors[0], perm)
        return
    layer = keras.layers.Concatenate(axis=perm.index(axis), name=ctx.name())
    ctx.output(layer(tensors), perm)


def _slice(ctx: NodeContext, x: Value, axis: int, start: int, end: int, step: int, index: int, suffix: str) -> None:
    from interop_keras import layers as interop_layers

    layer = interop_layers.Slice([start], [end], [x.keras_axis(axis)], [step], name=ctx.name(suffix))
    ctx.output(layer(x.tensor), x.perm, index)


@converter("Split", versions=(2, 11, 13, 18))
def split(ctx: NodeContext) -> None:
    x = ctx.value(0)
    axis = int(ctx.attr("axis", 0)) % x.rank
    size = x.shape[axis]
    outputs = len(ctx.node.output)
    if ctx.since >= 13 and ctx.has_input(1):
        parts = ctx.ints(1, "split")
    elif ctx.since < 13 and ctx.attr("split"):
        parts = list(ctx.attr("split"))
    else:
        if size is None:
            raise NotConvertible("an even split of an axis whose size is known only at run time")
        count = int(ctx.attr("num_outputs", outputs))
        chunk = -(-size // count)
        parts = [min(chunk, size - i * chunk) for i in range(count)]
    if parts is None or len(parts) != outputs:
        raise NotConvertible("split sizes do not match the outputs")
    start = 0
    for index, part in enumerate(parts):
        if ctx.node.output[index]:
            _slice(ctx, x, axis, start, start + part, 1, index, str(index))
        start += part


@converter("Slice", versions=(1, 10, 11, 13))
def slice_op(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    if ctx.since < 10:
        starts, ends = list(ctx.attr("starts")), list(ctx.attr("ends"))
        axes = list(ctx.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = ctx.ints(1, "starts"), ctx.ints(2, "ends")
        axes = ctx.ints(3, "axes", range(len(starts)))  # type: ignore[arg-type]
        steps = ctx.ints(4, "steps", [1] * len(starts))  # type: ignore[arg-type]
    big = 2**31 - 1
    clamp = [max(min(v, big), -big - 1) for v in ends]  # type: ignore[union-attr]
    keras_axes = [x.keras_axis(int(a)) for a in axes]  # type: ignore[union-attr]
    layer = interop_layers.Slice([max(min(v, big), -big - 1) for v in starts], clamp, keras_axes, steps, name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("DepthToSpace", versions=(1, 11, 13, 28))
@converter("SpaceToDepth", versions=(1, 13, 28))
def depth_to_space(ctx: NodeContext) -> None:
    """Pixel (un)shuffles of NCHW images, done on the channels-last tensor convolutions also use."""
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    if x.rank != 4:
        raise NotConvertible(f"a tensor of rank {x.rank} (ONNX defines it for NCHW images)")
    block = int(ctx.attr("blocksize"))
    channels = x.shape[1]
    if channels is None:
        raise NotConvertible("a channel count known only at run time")
    tensor = ctx.to_layout(x, channels_last(4))
    if ctx.op_type == "DepthToSpace":
        if channels % (block * block):
            raise NotConvertible(f"{channels} channels are not a multiple of blocksize {block} squared")
        layer = interop_layers.DepthToSpace(block, mode=ctx.attr("mode", "DCR"), name=ctx.name())
    else:
        layer = interop_layers.SpaceToDepth(block, name=ctx.name())
    ctx.output(layer(tensor), channels_last(4))


@converter("Pad", versions=(2, 11, 13, 18, 19, 21))
def pad(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    if ctx.since < 11:
        raw = list(ctx.attr("pads"))
        value = float(ctx.attr("value", 0.0))
        axes = list(range(x.rank))
    else:
        raw = ctx.ints(1, "pads")  # type: ignore[assignment]
        value = float(ctx.constant(2, "constant_value").value.reshape(-1)[0]) if ctx.has_input(2) else 0.0
        axes = [int(a) % x.rank for a in ctx.ints(3, "axes", range(x.rank))]  # type: ignore[union-attr]
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise NotConvertible(f"mode {mode!r}")
    n = len(axes)
    per_axis = {a: (raw[i], raw[i + n]) for i, a in enumerate(axes)}
    pads = [per_axis.get(a, (0, 0)) for a in range(x.rank)]
    for a, (before, after) in enumerate(pads):
        size = x.shape[a]
        if mode == "wrap" and max(before, after) > 0 and (size is None or max(before, after) > size):
            # Wrapping round more than once, or round an axis whose size the import cannot check.
            raise NotConvertible("wrap padding of an axis by more than its size, or of a size known only at run time")
        if mode == "edge" and max(before, after) > 0 and size == 0:
            raise NotConvertible("edge padding of an empty axis")
    cl = channels_last(x.rank)
    spatial_only = x.rank >= 3 and all(pads[a] == (0, 0) for a in (0, 1)) and all(b >= 0 and e >= 0 for b, e in pads)
    if mode == "constant" and value == 0.0 and spatial_only and 3 <= x.rank <= 5 and x.perm == cl:
        cls = {3: keras.layers.ZeroPadding1D, 4: keras.layers.ZeroPadding2D, 5: keras.layers.ZeroPadding3D}[x.rank]
        spatial = [pads[a] for a in range(2, x.rank)]
        layer = cls(padding=spatial[0] if x.rank == 3 else tuple(spatial), name=ctx.name())
        ctx.output(layer(x.tensor), x.perm)
        return
    keras_pads = [list(pads[a]) for a in x.perm]
    layer = interop_layers.Pad(keras_pads, mode=mode, value=value, name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("Gather", versions=(1, 11, 13))
def gather(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers
    from interop_keras.onnx_import.ops._common import float_array, set_weight

    if ctx.is_constant(0) and not ctx.is_constant(1):
        table_const = ctx.constant(0, "table")
        indices = ctx.value(1)
        table = float_array(table_const)
        if int(ctx.attr("axis", 0)) % table.ndim != 0 or table.ndim != 2:
            raise NotConvertible("a constant table that is not a 2-D lookup along axis 0")
        tensor = ctx.to_layout(indices, identity(indices.rank))
        layer = keras.layers.Embedding(table.shape[0], table.shape[1], name=ctx.name(weights=[ctx.node.input[0]]))
        out = layer(tensor)
        set_weight(ctx, layer.embeddings, table_const, table, lambda a: a)
        ctx.output(out, identity(indices.rank + 1))
        return
    x = ctx.value(0)
    axis = int(ctx.attr("axis", 0)) % x.rank
    indices = np.asarray(ctx.constant(1, "indices").value).astype(np.int64)
    size = x.shape[axis]
    if size is not None:
        indices = np.where(indices < 0, indices + size, indices)
    elif (indices < 0).any():
        raise NotConvertible("negative indices on an axis whose size is known only at run time")
    if indices.ndim == 0:
        layer = interop_layers.Gather(int(indices), x.keras_axis(axis), name=ctx.name())
        perm = tuple(a - (a > axis) for a in x.perm if a != axis)
        ctx.output(layer(x.tensor), perm)
    elif indices.ndim == 1:
        layer = interop_layers.Gather(indices.tolist(), x.keras_axis(axis), name=ctx.name())
        ctx.output(layer(x.tensor), x.perm)
    else:
        tensor = ctx.to_layout(x, identity(x.rank))
        layer = interop_layers.Gather(indices.tolist(), axis, name=ctx.name())
        ctx.output(layer(tensor), identity(x.rank - 1 + indices.ndim))


_CAST = {1: "float32", 11: "float64", 10: "float16", 6: "int32", 7: "int64", 3: "int8", 2: "uint8", 9: "bool"}


@converter("Cast", versions=(6, 9, 13, 19, 21))
def cast(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    to = _CAST.get(int(ctx.attr("to")))
    if to is None:
        raise NotConvertible(f"cast to ONNX type {ctx.attr('to')}")
    if to == x.dtype:
        ctx.output(x.tensor, x.perm)
        return
    ctx.output(interop_layers.Cast(to, name=ctx.name())(x.tensor), x.perm)


@converter("Shape", versions=(1, 13, 15, 19, 21))
def shape_op(ctx: NodeContext) -> None:
    x = ctx.value(0)
    dims = ctx.importer.dims(ctx.node.input[0], x)
    start = int(ctx.attr("start", 0))
    end = ctx.attr("end")
    dims = dims[start:] if end is None else dims[start:int(end)]
    whole = start == 0 and len(dims) == x.rank
    symbolic = any(isinstance(d, fold.Dim) for d in dims)
    value = np.array(dims, dtype=object) if symbolic else np.array(dims, dtype=np.int64)
    ctx.output_constant(Constant(value, shape_of=ctx.node.input[0] if whole else None))


@converter("Expand", versions=(8, 13))
def expand(ctx: NodeContext) -> None:
    """Broadcast against a shape: a computed tensor against fixed sizes (the batch's stays its own), or a
    constant against the shape of a computed tensor (``Expand(c, Shape(t))``, Keras' ``ones_like``)."""
    from interop_keras import layers as interop_layers

    shape = ctx.importer.constants.get(ctx.node.input[1])
    if shape is None:
        raise NotConvertible("the target shape is computed at run time")
    entries = list(shape.value.reshape(-1))
    if ctx.is_constant(0):
        _constant_like(ctx, ctx.constant(0), shape, "expanded to")
        return
    x = ctx.value(0)
    own = ctx.importer.dims(ctx.node.input[0], x)
    rank = max(x.rank, len(entries))
    target: list[int] = []
    for i, d in enumerate(entries):
        axis = i - (len(entries) - x.rank)
        if isinstance(d, fold.Dim):
            # A size known only at run time expands nothing when it is the input's own (the batch).
            if axis < 0 or not fold.same(d, own[axis]):
                raise NotConvertible("the target shape holds a size known only at run time")
            target.append(1)
        else:
            target.append(int(d))
    tensor = ctx.to_layout(x, identity(x.rank))
    ctx.output(interop_layers.Expand(shape=target, name=ctx.name())(tensor), identity(rank))


def _constant_like(ctx: NodeContext, constant: Constant, shape: Constant, what: str) -> None:
    """``constant`` broadcast to ``shape``, the whole shape of a computed tensor: a layer on that tensor."""
    from interop_keras import layers as interop_layers
    from interop_keras.onnx_import.ops._common import set_weight
    from interop_keras.onnx_import.ops.elementwise import fixed_array, in_layout

    like = ctx.importer.values.get(shape.shape_of) if shape.shape_of else None
    if like is None and fold.is_symbolic(shape.value):
        like = _batch_shaped(ctx, list(shape.value.reshape(-1)))
    if like is None:
        if fold.is_symbolic(shape.value):
            raise NotConvertible(f"a constant {what} a shape known only at run time")
        raise NotConvertible(f"a constant {what} a fixed shape (nothing computed to broadcast)")
    value, dtype = fixed_array(constant)
    if value.ndim > like.rank:
        raise NotConvertible(f"a constant of higher rank than the shape it is {what}")
    stored, back = in_layout(value, like.perm)
    to = _CAST.get(int(onnx_type(constant.value)), "float32")
    if stored.size == 1:
        number = stored.reshape(-1)[0]
        layer = interop_layers.Expand(scalar=float(number) if dtype == "float32" else int(number),
                                      constant_dtype=dtype, to=to, name=ctx.name())
        ctx.output(layer(like.tensor), like.perm)
        return
    layer = interop_layers.Expand(constant_shape=list(stored.shape), constant_dtype=dtype, to=to, name=ctx.name())
    out = layer(like.tensor)
    set_weight(ctx, layer.constant, constant, stored, back)
    ctx.output(out, like.perm)


def _batch_shaped(ctx: NodeContext, entries: list[Any]) -> Value | None:
    """A computed tensor of shape ``entries``: fixed sizes and one run-time size that an axis of a computed
    tensor has (torch.onnx's zero initial state of a recurrent layer, ``[1, batch, hidden]``).
    None when the shape is not of that kind."""
    import keras

    from interop_keras import layers as interop_layers

    symbolic = [i for i, d in enumerate(entries) if isinstance(d, fold.Dim)]
    if len(entries) < 2 or len(symbolic) != 1:
        return None
    k = symbolic[0]
    dim = entries[k]
    if len(dim.terms) != 1 or dim.factor != 1:
        return None
    source = ctx.importer.size_sources.get(id(dim.terms[0]))
    if source is None:
        return None
    tensor, axis = source
    rank = len(tensor.shape)
    if rank > 1:
        rest = [i for i in range(rank) if i != axis]
        tensor = interop_layers.Slice([0] * len(rest), [1] * len(rest), rest, [1] * len(rest),
                                      name=ctx.name("batch_of"))(tensor)
    if axis != 0:  # the size first (a sequence-first input's batch is its Keras axis 1)
        tensor = interop_layers.Transpose([axis, *(i for i in range(rank) if i != axis)],
                                          name=ctx.name("batch_first"))(tensor)
    tensor = keras.layers.Reshape((1,) * (len(entries) - 1), name=ctx.name("batch_shaped"))(tensor)
    others = [i for i in range(len(entries)) if i != k]
    tensor = interop_layers.Expand(shape=[1] + [int(entries[i]) for i in others], name=ctx.name("sized"))(tensor)
    return Value(tensor, (k, *others))


@converter("ConstantOfShape", versions=(9, 20, 21, 23, 24, 25))
def constant_of_shape(ctx: NodeContext) -> None:
    """A tensor of one value in the shape of a computed tensor (``zeros_like`` through tf2onnx); fixed
    shapes fold at import."""
    shape = ctx.importer.constants.get(ctx.node.input[0])
    if shape is None:
        raise NotConvertible("the shape is computed at run time")
    fill = ctx.attr("value")
    value = fold.tensor_value(fill) if fill is not None else np.zeros(1, np.float32)
    _constant_like(ctx, Constant(value.reshape(())), shape, "filled to")


def onnx_type(value: np.ndarray) -> int:
    """The ONNX element type of a numpy array."""
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype)
