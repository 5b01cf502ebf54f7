"""Reshape/Flatten/Squeeze/Unsqueeze/Transpose/Concat/Split/Slice/Pad/Gather/Cast/Shape against onnxruntime,
and the layout tracking: transposes only where the data really moves."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from interop.plugin_api import UnsupportedModelError

from .helpers import assert_matches_onnxruntime, make_model


def _conv(name, cin, cout, rng):
    return helper.make_node("Conv", ["x", name], ["c"]), {name: rng.standard_normal((cout, cin, 1, 1)).astype(np.float32)}


def test_flatten_after_global_pooling_moves_no_data():
    rng = np.random.default_rng(0)
    conv, inits = _conv("w", 3, 4, rng)
    nodes = [conv, helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y"], inits))
    assert result.transposes == 1  # the NCHW input only


def test_channel_shuffle_costs_one_transpose():
    """ShuffleNet's Reshape -> Transpose -> Reshape is a real permutation: exactly one transpose."""
    rng = np.random.default_rng(0)
    conv, inits = _conv("w", 3, 6, rng)
    inits.update({"s1": np.array([0, 2, 3, 4, 4], np.int64), "s2": np.array([0, 6, 4, 4], np.int64)})
    nodes = [conv, helper.make_node("Reshape", ["c", "s1"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s2"], ["u"]), helper.make_node("Conv", ["u", "w2"], ["y"])]
    inits["w2"] = rng.standard_normal((2, 6, 1, 1)).astype(np.float32)
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 4, 4]}, ["y"], inits))
    assert result.transposes == 3  # input, the shuffle, output


@pytest.mark.parametrize("shape", [[0, -1], [-1, 12], [0, 3, 4], [0, 4, 3], [0, 2, -1, 2]])
def test_reshape(shape):
    node = helper.make_node("Reshape", ["x", "s"], ["y"])
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 3, 2, 2]}, ["y"], {"s": np.array(shape, np.int64)}))


def test_reshape_merging_the_batch_with_a_static_batch():
    node = helper.make_node("Reshape", ["x", "s"], ["y"])
    model = make_model([node], {"x": [2, 3, 4]}, ["y"], {"s": np.array([6, 4], np.int64)})
    from .helpers import keras_run, ort_run

    from interop_keras.onnx_import import import_onnx

    feeds = {"x": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}
    np.testing.assert_array_equal(keras_run(import_onnx(model).model, model, feeds)["y"], ort_run(model, feeds)["y"])


