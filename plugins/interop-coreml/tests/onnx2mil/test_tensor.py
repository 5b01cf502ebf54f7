"""Shape and data-movement layers (flatten, concat, split, slice, pad, upsample, reshape chains).

Torch-exported layers first; then helper-built ONNX graphs for the classes a differential
fuzzer found (Resize sizes, Slice clamping, short-index Gather/ScatterElements, dynamic Split,
rank-0 int64 constants, int64 round trips), held against onnxruntime and the reference evaluator.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, TypeProto, helper, numpy_helper
import torch
import torch.nn.functional as F
from torch import nn

from interop_coreml.onnx2mil.errors import UnsupportedModelError

from .conftest import LambdaModule, make_model, ort_run, save, tensor_info
from .spec_check import check_graph

CASES = {
    "flatten": (nn.Flatten(), (3, 4, 5)),
    "view_batch_minus_one": (LambdaModule(lambda x: x.view(x.size(0), -1)), (3, 4, 5)),
    "reshape_symbolic": (LambdaModule(lambda x: x.reshape(x.shape[0], x.shape[1] * 2, -1)), (4, 6, 5)),
    "concat": (LambdaModule(lambda x: torch.cat([x, x * 2, x[:, :1]], dim=1)), (3, 4, 4)),
    "split": (LambdaModule(lambda x: sum(p.sum(dim=1, keepdim=True) for p in torch.split(x, [1, 2, 3], dim=1))), (6, 4)),
    "chunk": (LambdaModule(lambda x: torch.chunk(x, 2, dim=-1)[1] * 3), (3, 8)),
    "slice": (LambdaModule(lambda x: x[:, 1:3, ::2, -3:]), (4, 6, 7)),
    "pad_constant": (LambdaModule(lambda x: F.pad(x, (1, 2, 0, 1), value=0.5)), (2, 4, 4)),
    "pad_reflect": (nn.ReflectionPad2d(2), (2, 5, 5)),
    "pad_replicate": (nn.ReplicationPad2d((1, 0, 2, 1)), (2, 5, 5)),
    "upsample_nearest": (nn.Upsample(scale_factor=2, mode="nearest"), (3, 4, 5)),
    "upsample_bilinear": (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), (3, 4, 5)),
    "upsample_bilinear_aligned": (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (3, 4, 5)),
    "interpolate_size": (LambdaModule(lambda x: F.interpolate(x, size=(6, 9), mode="nearest")), (2, 3, 3)),
    "dropout_eval": (nn.Sequential(nn.Dropout(0.5), nn.Linear(5, 3)), (5,)),
    "transpose_permute": (LambdaModule(lambda x: x.permute(0, 2, 3, 1).contiguous()), (3, 4, 5)),
    "unsqueeze_squeeze": (LambdaModule(lambda x: x.unsqueeze(1).squeeze(1) + x.unsqueeze(-1).mean(-1)), (4, 5)),
    "pixel_shuffle": (nn.PixelShuffle(2), (8, 3, 3)),
    "expand": (LambdaModule(lambda x: x[:, :1].expand(-1, 4, -1)), (3, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensor_layer_matches_onnxruntime(name, torch_check):
    module, shape = CASES[name]
    model = torch_check(module, shape)
    assert model.graph.node


# ---------------------------------------------------------------- ONNX-built graphs

def _init(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


_RESIZE_MODES = {
    "linear-align": dict(mode="linear", coordinate_transformation_mode="align_corners"),
    "linear-half": dict(mode="linear", coordinate_transformation_mode="half_pixel"),
    "linear-asym": dict(mode="linear", coordinate_transformation_mode="asymmetric"),
    "nearest-floor": dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    "nearest-round": dict(mode="nearest"),
    "cubic": dict(mode="cubic", coordinate_transformation_mode="half_pixel"),
}


@pytest.mark.parametrize("mode", sorted(_RESIZE_MODES))
@pytest.mark.parametrize("sizes, in_shape", [
    ([2, 3, 7, 3], [2, 3, 3, 1]),     # 3 -> 7 rows: no whole factor
    ([1, 2, 5, 4], [3, 2, 4, 4]),     # the batch axis shrinks
    ([2, 5, 4], [2, 3, 6]),           # rank 3, channel-like axis grows
])
@pytest.mark.parametrize("opset", [13, 19])
def test_resize_by_sizes_gives_exactly_those_sizes(mode, sizes, in_shape, opset, tmp_path):
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **_RESIZE_MODES[mode])
    model = make_model([node], [tensor_info("x", in_shape)], [tensor_info("y", sizes)], [_init("sizes", sizes)], opset)
    x = np.random.default_rng(3).standard_normal(in_shape).astype(np.float32)
    # onnxruntime implements linear/cubic only over the inner axes of 4-D inputs (cubic: and 2-D).
    outer_changes = len(in_shape) == 4 and sizes[:2] != in_shape[:2]
    ort_has_it = mode.startswith("nearest") or not (outer_changes or (mode == "cubic" and len(in_shape) == 3))
    check_graph(model, [{"x": x}], tmp_path, rtol=1e-5, atol=1e-6, onnxruntime=ort_has_it)


def test_resize_by_scales_with_a_fractional_factor_and_dynamic_batch(tmp_path):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    inits = [_init("scales", [1, 1, 1.5, 0.75], np.float32)]
    model = make_model([node], [tensor_info("x", ["N", 2, 3, 5])], [tensor_info("y", ["N", 2, 4, 3])], inits, 18)
    rng = np.random.default_rng(4)
    check_graph(model, [{"x": rng.standard_normal((n, 2, 3, 5)).astype(np.float32)} for n in (1, 2)], tmp_path)


@pytest.mark.parametrize("mode", ["linear-align", "linear-half", "linear-asym", "nearest-floor", "nearest-round",
                                  "nearest-ceil-pytorch"])
@pytest.mark.parametrize("length", [1, 2, 5])
def test_resize_of_a_dynamic_axis_to_a_fixed_size(mode, length, tmp_path):
    attrs = _RESIZE_MODES.get(mode) or dict(mode="nearest", coordinate_transformation_mode="pytorch_half_pixel",
                                            nearest_mode="ceil")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    sizes = [length, 3, 4]
    model = make_model([node], [tensor_info("x", ["N", 3, 2])], [tensor_info("y", sizes)], [_init("sizes", sizes)], 19)
    rng = np.random.default_rng(13)
    # onnxruntime runs linear only over the inner axes; the reference evaluator covers those cases.
    check_graph(model, [{"x": rng.standard_normal((n, 3, 2)).astype(np.float32)} for n in (1, 2, 3, 7)], tmp_path,
                onnxruntime=mode.startswith("nearest"))


def test_cubic_resize_of_a_dynamic_axis_to_a_fixed_size_is_refused(tmp_path):
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="cubic")
    model = make_model([node], [tensor_info("x", [1, 1, "H", 3])], [tensor_info("y", [1, 1, 4, 3])],
                       [_init("sizes", [1, 1, 4, 3])], 19)
    with pytest.raises(UnsupportedModelError, match="dynamic axis 2"):
        save(model, tmp_path / "m.mlpackage")


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("start, end, step", [(-2, -3, -1), (-9, -10, -1), (5, -9, -2), (-1, -100, -1),
                                              (1, 0, -1), (-7, 9, 2), (2, 2**62, 1), (2**62, -2**62, -3)])
def test_slice_clamps_like_onnx(dynamic, start, end, step, tmp_path):
    node = helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])
    inits = [_init("starts", [start]), _init("ends", [end]), _init("axes", [0]), _init("steps", [step])]
    model = make_model([node], [tensor_info("x", ["N" if dynamic else 3, 2])], [tensor_info("y", None)], inits, 14)
    rng = np.random.default_rng(5)
    feeds = [{"x": rng.standard_normal((n, 2)).astype(np.float32)} for n in ((1, 3, 4) if dynamic else (3,))]
    # onnx's reference evaluator slices with Python's rules (start -2 of 1 row, step -1:
    # nothing), not the spec's clamp to [0, dim - 1]; onnxruntime follows the spec.
    check_graph(model, feeds, tmp_path, reference=False)


@pytest.mark.parametrize("start, end, step", [(-2, -3, -1), (-9, -10, -1), (5, -9, -2), (-1, -100, -1),
                                              (1, 0, -1), (-7, 9, 2), (2**62, -2**62, -3)])
def test_slice_of_a_constant_clamps_like_onnx(start, end, step, tmp_path):
    """The pre-pass folds a Slice of constants: by the spec's clamping, not the reference evaluator's numpy slicing."""
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    nodes = [helper.make_node("Slice", ["data", "starts", "ends", "axes", "steps"], ["s"]),
             helper.make_node("Add", ["s", "x"], ["y"])]
    inits = [_init("data", data, np.float32), _init("starts", [start]), _init("ends", [end]), _init("axes", [0]),
             _init("steps", [step])]
    model = make_model(nodes, [tensor_info("x", [1, 2])], [tensor_info("y", None)], inits, 14)
    check_graph(model, [{"x": np.full((1, 2), 0.5, np.float32)}], tmp_path, reference=False)


def test_slice_with_run_time_bounds(tmp_path):
    node = helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])
    inits = [_init("axes", [1, 0]), _init("steps", [-1, 2])]
    model = make_model([node], [tensor_info("x", ["N", 5]), tensor_info("starts", [2], TensorProto.INT64),
                                tensor_info("ends", [2], TensorProto.INT64)], [tensor_info("y", None)], inits, 13)
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    feeds = [{"x": x, "starts": np.array(s, np.int64), "ends": np.array(e, np.int64)}
             for s, e in (([-1, 0], [-9, 9]), ([3, -3], [0, 4]), ([-8, 1], [-2, 2]))]
    check_graph(model, feeds, tmp_path, reference=False)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_with_indices_shorter_than_data(dynamic, axis, tmp_path):
    data_shape, index_shape = [4, 5, 3], [2, 3, 2]
    rng = np.random.default_rng(6)
    dim = data_shape[axis]
    indices = rng.integers(-dim, dim, index_shape)
    node = helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)
    declared = ["N", 5, 3] if dynamic else data_shape
    model = make_model([node], [tensor_info("x", declared)], [tensor_info("y", index_shape)], [_init("i", indices)], 16)
    # The reference evaluator insists on equal dims; onnxruntime and the spec allow shorter indices.
    check_graph(model, [{"x": rng.standard_normal(data_shape).astype(np.float32)}], tmp_path, reference=False)


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements_with_indices_shorter_than_data(reduction, axis, tmp_path):
    data_shape, index_shape = [6, 5, 3], [3, 2, 2]
    rng = np.random.default_rng(7)
    dim = data_shape[axis]
    # distinct targets along the axis so "none" has one right answer
    indices = np.stack([rng.permutation(dim)[:index_shape[axis]] for _ in range(int(np.prod(index_shape)) // index_shape[axis])])
    indices = np.moveaxis(indices.reshape([s for i, s in enumerate(index_shape) if i != (axis % 3)] + [index_shape[axis]]), -1, axis % 3)
    indices = np.where(rng.random(indices.shape) < 0.3, indices - dim, indices)
    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis, reduction=reduction)
    inits = [_init("i", indices), _init("u", rng.standard_normal(index_shape), np.float32)]
    model = make_model([node], [tensor_info("x", data_shape)], [tensor_info("y", data_shape)], inits, 18)
    check_graph(model, [{"x": rng.standard_normal(data_shape).astype(np.float32)}], tmp_path)


@pytest.mark.parametrize("length, parts", [(5, 2), (7, 2), (8, 2), (5, 3), (7, 3), (8, 3), (10, 4)])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_split_num_outputs_last_part_smaller(length, parts, dynamic, tmp_path):
    names = [f"y{i}" for i in range(parts)]
    node = helper.make_node("Split", ["x"], names, axis=-2, num_outputs=parts)
    model = make_model([node], [tensor_info("x", ["N" if dynamic else length, 2])],
                       [tensor_info(n, None) for n in names], opset=18)
    check_graph(model, [{"x": np.arange(length * 2, dtype=np.float32).reshape(length, 2)}], tmp_path)


@pytest.mark.parametrize("k", [-2, 0, 1])
@pytest.mark.parametrize("upper", [0, 1])
def test_rank0_int64_constants_trilu_k_and_cumsum_axis(k, upper, tmp_path):
    nodes = [helper.make_node("Trilu", ["x", "k"], ["t"], upper=upper),
             helper.make_node("CumSum", ["t", "axis"], ["y"], reverse=upper)]
    inits = [_init("k", k), _init("axis", -1 if upper else 0)]
    model = make_model(nodes, [tensor_info("x", ["N", 3, 4])], [tensor_info("y", None)], inits, 15)
    x = np.random.default_rng(8).standard_normal((2, 3, 4)).astype(np.float32)
    check_graph(model, [{"x": x}], tmp_path)


@pytest.mark.parametrize("back_to", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_float_through_int64_and_back_keeps_values_past_int32(back_to, tmp_path):
    """Core ML holds int64 as int32; a float→INT64→float round trip must not overflow it."""
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT64),
             helper.make_node("Cast", ["i"], ["f"], to=back_to),
             helper.make_node("Cast", ["f"], ["y"], to=TensorProto.FLOAT)]
    model = make_model(nodes, [tensor_info("x", ["N"])], [tensor_info("y", ["N"])], opset=14)
    x = np.array([2.5, -2.5, 0.75, 3e9, -4.6e18, 1.5e12, -7.9e9, 123456.7], np.float32)
    check_graph(model, [{"x": x}], tmp_path, rtol=0, atol=0)


def test_squeeze_without_axes_of_dynamic_dims_is_refused(tmp_path):
    """ONNX squeezes every dim that is 1 at run time; with a dynamic dim the output rank is unknown."""
    node = helper.make_node("Squeeze", ["x"], ["y"])
    model = make_model([node], [tensor_info("x", ["N", 1, 3])], [tensor_info("y", None)], opset=13)
    with pytest.raises(UnsupportedModelError, match="Squeeze without axes"):
        save(model, tmp_path / "m.mlpackage")
    static = make_model([node], [tensor_info("x", [2, 1, 3])], [tensor_info("y", None)], opset=13)
    check_graph(static, [{"x": np.ones((2, 1, 3), np.float32)}], tmp_path)


@pytest.mark.parametrize("mode", ["reflect", "edge"])
@pytest.mark.parametrize("pads", [[1, 0, 2, 0, 2, 1, 0, 1], [0, 2, 0, 0, 0, 1, 0, 0], [2, 0, 0, 0, 1, 0, 0, 0]])
def test_reflect_and_edge_pad_on_any_axis(mode, pads, tmp_path):
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)
    model = make_model([node], [tensor_info("x", ["N", 3, 4, 5])], [tensor_info("y", None)], [_init("pads", pads)], 18)
    x = np.random.default_rng(9).standard_normal((3, 3, 4, 5)).astype(np.float32)
    check_graph(model, [{"x": x}], tmp_path)


@pytest.mark.parametrize("upper", [0, 1])
def test_trilu_over_dynamic_matrix_dims(upper, tmp_path):
    node = helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)
    model = make_model([node], [tensor_info("x", [2, "R", "C"])], [tensor_info("y", None)], [_init("k", 1)], 14)
    rng = np.random.default_rng(10)
    check_graph(model, [{"x": rng.standard_normal((2, r, c)).astype(np.float32)} for r, c in ((3, 5), (4, 2))],
                tmp_path)


@pytest.mark.parametrize("op", ["Size", "Shape"])
def test_size_and_shape_of_a_ceil_mode_pool_are_the_real_ones(op, tmp_path):
    """ONNX shape inference says 2 columns here; the spec's ceil rule (and every runtime) gives 1."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], ceil_mode=1, kernel_shape=[1, 1], strides=[1, 3]),
             helper.make_node(op, ["p"], ["s"]),
             helper.make_node("Cast", ["s"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceProd", ["f"], ["n"], keepdims=1) if op == "Shape" else
             helper.make_node("Identity", ["f"], ["n"]),
             helper.make_node("Mul", ["p", "n"], ["y"])]
    model = make_model(nodes, [tensor_info("x", [1, 3, 6, 3])], [tensor_info("y", None)], opset=16)
    x = np.random.default_rng(11).standard_normal((1, 3, 6, 3)).astype(np.float32)
    # onnxruntime's optimizer folds Shape from ONNX shape inference ([1, 3, 6, 2]) while its
    # MaxPool returns 1 column: there only the reference evaluator is self-consistent.
    check_graph(model, [{"x": x}], tmp_path, onnxruntime=op == "Size")


@pytest.mark.parametrize("pads", [[0, -1, 0, 2, 0, 0, -2, 1], [-1, 0, 0, -1, 0, 0, 0, 0], [1, -2, 0, 0, 0, 1, -1, 0]])
def test_constant_pad_with_negative_pads_crops(pads, tmp_path):
    node = helper.make_node("Pad", ["x", "pads", "v"], ["y"], mode="constant")
    inits = [_init("pads", pads), _init("v", 0.5, np.float32)]
    model = make_model([node], [tensor_info("x", ["N", 3, 4, 5])], [tensor_info("y", None)], inits, 18)
    rng = np.random.default_rng(12)
    # onnx's reference evaluator hands negative pads to np.pad, which refuses them.
    check_graph(model, [{"x": rng.standard_normal((n, 3, 4, 5)).astype(np.float32)} for n in (2, 3)], tmp_path,
                reference=False)


@pytest.mark.parametrize("dtype, to", [(TensorProto.FLOAT, None), (TensorProto.INT32, None),
                                       (TensorProto.FLOAT, TensorProto.INT32), (TensorProto.INT32, TensorProto.FLOAT)])
@pytest.mark.parametrize("k", [-1, 0, 2])
def test_eye_like_over_dynamic_dims_keeps_the_onnx_dtype(dtype, to, k, tmp_path):
    attrs = {"k": k} if to is None else {"k": k, "dtype": to}
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("EyeLike", ["a"], ["y"], **attrs)]
    model = make_model(nodes, [tensor_info("x", ["R", "C"], dtype)], [tensor_info("y", None, to or dtype)], opset=15)
    feeds = [{"x": np.ones(shape, onnx_np(dtype))} for shape in ((3, 4), (4, 2))]
    check_graph(model, feeds, tmp_path, rtol=0, atol=0)
    static = make_model(nodes, [tensor_info("x", [3, 4], dtype)], [tensor_info("y", None, to or dtype)], opset=15)
    check_graph(static, feeds[:1], tmp_path, rtol=0, atol=0)


