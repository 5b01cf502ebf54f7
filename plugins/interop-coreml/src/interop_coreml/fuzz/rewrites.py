"""Graph rewrites the oracle verifies with: the same function, written so an engine can run it as the spec says.

Each rewrite turns a graph into one that computes what the ONNX specification says the
original computes, in a form onnxruntime (or onnx's reference evaluator) runs correctly where
it deviates on the original: an op's spec function body instead of its kernel
(:func:`expand_mvn`), a one-element CumSum axis as the spec's 0-D one (:func:`scalar_cumsum_axes`),
auto_pad written out as the spec's explicit pads
(:func:`explicit_pool_pads`, :func:`explicit_convtranspose_pads`), an align_corners Resize as the
tf_crop_and_resize one with the spec's coordinates (:func:`align_corners_as_crop`), a Resize done one axis at a
time on 2-D tensors (:func:`separable_resize`). Each returns None when it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """An attribute's value (strings decoded), or ``default``."""
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def tensor_values(model: onnx.ModelProto, feeds: dict) -> dict:
    """Every tensor of the graph by name: feeds, initializers and what onnxruntime (unoptimised) computes."""
    from interop_coreml.fuzz.shrink import intermediate_values

    values = {**feeds, **intermediate_values(model, feeds)}
    for init in model.graph.initializer:
        values.setdefault(init.name, onnx.numpy_helper.to_array(init))
    return values


class _Graph:
    """The initializers of a graph being rewritten: new constants are added here."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model

    def const(self, name: str, array: np.ndarray) -> str:
        self.model.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(array), name))
        return name


def _replace_nodes(model: onnx.ModelProto, chosen: Callable[[onnx.NodeProto], bool],
                   replace: Callable[[int, onnx.NodeProto, _Graph], list | None]) -> onnx.ModelProto | None:
    """A copy of ``model`` with each node ``chosen`` accepts replaced by the nodes ``replace`` returns.

    ``replace(index, node, graph)`` may add constants with ``graph.const``; it returns None when
    it cannot rewrite the node, and so does this function then.
    """
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = _Graph(rewritten)
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(model.graph.node):
        if not chosen(node):
            nodes.append(node)
            continue
        new = replace(index, node, graph)
        if new is None:
            return None
        nodes += new
    del rewritten.graph.node[:]
    rewritten.graph.node.extend(nodes)
    del rewritten.graph.value_info[:]
    return rewritten


def expand_mvn(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each MeanVarianceNormalization replaced by the nodes of its spec function body.

    onnx's reference evaluator implements MVN only for its default 4-D axes; the expansion
    lets it judge any rank: (X - E[X]) / (sqrt(E[X²] - E[X]²) + 1e-9).
    """
    from onnx import helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def replace(index: int, node: onnx.NodeProto, graph: _Graph) -> list:
        axes = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "axes"), [0, 2, 3])
        p = f"_mvn{index}_"
        x, y = node.input[0], node.output[0]

        def mean(src: str, dst: str) -> onnx.NodeProto:
            if opset >= 18:
                return helper.make_node("ReduceMean", [src, p + "axes"], [dst], keepdims=1)
            return helper.make_node("ReduceMean", [src], [dst], axes=axes, keepdims=1)

        if opset >= 18:
            graph.const(p + "axes", np.asarray(axes, np.int64))
        eps = graph.const(p + "eps", np.asarray(1e-9, np.float32))
        return [
            mean(x, p + "ex"), helper.make_node("Mul", [x, x], [p + "x2"]), mean(p + "x2", p + "ex2"),
            helper.make_node("Mul", [p + "ex", p + "ex"], [p + "ex_2"]),
            helper.make_node("Sub", [p + "ex2", p + "ex_2"], [p + "var"]),
            helper.make_node("Sqrt", [p + "var"], [p + "std"]),
            helper.make_node("Add", [p + "std", eps], [p + "den"]),
            helper.make_node("Sub", [x, p + "ex"], [p + "num"]),
            helper.make_node("Div", [p + "num", p + "den"], [y]),
        ]

    return _replace_nodes(model, lambda node: node.op_type == "MeanVarianceNormalization", replace)


