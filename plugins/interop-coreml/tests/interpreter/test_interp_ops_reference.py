"""Interpreter kernels that coremltools cannot evaluate itself, against independent references.

Convolutions, pooling, normalizations and resizing are compared with
torch.nn.functional; data-movement ops with onnx's reference evaluator or
plain numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402

from interp_helpers import interpret, interpret_on_input, rng  # noqa: E402

R = rng(2)
X = R.standard_normal((2, 6, 9, 11)).astype(np.float32)
T = torch.from_numpy(X)


def close(ours, reference, tol=2e-5):
    reference = reference.detach().numpy() if hasattr(reference, "detach") else np.asarray(reference)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=tol, atol=tol)


def onnx_reference(op_type: str, inputs: list[np.ndarray], **attributes) -> np.ndarray:
    """Evaluate a single ONNX node with onnx.reference (an independent implementation)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op_type, names, ["out"], **attributes)
    return ReferenceEvaluator(node).run(None, dict(zip(names, inputs)))[0]


# ------------------------------------------------------------------ convolution
CONV_CASES = [
    # (out channels, kernel, strides, dilations, groups, pad_type, pad, torch padding (l, r, t, b))
    (4, (3, 3), (1, 1), (1, 1), 1, "valid", None, (0, 0, 0, 0)),
    (4, (3, 3), (2, 2), (1, 1), 1, "custom", [1, 2, 0, 1], (0, 1, 1, 2)),
    (6, (3, 2), (1, 2), (2, 1), 3, "custom", [2, 2, 1, 1], (1, 1, 2, 2)),
    (6, (3, 3), (1, 1), (1, 1), 6, "same", None, (1, 1, 1, 1)),
    (4, (4, 4), (1, 1), (1, 1), 2, "same", None, (1, 2, 1, 2)),
    (4, (4, 4), (1, 1), (1, 1), 1, "same_lower", None, (2, 1, 2, 1)),
    (4, (3, 3), (2, 2), (1, 1), 1, "same", None, (1, 1, 1, 1)),
    (8, (1, 1), (2, 2), (1, 1), 1, "valid", None, (0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[5]}-k{c[1]}-s{c[2]}-d{c[3]}-g{c[4]}")
def test_conv2d_matches_torch(case):
    c_out, kernel, strides, dilations, groups, pad_type, pad, torch_pad = case
    weight = R.standard_normal((c_out, X.shape[1] // groups) + kernel).astype(np.float32)
    bias = R.standard_normal(c_out).astype(np.float32)
    kwargs = dict(strides=list(strides), dilations=list(dilations), groups=groups, pad_type=pad_type)
    if pad is not None:
        kwargs["pad"] = pad
    (ours,) = interpret(lambda: mb.conv(x=X, weight=weight, bias=bias, **kwargs))
    expected = F.conv2d(F.pad(T, torch_pad), torch.from_numpy(weight), torch.from_numpy(bias),
                        stride=strides, dilation=dilations, groups=groups)
    close(ours, expected, 1e-4)


def test_conv1d_and_conv3d_match_torch():
    x1 = R.standard_normal((2, 4, 13)).astype(np.float32)
    w1 = R.standard_normal((5, 4, 3)).astype(np.float32)
    (ours,) = interpret(lambda: mb.conv(x=x1, weight=w1, strides=[2], pad_type="custom", pad=[1, 1], dilations=[1]))
    close(ours, F.conv1d(torch.from_numpy(x1), torch.from_numpy(w1), stride=2, padding=1), 1e-4)
    x3 = R.standard_normal((1, 2, 5, 6, 7)).astype(np.float32)
    w3 = R.standard_normal((3, 2, 2, 3, 2)).astype(np.float32)
    (ours,) = interpret(lambda: mb.conv(x=x3, weight=w3, pad_type="valid"))
    close(ours, F.conv3d(torch.from_numpy(x3), torch.from_numpy(w3)), 1e-4)


@pytest.mark.parametrize("groups,strides,dilations,pad", [(1, (2, 2), (1, 1), [1, 1, 0, 0]), (2, (1, 2), (2, 1), [0, 0, 1, 1])])
def test_conv_transpose_matches_torch(groups, strides, dilations, pad):
    weight = R.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    bias = R.standard_normal(4).astype(np.float32)
    (ours,) = interpret(
        lambda: mb.conv_transpose(
            x=X, weight=weight, bias=bias, strides=list(strides), dilations=list(dilations), groups=groups,
            pad_type="custom", pad=pad,
        )
    )
    expected = F.conv_transpose2d(T, torch.from_numpy(weight), torch.from_numpy(bias), stride=strides,
                                  padding=(pad[0], pad[2]), dilation=dilations, groups=groups)
    close(ours, expected, 1e-4)


def test_conv_transpose_with_output_shape_matches_torch_output_padding():
    weight = R.standard_normal((6, 3, 3, 3)).astype(np.float32)
    expected = F.conv_transpose2d(T, torch.from_numpy(weight), stride=2, padding=1, output_padding=1)
    (ours,) = interpret(
        lambda: mb.conv_transpose(x=X, weight=weight, strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
                                  output_shape=list(expected.shape))
    )
    close(ours, expected, 1e-4)


# ------------------------------------------------------------------ pooling
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("pad", [0, 1])
def test_max_pool_matches_torch(ceil_mode, pad):
    (ours,) = interpret(
        lambda: mb.max_pool(x=X, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[pad] * 4,
                            ceil_mode=ceil_mode)
    )
    close(ours, F.max_pool2d(T, 3, 2, padding=pad, ceil_mode=ceil_mode))


@pytest.mark.parametrize("exclude_padding", [False, True])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_avg_pool_matches_torch(exclude_padding, ceil_mode):
    (ours,) = interpret(
        lambda: mb.avg_pool(x=X, kernel_sizes=[3, 2], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
                            exclude_padding_from_average=exclude_padding, ceil_mode=ceil_mode)
    )
    close(ours, F.avg_pool2d(T, (3, 2), 2, padding=1, ceil_mode=ceil_mode, count_include_pad=not exclude_padding))


def test_l2_pool_and_same_padded_pool_match_references():
    (ours,) = interpret(lambda: mb.l2_pool(x=X, kernel_sizes=[2, 3], strides=[2, 3], pad_type="valid"))
    close(ours, F.lp_pool2d(T, 2, (2, 3), (2, 3)))
    (ours,) = interpret(lambda: mb.max_pool(x=X, kernel_sizes=[2, 2], strides=[2, 2], pad_type="same"))
    close(ours, F.max_pool2d(F.pad(T, (0, 1, 0, 1), value=-np.inf), 2, 2))


# ------------------------------------------------------------------ normalization
def test_batch_instance_layer_norm_match_torch():
    mean, var = R.standard_normal(6).astype(np.float32), R.uniform(0.5, 2, 6).astype(np.float32)
    gamma, beta = R.standard_normal(6).astype(np.float32), R.standard_normal(6).astype(np.float32)
    (ours,) = interpret(lambda: mb.batch_norm(x=X, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=np.float32(1e-3)))
    tt = [torch.from_numpy(v) for v in (mean, var, gamma, beta)]
    close(ours, F.batch_norm(T, tt[0], tt[1], tt[2], tt[3], eps=1e-3))
    (ours,) = interpret(lambda: mb.instance_norm(x=X, gamma=gamma, beta=beta, epsilon=np.float32(1e-5)))
    close(ours, F.instance_norm(T, weight=tt[2], bias=tt[3], eps=1e-5), 1e-4)
    lg, lb = R.standard_normal((9, 11)).astype(np.float32), R.standard_normal((9, 11)).astype(np.float32)
    (ours,) = interpret(lambda: mb.layer_norm(x=X, axes=[2, 3], gamma=lg, beta=lb, epsilon=np.float32(1e-5)))
    close(ours, F.layer_norm(T, (9, 11), torch.from_numpy(lg), torch.from_numpy(lb), eps=1e-5), 1e-4)


def test_batch_norm_keeps_its_digits_where_a_variance_is_near_zero():
    """(x - mean) first, as the op is defined: a folded x·s + (beta - mean·s) loses ~1e-4 here."""
    x = (R.standard_normal((2, 6, 9, 11)) * 0.01 + 30.0).astype(np.float32)  # values near their mean
    mean = np.full(6, 30.0, dtype=np.float32)
    var = np.array([6e-45, 1e-8, 1e-3, 0.5, 1.0, 2.0], dtype=np.float32)  # denormal: a dead channel's statistic
    (ours,) = interpret(lambda: mb.batch_norm(x=x, mean=mean, variance=var, epsilon=np.float32(1e-5)))
    exact = (x.astype(np.float64) - 30.0) / np.sqrt(var.astype(np.float64) + np.float64(np.float32(1e-5)))[:, None, None]
    assert np.abs(ours - exact).max() < 1e-5 * np.abs(exact).max()


def test_local_response_norm_matches_torch():
    (ours,) = interpret(lambda: mb.local_response_norm(x=X, size=3, alpha=np.float32(1e-2), beta=np.float32(0.75), k=np.float32(2.0)))
    close(ours, F.local_response_norm(T, 3, alpha=1e-2, beta=0.75, k=2.0))


# ------------------------------------------------------------------ resizing
def test_nearest_upsampling_and_resizing_match_torch():
    (ours,) = interpret(lambda: mb.upsample_nearest_neighbor(x=X, scale_factor_height=2, scale_factor_width=3))
    close(ours, F.interpolate(T, scale_factor=(2, 3), mode="nearest"))
    (ours,) = interpret(lambda: mb.resize_nearest_neighbor(x=X, target_size_height=5, target_size_width=17))
    close(ours, F.interpolate(T, size=(5, 17), mode="nearest"))


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_upsampling_matches_torch(align_corners):
    (ours,) = interpret(
        lambda: mb.upsample_bilinear(x=X, scale_factor_height=2, scale_factor_width=2, align_corners=align_corners)
    )
    close(ours, F.interpolate(T, scale_factor=2, mode="bilinear", align_corners=align_corners))


@pytest.mark.parametrize("mode,align", [("STRICT_ALIGN_CORNERS", True), ("UNALIGN_CORNERS", False)])
def test_resize_bilinear_and_resize_match_torch(mode, align):
    (ours,) = interpret(lambda: mb.resize_bilinear(x=X, target_size_height=4, target_size_width=20, sampling_mode=mode))
    close(ours, F.interpolate(T, size=(4, 20), mode="bilinear", align_corners=align))
    (ours,) = interpret(
        lambda: mb.resize(x=X, shape=np.array([7, 5], np.int32), resized_dims=np.uint32(2), sampling_mode=mode)
    )
    close(ours, F.interpolate(T, size=(7, 5), mode="bilinear", align_corners=align))


# ------------------------------------------------------------------ data movement
def test_depth_space_rearrangements_match_onnx_and_torch():
    (ours,) = interpret(lambda: mb.depth_to_space(x=X[:, :4], block_size=2))
    close(ours, onnx_reference("DepthToSpace", [X[:, :4]], blocksize=2, mode="DCR"))
    (ours,) = interpret(lambda: mb.space_to_depth(x=X[:, :, :8, :10], block_size=2))
    close(ours, onnx_reference("SpaceToDepth", [X[:, :, :8, :10]], blocksize=2))
    (ours,) = interpret(lambda: mb.pixel_shuffle(x=X[:, :4], upscale_factor=2))
    close(ours, F.pixel_shuffle(T[:, :4], 2))
    (ours,) = interpret(lambda: mb.pixel_unshuffle(x=X[:, :, :8, :10], downscale_factor=np.uint32(2)), opset="iOS16")
    close(ours, F.pixel_unshuffle(T[:, :, :8, :10], 2))


def test_gather_nd_and_scatters_match_onnx():
    data = R.standard_normal((3, 4, 5)).astype(np.float32)
    idx = np.array([[[0, 1], [2, 3]], [[1, 0], [2, 2]]], dtype=np.int32)
    (ours,) = interpret(lambda: mb.gather_nd(x=data, indices=idx))
    close(ours, onnx_reference("GatherND", [data, idx.astype(np.int64)]))
    updates = R.standard_normal((2, 2, 5)).astype(np.float32)
    (ours,) = interpret(lambda: mb.scatter_nd(data=data, indices=idx, updates=updates, mode="add"))
    close(ours, onnx_reference("ScatterND", [data, idx.astype(np.int64), updates], reduction="add"))
    rows = np.array([2, 0], dtype=np.int32)
    row_updates = R.standard_normal((3, 2, 5)).astype(np.float32)
    (ours,) = interpret(lambda: mb.scatter(data=data, indices=rows, updates=row_updates, axis=1, mode="update"))
    expected = data.copy()
    expected[:, rows] = row_updates
    close(ours, expected)
    (ours,) = interpret(lambda: mb.scatter(data=data, indices=np.array([1, 1], np.int32), updates=row_updates, axis=1, mode="add"))
    expected = data.copy()
    expected[:, 1] += row_updates.sum(axis=1)
    close(ours, expected)


def test_one_hot_concat_interleave_and_exclusive_cumsum_match_numpy():
    (ours,) = interpret(lambda: mb.one_hot(indices=np.array([[0, 3], [2, 1]], np.int32), one_hot_vector_size=4, axis=-1))
    np.testing.assert_array_equal(ours, np.eye(4, dtype=np.float32)[[[0, 3], [2, 1]]])
    a, b = X[0, :2, :2, :2], X[1, :2, :2, :2]
    (ours,) = interpret(lambda: mb.concat(values=[a, b], axis=0, interleave=True))
    np.testing.assert_array_equal(ours, np.stack([a[0], b[0], a[1], b[1]]))
    v = X[0, 0, 0]
    # coremltools' own value inference of exclusive cumsum crashes, so feed v at run time.
    (ours,) = interpret_on_input(lambda x: mb.cumsum(x=x, axis=0, exclusive=True, reverse=True), v)
    expected = np.array([v[i + 1 :].sum() for i in range(len(v))], dtype=np.float32)
    close(ours, expected)


def test_sequence_and_window_ops_match_onnx_and_numpy():
    data = R.standard_normal((2, 5, 3)).astype(np.float32)
    lengths = np.array([3, 5], np.int32)
    (ours,) = interpret(lambda: mb.reverse_sequence(x=data, lengths=lengths, seq_axis=1, batch_axis=0))
    close(ours, onnx_reference("ReverseSequence", [data, lengths.astype(np.int64)], batch_axis=0, time_axis=1))
    (ours,) = interpret(lambda: mb.sliding_windows(x=data, axis=1, size=2, stride=2))
    windows = np.lib.stride_tricks.sliding_window_view(data, 2, axis=1)[:, ::2]  # [2, 2, 3, window]
    close(ours, np.moveaxis(windows, -1, 2))
    (ours,) = interpret(lambda: mb.reshape_like(x=data, ref_tensors=(np.zeros((6, 5), np.float32),), begins=(0,),
                                                ends=(2,), end_masks=(False,)))
    close(ours, data.reshape(6, 5))
    (ours,) = interpret(lambda: mb.crop(x=X, crop_height=[1, 2], crop_width=[3, 0]))
    close(ours, X[:, :, 1:-2, 3:])


def test_space_batch_rearrangements_match_tensorflow():
    tf = pytest.importorskip("tensorflow")
    image = X[:, :, :8, :10]
    paddings = np.array([[0, 0], [1, 1]], np.int32)
    (ours,) = interpret(lambda: mb.space_to_batch(x=image, block_shape=np.array([2, 2], np.int32), paddings=paddings))
    expected = tf.space_to_batch_nd(image.transpose(0, 2, 3, 1), [2, 2], paddings).numpy().transpose(0, 3, 1, 2)
    close(ours, expected)
    (back,) = interpret(lambda: mb.batch_to_space(x=ours, block_shape=np.array([2, 2], np.int32), crops=paddings))
    close(back, image)


def test_batched_gather_nd_dequantize_and_nearest_resize_match_references():
    data = R.standard_normal((2, 4, 3)).astype(np.float32)
    idx = np.array([[[1], [0]], [[3], [3]]], np.int32)
    (ours,) = interpret(lambda: mb.gather_nd(x=data, indices=idx, batch_dims=1), opset="iOS16")
    close(ours, onnx_reference("GatherND", [data, idx.astype(np.int64)], batch_dims=1))
    q = np.array([[1, -3], [4, 127]], np.int8)
    (ours,) = interpret(lambda: mb.dequantize(input=q, scale=np.float32(0.5), zero_point=np.int8(1)))
    close(ours, (q.astype(np.float32) - 1) * 0.5)
    (ours,) = interpret(lambda: mb.resize(x=X, shape=np.array([13, 5], np.int32), resized_dims=np.uint32(2),
                                          interpolation_mode="NEAREST_NEIGHBOR"))
    close(ours, F.interpolate(T, size=(13, 5), mode="nearest"))


def test_default_sampling_bilinear_resize_matches_tensorflow_asymmetric_resize():
    tf = pytest.importorskip("tensorflow")
    (ours,) = interpret(lambda: mb.resize_bilinear(x=X, target_size_height=5, target_size_width=17))
    expected = tf.compat.v1.image.resize_bilinear(X.transpose(0, 2, 3, 1), (5, 17), align_corners=False,
                                                  half_pixel_centers=False).numpy().transpose(0, 3, 1, 2)
    close(ours, expected)
    (ours,) = interpret(
        lambda: mb.upsample_bilinear(x=X, scale_factor_height=2, scale_factor_width=2, align_corners=False,
                                     half_pixel_centers=False),
        opset="iOS16",
    )
    expected = tf.compat.v1.image.resize_bilinear(X.transpose(0, 2, 3, 1), (18, 22), align_corners=False,
                                                  half_pixel_centers=False).numpy().transpose(0, 3, 1, 2)
    close(ours, expected)