def onnx_np(dtype):
    return helper.tensor_dtype_to_np_dtype(dtype)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_elements_into_a_constant_keeps_its_reduction(reduction, tmp_path):
    """All three operands known at conversion time (data from a static EyeLike)."""
    rng = np.random.default_rng(14)
    indices = np.stack([rng.permutation(3) for _ in range(4)])
    nodes = [helper.make_node("EyeLike", ["x"], ["e"], k=-1),
             helper.make_node("ScatterElements", ["e", "i", "u"], ["s"], axis=1, reduction=reduction),
             helper.make_node("Add", ["s", "x"], ["y"])]
    inits = [_init("i", indices), _init("u", rng.standard_normal((4, 3)), np.float32)]
    model = make_model(nodes, [tensor_info("x", [4, 3])], [tensor_info("y", [4, 3])], inits, 18)
    check_graph(model, [{"x": rng.standard_normal((4, 3)).astype(np.float32)}], tmp_path)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("source", ["constant", "input"])
def test_cumsum_exclusive_reverse_of_constants_and_inputs(exclusive, reverse, source, tmp_path):
    """A static EyeLike is a constant when CumSum converts (the pre-pass cannot fold it: x is an input)."""
    data = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    nodes = [helper.make_node("EyeLike", ["x"], ["c"], k=1),
             helper.make_node("CumSum", ["c" if source == "constant" else "x", "axis"], ["s"],
                              exclusive=exclusive, reverse=reverse),
             helper.make_node("Add", ["s", "x"], ["y"])]
    inits = [_init("axis", -1)]
    model = make_model(nodes, [tensor_info("x", [3, 4])], [tensor_info("y", [3, 4])], inits, 14)
    check_graph(model, [{"x": data * 0.5}], tmp_path)