def scalar_cumsum_axes(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each CumSum axis held in a constant of shape [1] given as a 0-D constant.

    The spec's axis is a 0-D tensor; onnxruntime and the translator also take a one-element 1-D
    one, as exporters write it, while onnx's reference evaluator raises on it. The same values,
    so the reference evaluator can judge the graph.
    """
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    constants = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    constants.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    for index, node in enumerate(rewritten.graph.node):
        axis = constants.get(node.input[1]) if node.op_type == "CumSum" and len(node.input) > 1 else None
        if axis is not None and axis.shape == (1,):
            name = f"_cumsum{index}_axis"
            rewritten.graph.initializer.append(onnx.numpy_helper.from_array(axis.reshape(()), name))
            node.input[1] = name
    return rewritten


def reference_compatible(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` as onnx's reference evaluator can run it: MVN as its function body, CumSum axes 0-D."""
    return scalar_cumsum_axes(expand_mvn(model))


def _same_dilated(node: onnx.NodeProto) -> bool:
    return (node.op_type in ("MaxPool", "AveragePool")
            and attr(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")
            and any(d > 1 for d in attr(node, "dilations", [])))


def explicit_pool_pads(model: onnx.ModelProto, feeds: dict) -> onnx.ModelProto | None:
    """``model`` with each SAME-padded dilated MaxPool/AveragePool given the spec's explicit pads.

    Per spatial axis: out = ceil(in / stride), total = max(0, (out - 1)·stride + (k - 1)·d + 1 - in),
    SAME_UPPER puts the odd one at the end, SAME_LOWER at the beginning; ceil_mode is dropped
    (SAME fixes the output size). None when a pool's input shape is not known.
    """
    pools = [node for node in model.graph.node if _same_dilated(node)]
    if not pools:
        return None
    values = tensor_values(model, feeds)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    for node in rewritten.graph.node:
        if not _same_dilated(node):
            continue
        if node.input[0] not in values:
            return None
        spatial = np.shape(values[node.input[0]])[2:]
        kernel = list(attr(node, "kernel_shape"))
        strides = list(attr(node, "strides", [1] * len(kernel)))
        dilations = list(attr(node, "dilations", [1] * len(kernel)))
        upper = attr(node, "auto_pad") == "SAME_UPPER"
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small = total // 2
            begins.append(small if upper else total - small)
            ends.append(total - begins[-1])
        kept = [a for a in node.attribute if a.name not in ("auto_pad", "ceil_mode", "pads")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(onnx.helper.make_attribute("pads", begins + ends))
    del rewritten.graph.value_info[:]
    return rewritten


def _same_convtranspose(node: onnx.NodeProto) -> bool:
    return node.op_type == "ConvTranspose" and attr(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")


def explicit_convtranspose_pads(model: onnx.ModelProto, feeds: dict) -> onnx.ModelProto | None:
    """``model`` with each SAME-padded ConvTranspose written out with the spec's padding.

    Per spatial axis the spec makes the output ``input · stride`` (or ``output_shape``) with
    total = stride·(in − 1) + output_padding + (k − 1)·d + 1 − out, SAME_UPPER putting
    total // 2 at the beginning and SAME_LOWER total − total // 2 (floor division, as the
    reference evaluator computes it). A negative total (kernel smaller than the stride) grows
    the output: each node becomes a ConvTranspose with the non-negative part of the pads and
    no bias, a zero Pad by the negative part, and the bias added after. onnxruntime runs that
    graph, grouped convolutions and all. None when there is no such node or a shape is unknown.
    """
    from onnx import helper

    if not any(_same_convtranspose(node) for node in model.graph.node):
        return None
    values = tensor_values(model, feeds)

    def replace(index: int, node: onnx.NodeProto, graph: _Graph) -> list | None:
        if node.input[0] not in values or node.input[1] not in values:
            return None
        spatial = np.shape(values[node.input[0]])[2:]
        n = len(spatial)
        kernel = list(attr(node, "kernel_shape", np.shape(values[node.input[1]])[2:]))
        strides = list(attr(node, "strides", [1] * n))
        dilations = list(attr(node, "dilations", [1] * n))
        output_padding = list(attr(node, "output_padding", [0] * n))
        output_shape = attr(node, "output_shape")
        wanted = list(output_shape)[-n:] if output_shape else [size * s for size, s in zip(spatial, strides)]
        upper = attr(node, "auto_pad") == "SAME_UPPER"
        begins, ends = [], []
        for size, k, s, d, extra, out in zip(spatial, kernel, strides, dilations, output_padding, wanted):
            total = s * (size - 1) + extra + (k - 1) * d + 1 - out
            begins.append(total // 2 if upper else total - total // 2)
            ends.append(total - begins[-1])
        p = f"_ct{index}_"
        conv = helper.make_node("ConvTranspose", list(node.input[:2]), [p + "conv"], name=p + "conv")
        conv.attribute.extend(a for a in node.attribute if a.name not in ("auto_pad", "pads", "output_shape"))
        conv.attribute.append(helper.make_attribute("pads", [max(b, 0) for b in begins] + [max(e, 0) for e in ends]))
        grow = graph.const(p + "grow", np.asarray([0, 0] + [max(-b, 0) for b in begins]
                                                  + [0, 0] + [max(-e, 0) for e in ends], np.int64))
        has_bias = len(node.input) > 2 and bool(node.input[2])
        padded = p + "padded" if has_bias else node.output[0]
        nodes = [conv, helper.make_node("Pad", [p + "conv", grow], [padded], name=p + "pad")]
        if has_bias:
            shape = graph.const(p + "bias_shape", np.asarray([1, -1] + [1] * n, np.int64))
            nodes += [helper.make_node("Reshape", [node.input[2], shape], [p + "bias"]),
                      helper.make_node("Add", [padded, p + "bias"], [node.output[0]])]
        return nodes

    rewritten = _replace_nodes(model, _same_convtranspose, replace)
    if rewritten is not None:
        for output in rewritten.graph.output:  # the spec's shape, not what shape inference declared
            output.type.tensor_type.ClearField("shape")
    return rewritten


def _known_values(model: onnx.ModelProto, feeds: dict, names: list[str]) -> dict | None:
    """The values of ``names``: feeds, initializers, or onnxruntime on the part of the graph before them."""
    from interop_coreml.fuzz.oracle import run_onnxruntime, upstream
    from interop_coreml.fuzz.shrink import _declare_outputs

    known = {**{i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}, **feeds}
    missing = [n for n in names if n not in known]
    if missing:
        probe = _declare_outputs(model, missing)
        if probe is None:
            return None
        try:
            sub, sub_feeds = upstream(probe, feeds, missing)
            known.update(run_onnxruntime(sub, sub_feeds, optimize=False))
        except Exception:  # noqa: BLE001
            return None
    return {n: np.asarray(known[n]) for n in names}


def separable_resize(model: onnx.ModelProto, feeds: dict) -> onnx.ModelProto | None:
    """``model`` with each Resize done one axis at a time, each on a 2-D tensor.

    The spec's interpolation (nearest, linear, cubic) is a tensor product: each axis is
    resized on its own with its own scale, coordinate transformation and ROI. onnxruntime
    runs cubic only on 2-D (or 4-D with the outer two scales 1) inputs; written per axis as
    Transpose → Reshape to [rows, length] → Resize with scales [1, s] (or sizes [rows, n]) →
    Reshape → Transpose, any Resize becomes one it runs. None when the graph has no Resize, or
    one with antialias or a keep_aspect_ratio_policy (not separable that way), or unknown values.
    """
    from onnx import helper

    resizes = [node for node in model.graph.node if node.op_type == "Resize"]
    if not resizes or any(attr(n, "antialias", 0) or attr(n, "keep_aspect_ratio_policy", "stretch") != "stretch"
                          for n in resizes):
        return None
    wanted = [name for n in resizes for name in n.input[:4] if name]
    values = _known_values(model, feeds, wanted)
    if values is None:
        return None
    def replace(index: int, node: onnx.NodeProto, graph: _Graph) -> list:
        inputs = list(node.input) + [""] * (4 - len(node.input))
        shape = list(values[inputs[0]].shape)  # the input's lengths, for the axes that stay the same
        rank = len(shape)
        axes = [a % rank for a in attr(node, "axes", list(range(rank)))]
        roi = values[inputs[1]].astype(np.float64) if inputs[1] and values[inputs[1]].size else None
        scales = values[inputs[2]].astype(np.float64) if inputs[2] and values[inputs[2]].size else None
        sizes = values[inputs[3]].astype(np.int64) if inputs[3] and values[inputs[3]].size else None
        crop = attr(node, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize"
        kept = [a for a in node.attribute if a.name not in ("axes", "keep_aspect_ratio_policy", "antialias")]
        current = inputs[0]
        p = f"_rs{index}_"

        def const(name: str, array: np.ndarray) -> str:
            return graph.const(p + name, array)

        steps = []
        for i, axis in enumerate(axes):
            start, end = (roi[i], roi[i + len(axes)]) if roi is not None and crop else (0.0, 1.0)
            scale = float(scales[i]) if scales is not None else None
            size = int(sizes[i]) if sizes is not None else None
            if (scale == 1.0 or size == shape[axis]) and (start, end) == (0.0, 1.0):
                continue  # the identity on this axis
            steps.append((axis, start, end, scale, size))
        if not steps:
            return [helper.make_node("Identity", [current], [node.output[0]])]
        nodes: list[onnx.NodeProto] = []
        for step, (axis, start, end, scale, size) in enumerate(steps):
            q = f"{step}_"
            perm = [a for a in range(rank) if a != axis] + [axis]
            moved, flat, resized, unflat = (p + q + n for n in ("moved", "flat", "resized", "unflat"))
            nodes += [  # [..., L] -> [rows, L]; the other axes' lengths are read at run time
                helper.make_node("Transpose", [current], [moved], perm=perm),
                helper.make_node("Shape", [moved], [p + q + "shape"]),
                helper.make_node("Slice", [p + q + "shape", const(q + "zero", np.asarray([0], np.int64)),
                                           const(q + "minus_one", np.asarray([-1], np.int64))], [p + q + "others"]),
                helper.make_node("Slice", [p + q + "shape", p + q + "minus_one",
                                           const(q + "end", np.asarray([rank], np.int64))], [p + q + "shape_last"]),
                helper.make_node("Concat", [const(q + "rows", np.asarray([-1], np.int64)), p + q + "shape_last"],
                                 [p + q + "flat_shape"], axis=0),
                helper.make_node("Reshape", [moved, p + q + "flat_shape"], [flat]),
            ]
            resize_inputs = [flat, const(q + "roi", np.asarray([0.0, start, 1.0, end], np.float32)) if crop else ""]
            if scale is not None:
                resize_inputs.append(const(q + "scales", np.asarray([1.0, scale], np.float32)))
            else:
                nodes += [helper.make_node("Shape", [flat], [p + q + "flat_shape_now"]),
                          helper.make_node("Slice", [p + q + "flat_shape_now", p + q + "zero",
                                                     const(q + "one", np.asarray([1], np.int64))], [p + q + "flat_rows"]),
                          helper.make_node("Concat", [p + q + "flat_rows", const(q + "size", np.asarray([size], np.int64))],
                                           [p + q + "sizes"], axis=0)]
                resize_inputs += ["", p + q + "sizes"]
            two_d = helper.make_node("Resize", resize_inputs, [resized])
            two_d.attribute.extend(kept)
            current = node.output[0] if step == len(steps) - 1 else p + q + "out"
            nodes += [
                two_d,
                helper.make_node("Concat", [p + q + "others", p + q + "rows"], [p + q + "back"], axis=0),
                helper.make_node("Reshape", [resized, p + q + "back"], [unflat]),
                helper.make_node("Transpose", [unflat], [current], perm=[int(a) for a in np.argsort(perm)]),
            ]
        return nodes

    return _replace_nodes(model, lambda node: node.op_type == "Resize", replace)


def _batch_major_recurrent(node: onnx.NodeProto) -> bool:
    return node.op_type in ("RNN", "GRU", "LSTM") and attr(node, "layout", 0) == 1


def time_major_recurrent(model: onnx.ModelProto, feeds: dict) -> onnx.ModelProto | None:  # noqa: ARG001
    """``model`` with each RNN/GRU/LSTM of ``layout=1`` run as ``layout=0`` between Transposes.

    onnxruntime's CPU kernels take layout 0 only. The spec's layout 1 is layout 0 with X and
    the initial states batch-major ([batch, seq, input], [batch, dirs, hidden]) and Y
    [batch, seq, dirs, hidden], Y_h and Y_c [batch, dirs, hidden]; each is transposed to or
    from layout 0 around the node. None when there is no such node.
    """
    from onnx import helper

    if not any(_batch_major_recurrent(node) for node in model.graph.node):
        return None

    def replace(index: int, node: onnx.NodeProto, graph: _Graph) -> list:
        p = f"_tm{index}_"
        inputs, nodes = list(node.input), []
        for i in (0, 5, 6):  # X, initial_h, initial_c
            if i < len(inputs) and inputs[i]:
                nodes.append(helper.make_node("Transpose", [inputs[i]], [f"{p}in{i}"], perm=[1, 0, 2]))
                inputs[i] = f"{p}in{i}"
        outputs = [f"{p}out{i}" if name else "" for i, name in enumerate(node.output)]
        core = helper.make_node(node.op_type, inputs, outputs, name=p + "core")
        core.attribute.extend(a for a in node.attribute if a.name != "layout")
        nodes.append(core)
        for i, name in enumerate(node.output):
            if name:
                nodes.append(helper.make_node("Transpose", [outputs[i]], [name], perm=[2, 0, 1, 3] if i == 0 else [1, 0, 2]))
        return nodes

    return _replace_nodes(model, _batch_major_recurrent, replace)


#: Rewrites into a graph the spec says computes the same, for the ops onnxruntime cannot run as written.
ONNXRUNTIME_COMPATIBLE: tuple[Callable[[onnx.ModelProto, dict], onnx.ModelProto | None], ...] = (
    separable_resize, time_major_recurrent)


def _align_corners_by_scales(node: onnx.NodeProto) -> bool:
    return (node.op_type == "Resize" and attr(node, "coordinate_transformation_mode") == "align_corners"
            and len(node.input) > 2 and bool(node.input[2]) and not (len(node.input) > 3 and node.input[3]))


def align_corners_as_crop(model: onnx.ModelProto, feeds: dict) -> onnx.ModelProto | None:
    """``model`` with each align_corners Resize by scales written as a tf_crop_and_resize one to the
    output sizes onnxruntime computes, whose region of interest gives the spec's coordinates.

    The spec's align_corners maps x_resized to x_resized · (L − 1) / (L·scale − 1), with the
    fractional length L·scale; tf_crop_and_resize maps it to x_resized · end · (L − 1) / (n − 1) for
    n output positions, so the region ends at (n − 1) / (L·scale − 1), and a single output position
    samples 0 (start = end = 0). None when a Resize's input or scales are not known, or it has axes.
    """
    if not any(_align_corners_by_scales(node) for node in model.graph.node):
        return None
    values = tensor_values(model, feeds)

    def replace(index: int, node: onnx.NodeProto, graph: _Graph) -> list | None:
        data, scales, out = (values.get(node.input[0]), values.get(node.input[2]), values.get(node.output[0]))
        if data is None or scales is None or out is None or attr(node, "axes") is not None:
            return None
        if np.size(scales) != np.ndim(data):
            return None
        lengths = np.asarray(np.shape(data), dtype=np.float64) * np.asarray(scales, dtype=np.float32).astype(np.float64)
        ends = [0.0 if n <= 1 else (n - 1) / (length - 1) for n, length in zip(np.shape(out), lengths)]
        roi = graph.const(f"{node.output[0]}__roi", np.array([0.0] * len(ends) + ends, dtype=np.float32))
        sizes = graph.const(f"{node.output[0]}__sizes", np.array(np.shape(out), dtype=np.int64))
        kept = [a for a in node.attribute if a.name != "coordinate_transformation_mode"]
        crop = onnx.helper.make_node("Resize", [node.input[0], roi, "", sizes], list(node.output), name=node.name,
                                     coordinate_transformation_mode="tf_crop_and_resize")
        crop.attribute.extend(kept)
        return [crop]

    return _replace_nodes(model, _align_corners_by_scales, replace)
