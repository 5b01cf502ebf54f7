"""Resize and Upsample by whole factors -> keras.layers.UpSampling1D/2D/3D (channels-last).

Keras' nearest upsampling repeats each element; its bilinear upsampling is
TensorFlow's ``half_pixel_centers`` resize. A Resize converts when it computes
exactly that: whole scale factors on the spatial axes only, and for ``nearest``
a coordinate transformation and rounding that map output index i to input
index i // factor (checked by evaluating ONNX's own definition on a ramp), for
``linear`` the half-pixel transformations (2-D only). Other modes, fractional
factors and downsampling are reported as unsupported.
"""

from __future__ import annotations

import numpy as np
import onnx

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import Value, channels_last
from interop_keras.onnx_import.layer_table import converter


def _factors(ctx: NodeContext, x: Value, scales: list[float] | None, sizes: list[int] | None) -> list[int]:
    shape = x.shape
    if sizes:
        if any(shape[a] is None for a in range(2, x.rank)):
            raise NotConvertible("target sizes on a tensor whose spatial size is known only at run time")
        if list(sizes[:2]) != [shape[0], shape[1]] and not (shape[0] is None and sizes[1] == shape[1]):
            raise NotConvertible("resizing the batch or channel axis")
        factors = []
        for a in range(2, x.rank):
            if sizes[a] % shape[a]:  # type: ignore[operator]
                raise NotConvertible(f"target size {sizes[a]} is not a whole multiple of {shape[a]}")
            factors.append(sizes[a] // shape[a])  # type: ignore[operator]
        return factors
    if scales is None or len(scales) != x.rank:
        raise NotConvertible("no scales or sizes for every axis")
    if scales[0] != 1 or scales[1] != 1:
        raise NotConvertible("resizing the batch or channel axis")
    factors = [int(round(s)) for s in scales[2:]]
    if any(abs(s - f) > 1e-6 or f < 1 for s, f in zip(scales[2:], factors)):
        raise NotConvertible(f"scales {scales[2:]} are not whole upsampling factors")
    return factors


def _nearest_is_repeat(ctx: NodeContext, factor: int) -> bool:
    """Whether ONNX's nearest Resize with this node's attributes maps output i to input i // factor."""
    size = 2 * factor + 3
    ramp = np.arange(size, dtype=np.float32).reshape(1, 1, size)
    attrs = {k: v for k, v in ctx.attrs.items() if k in ("coordinate_transformation_mode", "nearest_mode")}
    node = onnx.helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", **attrs)
    from onnx.reference import ReferenceEvaluator

    graph = onnx.helper.make_graph(
        [node], "probe", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, size])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array([1, 1, factor], np.float32), "scales")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    try:
        (out,) = ReferenceEvaluator(model).run(None, {"x": ramp})
    except Exception:  # noqa: BLE001 - an attribute combination the reference cannot run
        return False
    return bool(np.array_equal(np.asarray(out).reshape(-1), np.repeat(ramp.reshape(-1), factor)))


def _upsample(ctx: NodeContext, x: Value, factors: list[int], mode: str) -> None:
    import keras

    n = len(factors)
    if n not in (1, 2, 3):
        raise NotConvertible(f"{n}-D resize (Keras upsamples 1-D, 2-D and 3-D)")
    if mode == "nearest":
        interpolation = "nearest"
        if not all(_nearest_is_repeat(ctx, f) for f in set(factors)):
            raise NotConvertible("nearest with a coordinate mapping other than repeating each element")
    elif mode == "linear":
        transform = ctx.attr("coordinate_transformation_mode", "half_pixel")
        if n != 2 or transform not in ("half_pixel", "pytorch_half_pixel"):
            raise NotConvertible(f"linear resize with {transform!r} coordinates in {n}-D "
                                 "(Keras' bilinear upsampling is 2-D half-pixel)")
        interpolation = "bilinear"
    else:
        raise NotConvertible(f"mode {mode!r} (Keras upsamples with nearest or bilinear)")
    if all(f == 1 for f in factors):
        ctx.output(x.tensor, x.perm)
        return
    name = ctx.name()
    if n == 1:
        layer = keras.layers.UpSampling1D(size=factors[0], name=name)
    elif n == 2:
        layer = keras.layers.UpSampling2D(size=tuple(factors), interpolation=interpolation, name=name)
    else:
        layer = keras.layers.UpSampling3D(size=tuple(factors), name=name)
    ctx.output(layer(ctx.to_layout(x, channels_last(x.rank))), channels_last(x.rank))


def _floats(ctx: NodeContext, index: int) -> list[float] | None:
    if not ctx.has_input(index):
        return None
    values = ctx.constant(index, "scales").value.reshape(-1)
    return [float(v) for v in values] if values.size else None


@converter("Resize", versions=(10, 11, 13, 18, 19))
def resize(ctx: NodeContext) -> None:
    x = ctx.value(0)
    if ctx.attr("antialias", 0):
        raise NotConvertible("antialias=1")
    if ctx.attr("axes") is not None:
        raise NotConvertible("the axes attribute")
    if ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise NotConvertible("keep_aspect_ratio_policy other than stretch")
    mode = ctx.attr("mode", "nearest")
    if ctx.since == 10:
        # Resize-10 is Upsample-9: asymmetric coordinates, nearest rounds down.
        ctx.attrs.setdefault("coordinate_transformation_mode", "asymmetric")
        ctx.attrs.setdefault("nearest_mode", "floor")
        if mode == "linear":
            raise NotConvertible("Resize-10 linear (asymmetric coordinates; Keras' bilinear is half-pixel)")
        factors = _factors(ctx, x, _floats(ctx, 1), None)
    else:
        if ctx.attr("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
            raise NotConvertible("tf_crop_and_resize")
        sizes = ctx.ints(3, "sizes") if ctx.has_input(3) else None
        factors = _factors(ctx, x, _floats(ctx, 2), sizes or None)
    _upsample(ctx, x, factors, mode)


@converter("Upsample", versions=(7, 9))
def upsample(ctx: NodeContext) -> None:
    x = ctx.value(0)
    scales = [float(s) for s in ctx.attr("scales")] if ctx.since < 9 else _floats(ctx, 1)
    mode = ctx.attr("mode", "nearest")
    if mode != "nearest":
        raise NotConvertible(f"Upsample {mode} (asymmetric coordinates; Keras' bilinear is half-pixel)")
    ctx.attrs.setdefault("coordinate_transformation_mode", "asymmetric")
    ctx.attrs.setdefault("nearest_mode", "floor")
    _upsample(ctx, x, _factors(ctx, x, scales, None), mode)