# Resize where onnx's reference evaluator departs from the spec and onnxruntime follows it:
# pytorch_half_pixel to one sample (x_original = 0), and coordinates landing exactly on a
# pixel (7 -> 17) pick that pixel.
@pytest.mark.parametrize("attrs, dim, scale, size", [
    (dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), 3, 0.5, None),
    (dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel"), 4, 0.3, None),
    (dict(mode="nearest", coordinate_transformation_mode="pytorch_half_pixel"), 5, None, 1),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), 3, 2.0, None),
    (dict(mode="nearest", coordinate_transformation_mode="align_corners"), 5, None, 9),
    (dict(mode="nearest"), 7, None, 17),
    (dict(mode="linear"), 7, None, 17),
    (dict(mode="cubic", coordinate_transformation_mode="half_pixel_symmetric"), 7, 0.5, None),
    (dict(mode="linear", coordinate_transformation_mode="half_pixel_symmetric"), 7, 0.75, None),
    (dict(mode="cubic", antialias=1), 7, None, 17),
    (dict(mode="linear", antialias=1), 7, 0.5, None),
], ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict) else str(v))
def test_resize_samples_where_the_spec_says(attrs, dim, scale, size, tmp_path):
    shape = [1, 2, dim, dim]
    if size is None:
        inputs, inits = ["x", "", "scales"], [_init("scales", [1, 1, scale, scale], np.float32)]
    else:
        inputs, inits = ["x", "", "", "sizes"], [_init("sizes", [1, 2, size, size])]
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    model = make_model([node], [tensor_info("x", shape)], [tensor_info("y", None)], inits, 19)
    x = np.random.default_rng(21).standard_normal(shape).astype(np.float32)
    check_graph(model, [{"x": x}], tmp_path, reference=False)