def test_flatten_of_a_computed_shape_keeps_the_batch():
    """x.view(x.size(0), -1) as exporters write it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    rng = np.random.default_rng(0)
    conv, inits = _conv("w", 3, 4, rng)
    inits.update({"zero": np.array(0, np.int64), "minus_one": np.array([-1], np.int64), "axes": np.array([0], np.int64)})
    nodes = [conv, helper.make_node("Shape", ["c"], ["shape"]), helper.make_node("Gather", ["shape", "zero"], ["n"]),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["c", "target"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 4, 4]}, ["y"], inits))


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(opset):
    if opset >= 13:
        nodes = [helper.make_node("Unsqueeze", ["x", "a"], ["u"]), helper.make_node("Squeeze", ["u", "b"], ["y"])]
        inits = {"a": np.array([1, -1], np.int64), "b": np.array([1], np.int64)}
    else:
        nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1, 4]), helper.make_node("Squeeze", ["u"], ["y"], axes=[1])]
        inits = {}
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 4]}, ["y"], inits, opset=opset))


def test_transpose_of_the_batch_axis():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2]), helper.make_node("Relu", ["t"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": [2, 3, 4]}, ["y"]), batches=(2,))


def test_concat_channels_of_convolutions():
    rng = np.random.default_rng(0)
    inits = {"w1": rng.standard_normal((2, 3, 1, 1)).astype(np.float32),
             "w2": rng.standard_normal((3, 3, 3, 3)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]), helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b", "a"], ["y"], axis=1)]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y"], inits))
    assert result.transposes == 2


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split(opset):
    if opset >= 18:
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)
        inits = {}
    elif opset >= 13:
        node = helper.make_node("Split", ["x", "s"], ["a", "b", "c"], axis=1)
        inits = {"s": np.array([2, 3, 1], np.int64)}
    else:
        node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, split=[2, 3, 1])
        inits = {}
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 6, 2]}, ["a", "b", "c"], inits, opset=opset))


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], [1]), ([0, 1], [2, 100], [2, 1], [1, 2]), ([-1], [-100], [2], [-1]), ([2], [0], [1], [-1]),
])
def test_slice(starts, ends, axes, steps):
    inits = {"st": np.array(starts, np.int64), "en": np.array(ends, np.int64), "ax": np.array(axes, np.int64),
             "sp": np.array(steps, np.int64)}
    node = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 4, 5]}, ["y"], inits))


@pytest.mark.parametrize("mode,pads,value", [
    ("constant", [0, 0, 1, 2, 0, 0, 2, 1], 0.0), ("constant", [0, 1, 1, 0, 0, 0, 1, 1], 1.5),
    ("reflect", [0, 0, 1, 1, 0, 0, 1, 1], 0.0), ("constant", [0, 0, -1, 1, 0, 0, 1, -1], 0.0),
])
def test_pad(mode, pads, value):
    inits = {"p": np.array(pads, np.int64), "v": np.float32(value)}
    node = helper.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 2, 4, 4]}, ["y"], inits))


def test_zero_pad_after_a_conv_is_a_keras_zero_padding():
    rng = np.random.default_rng(0)
    conv, inits = _conv("w", 3, 4, rng)
    inits["p"] = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    nodes = [conv, helper.make_node("Pad", ["c", "p"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 4, 4]}, ["y"], inits))
    assert any(type(layer).__name__ == "ZeroPadding2D" for layer in result.model.layers)


@pytest.mark.parametrize("indices,axis", [(1, 1), ([2, 0, -1], 2), ([[0, 1], [1, 0]], 1)])
def test_gather_with_fixed_indices(indices, axis):
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 3, 4]}, ["y"], {"i": np.array(indices, np.int64)}))


def test_gather_from_a_table_is_an_embedding():
    import keras

    rng = np.random.default_rng(0)
    node = helper.make_node("Gather", ["table", "ids"], ["y"])
    model = make_model([node], {"ids": ["N", 7]}, ["y"], {"table": rng.standard_normal((10, 4)).astype(np.float32)},
                       input_types={"ids": TensorProto.INT64})
    result = assert_matches_onnxruntime(model)
    assert any(isinstance(layer, keras.layers.Embedding) for layer in result.model.layers)
    assert result.trainable_weight_count == 40


def test_cast():
    nodes = [helper.make_node("Cast", ["x"], ["i"], to=TensorProto.INT32), helper.make_node("Cast", ["i"], ["y"], to=1)]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 5]}, ["y"]))


def test_flatten_with_a_negative_axis():
    nodes = [helper.make_node("Flatten", ["x"], ["y"], axis=-1)]
    assert_matches_onnxruntime(make_model(nodes, {"x": [2, 3, 4]}, ["y"]), batches=(2,))


def test_reductions_to_a_scalar_and_back():
    """A rank-0 tensor (a reduction over every axis) has no batch axis: reshaped as a whole."""
    nodes = [helper.make_node("ReduceSum", ["x", "all"], ["s"], keepdims=0),
             helper.make_node("Unsqueeze", ["s", "zero"], ["u"]), helper.make_node("Squeeze", ["u", "zero"], ["y"])]
    inits = {"all": np.array([0, 1], np.int64), "zero": np.array([0], np.int64)}
    assert_matches_onnxruntime(make_model(nodes, {"x": [2, 3]}, ["u", "y"], inits), batches=(2,))


def _size_nodes(tensor: str, axes: list[int], prefix: str) -> list:
    """Shape(tensor)[axis] as torch.onnx (TorchScript) writes x.shape[axis]: Shape, a scalar index, Gather."""
    nodes = [helper.make_node("Shape", [tensor], [f"{prefix}.shape"])]
    for axis in axes:
        nodes.append(helper.make_node("Constant", [], [f"{prefix}.i{axis}"],
                                      value=helper.make_tensor("", TensorProto.INT64, [], [axis])))
        nodes.append(helper.make_node("Gather", [f"{prefix}.shape", f"{prefix}.i{axis}"], [f"{prefix}.d{axis}"], axis=0))
    return nodes


def _compare_at_sizes(model, sizes: dict[str, list[int]]) -> None:
    """Keras against onnxruntime with inputs of the given shapes (sequence and batch sizes that differ)."""
    from interop_keras.onnx_import import import_onnx

    from .helpers import keras_run, ort_run

    result = import_onnx(model)
    for seed, shape in enumerate(zip(*sizes.values())):
        rng = np.random.default_rng(seed)
        feeds = {name: rng.standard_normal(s).astype(np.float32) for name, s in zip(sizes, shape)}
        expected, actual = ort_run(model, feeds), keras_run(result.model, model, feeds)
        for name, ref in expected.items():
            np.testing.assert_allclose(actual[name], ref, rtol=1e-5, atol=1e-5, err_msg=f"{name} at {shape}")


def test_reshape_to_the_product_of_two_run_time_sizes():
    """x.reshape(x.shape[0] * x.shape[1], -1): the Mul of two sizes known at run time (was an IndexError, exit 4)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32),
             "minus_one": np.array([-1], np.int64), "zero": np.array([0], np.int64)}
    nodes = _size_nodes("x", [0, 1], "x") + [
        helper.make_node("Mul", ["x.d0", "x.d1"], ["rows"]), helper.make_node("Unsqueeze", ["rows", "zero"], ["rows1"]),
        helper.make_node("Concat", ["rows1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1)]
    model = make_model(nodes, {"x": ["batch", "seq", 4]}, ["y"], inits)
    _compare_at_sizes(model, {"x": [[2, 5, 4], [3, 1, 4], [1, 7, 4]]})


def test_a_sequence_first_model_splits_and_merges_heads():
    """[seq, batch, 8] -> [seq, batch * 2, 4] -> back, the sizes from Shape: seq is Keras' batch axis here, and
    ``batch`` is a size of its own, not the batch."""
    inits = {"two": np.array(2, np.int64), "four": np.array([4], np.int64), "eight": np.array([8], np.int64),
             "zero": np.array([0], np.int64)}
    nodes = _size_nodes("x", [0, 1], "x") + [
        helper.make_node("Mul", ["x.d1", "two"], ["heads"]),
        helper.make_node("Unsqueeze", ["x.d0", "zero"], ["s"]), helper.make_node("Unsqueeze", ["heads", "zero"], ["bh"]),
        helper.make_node("Unsqueeze", ["x.d1", "zero"], ["b"]),
        helper.make_node("Concat", ["s", "bh", "four"], ["split"], axis=0),
        helper.make_node("Reshape", ["x", "split"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Concat", ["s", "b", "eight"], ["merge"], axis=0),
        helper.make_node("Reshape", ["r", "merge"], ["y"])]
    model = make_model(nodes, {"x": ["seq", "batch", 8]}, ["y"], inits)
    _compare_at_sizes(model, {"x": [[5, 2, 8], [1, 3, 8], [4, 1, 8]]})


def test_a_size_of_another_input_is_not_this_inputs_batch():
    """Reshape(a, [Shape(b)[0], -1]) where a and b have different first axes: Keras cannot express it and the
    import says so (it used to call both first axes "the batch" and keep a's)."""
    from interop_keras.onnx_import import import_onnx

    inits = {"minus_one": np.array([-1], np.int64), "zero": np.array([0], np.int64)}
    nodes = _size_nodes("b", [0], "b") + [
        helper.make_node("Unsqueeze", ["b.d0", "zero"], ["n"]),
        helper.make_node("Concat", ["n", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["a", "target"], ["y"])]
    model = make_model(nodes, {"a": ["rows", 6], "b": ["groups", 2]}, {"y": ["groups", None]}, inits)
    with pytest.raises(UnsupportedModelError, match="Reshape x1 .*sizes known only at run time") as error:
        import_onnx(model)
    assert error.value.exit_code == 3


def test_sizes_divided_by_a_head_count_and_named_products():
    """x.view(b, s, 2, x.shape[2] // 2) with the sizes from Shape, and a graph input whose size is a product
    (torch.onnx declares a merged batch and sequence as ``s0*s1``)."""
    inits = {"two": np.array(2, np.int64), "zero": np.array([0], np.int64), "heads": np.array([2], np.int64)}
    nodes = _size_nodes("x", [0, 1, 2], "x") + [
        helper.make_node("Div", ["x.d2", "two"], ["width"]),
        *[helper.make_node("Unsqueeze", [f"x.d{i}", "zero"], [f"u{i}"]) for i in (0, 1)],
        helper.make_node("Unsqueeze", ["width", "zero"], ["uw"]),
        helper.make_node("Concat", ["u0", "u1", "heads", "uw"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["h"]), helper.make_node("Relu", ["h"], ["y"]),
        # Expand(flat, [b * s, 8]): b * s computed by Mul is the size the input declares as "b*s"
        helper.make_node("Mul", ["x.d0", "x.d1"], ["rows"]), helper.make_node("Unsqueeze", ["rows", "zero"], ["ur"]),
        helper.make_node("Concat", ["ur", "eight"], ["wide"], axis=0),
        helper.make_node("Expand", ["flat", "wide"], ["z"])]
    inits["eight"] = np.array([8], np.int64)
    model = make_model(nodes, {"x": ["b", "s", 8], "flat": ["b*s", 1]}, ["y", "z"], inits)
    from interop_keras.onnx_import import import_onnx

    from .helpers import keras_run, ort_run

    result = import_onnx(model)
    for b, s in [(2, 3), (1, 5)]:
        rng = np.random.default_rng(b)
        feeds = {"x": rng.standard_normal((b, s, 8)).astype(np.float32),
                 "flat": rng.standard_normal((b * s, 1)).astype(np.float32)}
        expected, actual = ort_run(model, feeds), keras_run(result.model, model, feeds)
        for name, ref in expected.items():
            np.testing.assert_allclose(actual[name], ref, rtol=1e-6, atol=1e-6, err_msg=name)


def test_an_op_without_converter_on_run_time_sizes_is_refused_naming_them():
    """Range(0, Shape(x)[0], 1): folding cannot evaluate it and there is no converter to compute it at run
    time; the error says both, exit 3."""
    from interop_keras.onnx_import import import_onnx

    inits = {"start": np.array(0, np.int64), "step": np.array(1, np.int64)}
    nodes = _size_nodes("x", [0], "x") + [helper.make_node("Range", ["start", "x.d0", "step"], ["r"]),
                                          helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
                                          helper.make_node("Unsqueeze", ["rf", "one"], ["ru"]),
                                          helper.make_node("Add", ["x", "ru"], ["y"])]
    inits["one"] = np.array([1], np.int64)
    model = make_model(nodes, {"x": ["N", 3]}, ["y"], inits)
    with pytest.raises(UnsupportedModelError, match=r"Range x1 \(its inputs hold sizes known only at run "
                                                    r"time, and the importer has no Range converter") as error:
        import_onnx(model)
    assert error.value.exit_code == 3


def test_constant_of_shape_of_a_computed_tensor():
    """zeros_like / full_like through tf2onnx: ConstantOfShape(Shape(t)), after a Conv (channels-last inside)."""
    conv, inits = _conv("w", 3, 4, np.random.default_rng(0))
    fill = helper.make_tensor("", TensorProto.FLOAT, [1], [2.5])
    nodes = [conv, helper.make_node("Shape", ["c"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["z"], value=fill), helper.make_node("Mul", ["c", "z"], ["y"]),
             helper.make_node("ConstantOfShape", ["s"], ["zero"]), helper.make_node("Add", ["c", "zero"], ["y2"])]
    model = make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y", "y2"], inits)
    result = assert_matches_onnxruntime(model)
    assert result.transposes == 3  # into channels-last once, out once per output: the fills add none