# align_corners by a scale that gives a fractional length: the spec's length_resized is
# scale * length_original (scale = length_resized / length_original), as the ONNX
# conformance cases resize_downsample_scales_*_align_corners and the reference evaluator
# have it; onnxruntime uses the rounded output length there (docs/coreml.md).
@pytest.mark.parametrize("mode, dim, scale", [
    ("linear", 3, 1.5), ("cubic", 7, 0.75), ("nearest", 5, 2.5), ("linear", 4, 0.6), ("cubic", 4, 0.8),
])
def test_resize_align_corners_by_a_fractional_scale_follows_the_spec(mode, dim, scale, tmp_path):
    shape = [1, 2, dim, dim]
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode,
                            coordinate_transformation_mode="align_corners")
    model = make_model([node], [tensor_info("x", shape)], [tensor_info("y", None)],
                       [_init("scales", [1, 1, scale, scale], np.float32)], 19)
    x = np.random.default_rng(22).standard_normal(shape).astype(np.float32)
    check_graph(model, [{"x": x}], tmp_path, onnxruntime=False, rtol=1e-4, atol=1e-5)


def test_resize_where_float32_ties_decide_the_pixel_is_refused(tmp_path):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                            coordinate_transformation_mode="half_pixel_symmetric")
    model = make_model([node], [tensor_info("x", [1, 1, 7, 7])], [tensor_info("y", None)],
                       [_init("scales", [1, 1, 1 / 3, 1 / 3], np.float32)], 19)
    with pytest.raises(UnsupportedModelError, match="half_pixel_symmetric"):
        save(model, tmp_path / "m.mlpackage")


# coremltools' squeeze keeps a symbolic dim in its declared type, so the rank seen
# downstream was one too high (ReduceMean over all axes named an axis that is not there).
@pytest.mark.parametrize("in_shape, axes, after", [
    (["N", 1, 1], [0], "ReduceMean"),
    (["N", 3], [0], "ReduceSum"),
    (["N", "M"], [0, 1], "Neg"),     # to rank 0
    ([2, "K", 3], [-2], "Flatten"),
])
def test_squeeze_of_a_dynamic_dim_gives_the_right_rank(in_shape, axes, after, tmp_path):
    nodes = [helper.make_node("Squeeze", ["x", "axes"], ["s"]), helper.make_node(after, ["s"], ["y"])]
    model = make_model(nodes, [tensor_info("x", in_shape)], [tensor_info("y", None)], [_init("axes", axes)], 16)
    shape = [1 if not isinstance(d, int) else d for d in in_shape]
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    check_graph(model, [{"x": x}], tmp_path)


# cast(fp32 -> int) then cast(-> bool) must truncate first: 0.3 -> 0 -> false. coremltools'
# cast_optimization fused the pair into one cast(fp32 -> bool) (0.3 -> true); fp16 underflow alike.
@pytest.mark.parametrize("chain", [
    [("CastLike", TensorProto.INT64), ("Cast", TensorProto.BOOL)],
    [("Cast", TensorProto.INT32), ("Cast", TensorProto.BOOL)],
    [("Cast", TensorProto.FLOAT16), ("Cast", TensorProto.BOOL)],
    [("Cast", TensorProto.INT64), ("Cast", TensorProto.BOOL), ("Cast", TensorProto.FLOAT)],
])
def test_casts_to_bool_after_a_narrowing_cast_see_the_narrowed_value(chain, tmp_path):
    nodes, inits, src = [], [], "x"
    for index, (op, to) in enumerate(chain):
        out = f"c{index}"
        if op == "CastLike":
            inits.append(_init("like", [0, 3]))
            nodes.append(helper.make_node(op, [src, "like"], [out]))
        else:
            nodes.append(helper.make_node(op, [src], [out], to=to))
        src = out
    nodes.append(helper.make_node("Identity", [src], ["y"]))
    model = make_model(nodes, [tensor_info("x", [2, 4])], [tensor_info("y", None, chain[-1][1])], inits, 19)
    x = np.array([[0.3, -0.7, 1e-8, 0.0], [2.5, -1.0, 0.9, 6e-8]], dtype=np.float32)
    check_graph(model, [{"x": x}], tmp_path)


# MIL has no int64: ONNX int64 data is carried as int32 (see docs/coreml.md).
@pytest.mark.parametrize("data_type", [TensorProto.INT64, TensorProto.INT32])
def test_concat_of_an_int_tensor_and_an_int_constant_stays_integer(data_type, tmp_path):
    dtype = np.int64 if data_type == TensorProto.INT64 else np.int32
    node = helper.make_node("Concat", ["x", "c"], ["y"], axis=0)
    model = make_model([node], [tensor_info("x", [2], data_type)], [tensor_info("y", [5], data_type)],
                       [_init("c", [7, -8, 9], dtype)], 18)
    check_graph(model, [{"x": np.array([3, -4], dtype=dtype)}], tmp_path)


@pytest.mark.parametrize("batch_axis, time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence_with_run_time_lengths(batch_axis, time_axis, tmp_path):
    # tf2onnx computes the lengths from the input's shape at run time (Keras go_backwards).
    node = helper.make_node("ReverseSequence", ["x", "lengths"], ["y"], batch_axis=batch_axis, time_axis=time_axis)
    dims = ["t", "b", 3] if time_axis == 0 else ["b", "t", 3]
    model = make_model([node], [tensor_info("x", dims), tensor_info("lengths", ["b"], TensorProto.INT64)],
                       [tensor_info("y", None)], opset=17)
    rng = np.random.default_rng(0)
    feeds = []
    for steps, batch in [(4, 3), (6, 2)]:
        shape = (steps, batch, 3) if time_axis == 0 else (batch, steps, 3)
        lengths = rng.integers(0, steps + 1, batch).astype(np.int64)
        feeds.append({"x": rng.standard_normal(shape).astype(np.float32), "lengths": lengths})
    check_graph(model, feeds, tmp_path)


_OUT_OF_RANGE = {  # op, attributes, data shape, constant indices, updates shape (scatters)
    "gather": ("Gather", dict(axis=1), [2, 3], [[0, 3]], None),
    "gather_negative": ("Gather", dict(axis=0), [2, 3], [-3], None),
    "gather_elements": ("GatherElements", dict(axis=1), [2, 3], [[0, 1, 2], [1, -4, 0]], None),
    "gather_nd": ("GatherND", {}, [2, 3], [[1, 0], [0, 3]], None),
    "scatter_elements": ("ScatterElements", dict(axis=0), [2, 3], [[0, 2, 1]], [1, 3]),
    "scatter_elements_wide": ("ScatterElements", dict(axis=0), [2, 2], [[0, 1, 1]], [1, 3]),
    "scatter_nd": ("ScatterND", {}, [2, 3], [[0, 1], [1, 3]], [2]),
}


@pytest.mark.parametrize("case", sorted(_OUT_OF_RANGE))
def test_constant_indices_out_of_range_are_refused(case, tmp_path):
    # onnxruntime fails on these at run time; the translator says so at conversion (exit 3)
    # instead of leaving the interpreter an IndexError.
    op, attributes, shape, indices, updates = _OUT_OF_RANGE[case]
    inputs = [tensor_info("x", shape)] + ([tensor_info("u", updates)] if updates else [])
    node = helper.make_node(op, ["x", "i"] + (["u"] if updates else []), ["y"], **attributes)
    model = make_model([node], inputs, [helper.make_value_info("y", TypeProto())],
                       [numpy_helper.from_array(np.array(indices, dtype=np.int64), "i")])
    feeds = {"x": np.ones(shape, np.float32)} | ({"u": np.ones(updates, np.float32)} if updates else {})
    with pytest.raises(Exception):  # noqa: B017, PT011 - onnxruntime's own error types
        ort_run(model, feeds)
    with pytest.raises(UnsupportedModelError, match="out of range|entries on axis") as info:
        save(model, tmp_path / "m.mlpackage")
    assert info.value.exit_code == 3 and op in info.value.message


@pytest.mark.parametrize("row", [0, 1], ids=["in_range", "past_dropped_window"])
def test_scatter_nd_after_a_ceil_mode_pool_that_drops_its_last_window(row, tmp_path):
    # Height 2, stride 2, ceil_mode: the spec (and onnxruntime) drop the second window, which would
    # start past the input; onnx's shape inference keeps it, so row 1 looks valid but is not.
    pool = helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1)
    scatter = helper.make_node("ScatterND", ["p", "i", "u"], ["y"])
    model = make_model([pool, scatter], [tensor_info("x", [6, 4, 2, 5]), tensor_info("u", [3, 3])],
                       [helper.make_value_info("y", TypeProto())],
                       [numpy_helper.from_array(np.array([[3, 2, row], [5, 3, 0], [0, 0, row]], dtype=np.int64), "i")])
    rng = np.random.default_rng(3)
    feeds = {"x": rng.standard_normal((6, 4, 2, 5)).astype(np.float32), "u": rng.standard_normal((3, 3)).astype(np.float32)}
    if row == 0:
        check_graph(model, [feeds], tmp_path)
        return
    with pytest.raises(Exception):  # noqa: B017, PT011
        ort_run(model, feeds)
    with pytest.raises(UnsupportedModelError, match="ScatterND index 1 is out of range for a dim of size 1"):
        save(model, tmp_path / "m.mlpackage")
