"""TopK, CumSum, Trilu, DepthToSpace/SpaceToDepth, the Gather/Scatter family, Einsum and Pad's edge/wrap
modes against onnxruntime; what they cannot do is refused by name (exit 3)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from interop.plugin_api import UnsupportedModelError

from .helpers import assert_matches_onnxruntime, make_model


def _conv(name: str, out: str, channels: int, rng: np.random.Generator, inits: dict, inputs: int = 3) -> list:
    inits[f"{out}.w"] = rng.standard_normal((channels, inputs, 3, 3)).astype(np.float32)
    return [helper.make_node("Conv", [name, f"{out}.w"], [out], pads=[1, 1, 1, 1])]


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis", [-1, 1])
def test_top_k_values_and_indices_in_a_channels_last_layout(largest, axis):
    """After a Conv the tensor is channels-last: TopK on the channel axis (1) and the width (-1)."""
    rng = np.random.default_rng(0)
    inits = {"k": np.array([3], np.int64)}
    nodes = _conv("x", "c", 6, rng, inits) + [
        helper.make_node("TopK", ["c", "k"], ["v", "i"], axis=axis, largest=largest),
        helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT), helper.make_node("Add", ["v", "fi"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y", "i"], inits))
    assert result.trainable_weight_count == 6 * 3 * 9


def test_top_k_keeps_the_lower_index_first_among_equal_values():
    inits = {"k": np.array([4], np.int64), "two": np.float32(2.0)}
    nodes = [helper.make_node("Mul", ["x", "two"], ["x2"]), helper.make_node("Floor", ["x2"], ["f"]),
             helper.make_node("TopK", ["f", "k"], ["v", "i"], axis=1)]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 9]}, ["v", "i"], inits), batches=(1, 6))


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
def test_cumsum_modes_along_a_spatial_axis(exclusive, reverse):
    rng = np.random.default_rng(1)
    inits = {"axis": np.array(2, np.int64)}
    nodes = _conv("x", "c", 4, rng, inits) + [
        helper.make_node("CumSum", ["c", "axis"], ["y"], exclusive=exclusive, reverse=reverse)]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 6, 5]}, ["y"], inits))


def test_cumsum_of_integer_token_ids():
    """Position ids as HuggingFace models make them: cumsum of the mask (integer), times the mask."""
    inits = {"axis": np.array(1, np.int64), "zero": np.array(0, np.int64)}
    nodes = [helper.make_node("Greater", ["t", "zero"], ["m"]), helper.make_node("Cast", ["m"], ["mi"], to=TensorProto.INT64),
             helper.make_node("CumSum", ["mi", "axis"], ["c"]), helper.make_node("Mul", ["c", "mi"], ["y"])]
    model = make_model(nodes, {"t": ["N", 7]}, ["y"], inits, input_types={"t": TensorProto.INT64})
    assert_matches_onnxruntime(model)


@pytest.mark.parametrize("upper", [1, 0])
@pytest.mark.parametrize("k", [None, 1, -2])
def test_trilu_on_attention_scores(upper, k):
    inits = {} if k is None else {"k": np.array(k, np.int64)}
    nodes = [helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1]), helper.make_node("MatMul", ["q", "qt"], ["s"]),
             helper.make_node("Trilu", ["s"] + ([] if k is None else ["k"]), ["y"], upper=upper)]
    assert_matches_onnxruntime(make_model(nodes, {"q": ["N", 5, 4]}, ["y"], inits, opset=14))


def test_trilu_of_a_non_square_channels_last_tensor():
    rng = np.random.default_rng(2)
    inits = {"k": np.array(1, np.int64)}
    nodes = _conv("x", "c", 2, rng, inits) + [helper.make_node("Trilu", ["c", "k"], ["y"], upper=0)]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 4, 7]}, ["y"], inits, opset=14))
    assert result.transposes == 2  # into channels-last for the conv and back at the output: Trilu adds none


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_then_space_to_depth(mode):
    """Pixel shuffle (CRD, PyTorch's) and TensorFlow's DCR between convolutions, then the inverse."""
    rng = np.random.default_rng(3)
    inits: dict = {}
    nodes = _conv("x", "c", 8, rng, inits) + [
        helper.make_node("DepthToSpace", ["c"], ["d"], blocksize=2, mode=mode)] + _conv("d", "e", 4, rng, inits, 2) + [
        helper.make_node("SpaceToDepth", ["e"], ["y"], blocksize=2)]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, "H", "W"]}, ["y"], inits))
    assert result.transposes == 2


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather_elements_with_computed_and_fixed_indices(axis):
    rng = np.random.default_rng(4)
    fixed = rng.integers(-3, 3, (2, 2, 3)).astype(np.int64)  # shorter than the data on every axis
    inits = {"k": np.array([2], np.int64), "fixed": fixed}
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis),
             helper.make_node("GatherElements", ["x", "i"], ["g"], axis=axis),
             helper.make_node("GatherElements", ["x", "fixed"], ["h"], axis=axis)]
    if axis == 0:  # the batch axis is the one gathered along: fixed sizes
        model = make_model(nodes, {"x": [3, 3, 4]}, ["g", "h"], inits)
        assert_matches_onnxruntime(model, batches=(1,))
    else:
        model = make_model(nodes, {"x": [2, 3, 4]}, ["g", "h"], inits)
        assert_matches_onnxruntime(model, batches=(1,))


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd_picks_elements_and_slices(batch_dims):
    """tf.gather_nd's batch_dims and torch's advanced indexing x[rows, cols] (batch_dims 0)."""
    elements = np.array([[[0, 1], [1, 0]], [[1, 3], [-1, -2]]], np.int64)  # (2, 2, 2): element tuples
    slices = np.array([[1], [0], [-1]], np.int64)
    inits = {"e": elements if batch_dims == 0 else elements[:, :, :1], "s": slices}
    nodes = [helper.make_node("GatherND", ["x", "e"], ["y"], batch_dims=batch_dims)]
    if batch_dims == 0:
        nodes.append(helper.make_node("GatherND", ["x", "s"], ["z"]))
    model = make_model(nodes, {"x": [2, 4, 5]}, ["y"] + (["z"] if batch_dims == 0 else []), inits)
    assert_matches_onnxruntime(model, batches=(1,))


def test_gather_nd_and_scatter_nd_with_computed_indices():
    """Index tuples that are a model input (random ids 0-4 from the test's feeds)."""
    gather = make_model([helper.make_node("GatherND", ["x", "rows"], ["y"], batch_dims=1)],
                        {"x": ["N", 5, 6], "rows": ["N", 3, 1]}, ["y"], input_types={"rows": TensorProto.INT64})
    assert_matches_onnxruntime(gather, batches=(1, 4))
    nodes = [helper.make_node("Tanh", ["u"], ["t"]),
             helper.make_node("ScatterND", ["x", "rows", "t"], ["z"], reduction="add")]
    scatter = make_model(nodes, {"x": [5, 6], "rows": [3, 1], "u": [3, 6]}, ["z"], opset=18,
                         input_types={"rows": TensorProto.INT64})
    assert_matches_onnxruntime(scatter, batches=(1,))


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_reductions_with_fixed_indices_and_computed_updates(reduction):
    indices = np.array([[1], [3], [-1]] if reduction == "none" else [[1], [3], [1]], np.int64)
    inits = {"i": indices}
    nodes = [helper.make_node("Relu", ["u"], ["r"]),
             helper.make_node("ScatterND", ["x", "i", "r"], ["y"], **({} if reduction == "none" else {"reduction": reduction}))]
    model = make_model(nodes, {"x": [5, 4], "u": [3, 4]}, ["y"], inits, opset=18)
    assert_matches_onnxruntime(model, batches=(1,))


def test_scatter_nd_of_elements_into_a_batch():
    """Index tuples of full length: single elements, data with a batch axis known at run time."""
    inits = {"i": np.array([[0, 1], [0, 3]], np.int64), "u": np.array([5.0, -2.0], np.float32)}
    nodes = [helper.make_node("ScatterND", ["x", "i", "u"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 4]}, ["y"], inits, opset=13))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_elements_along_each_axis(axis, reduction):
    rng = np.random.default_rng(5)
    shape = (3, 4, 5)
    index_shape = (2, 3, 4)
    size = shape[axis]
    if reduction == "none":  # no duplicates along the axis: the result is defined
        base = np.argsort(rng.random((*index_shape[:axis % 3], shape[axis % 3], *index_shape[axis % 3 + 1:])),
                          axis=axis % 3)
        indices = np.take(base, range(index_shape[axis % 3]), axis=axis % 3) - (size if axis == 1 else 0)
    else:
        indices = rng.integers(0, size, index_shape)
    inits = {"i": indices.astype(np.int64)}
    nodes = [helper.make_node("Sigmoid", ["u"], ["s"]),
             helper.make_node("ScatterElements", ["x", "i", "s"], ["y"], axis=axis,
                              **({} if reduction == "none" else {"reduction": reduction}))]
    model = make_model(nodes, {"x": list(shape), "u": list(index_shape)}, ["y"], inits, opset=18)
    assert_matches_onnxruntime(model, batches=(1,))


@pytest.mark.parametrize("equation", ["bhqd,bhkd->bhqk", "bij,bjk->bik", "bid,bjd->bij", "...ij,...jk",
                                      "bnd->bdn", "bi,bi->b"])
def test_einsum_between_computed_tensors(equation):
    shapes = {"bhqd,bhkd->bhqk": ([2, 3, 4], [2, 5, 4]), "bij,bjk->bik": ([3, 4], [4, 5]),
              "bid,bjd->bij": ([3, 4], [5, 4]), "...ij,...jk": ([3, 4], [4, 2]), "bnd->bdn": ([3, 4],),
              "bi,bi->b": ([6], [6])}[equation]
    names = [f"x{i}" for i in range(len(shapes))]
    nodes = [helper.make_node("Einsum", names, ["y"], equation=equation)]
    model = make_model(nodes, {n: ["N", *s] for n, s in zip(names, shapes)}, ["y"], opset=12)
    assert_matches_onnxruntime(model)


def test_einsum_with_a_fixed_operand():
    rng = np.random.default_rng(6)
    inits = {"w": rng.standard_normal((4, 3)).astype(np.float32)}
    nodes = [helper.make_node("Einsum", ["x", "w"], ["y"], equation="bnd,dh->bnh")]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 5, 4]}, ["y"], inits, opset=12))
    assert result.trainable_weight_count == 0  # an einsum operand is a constant, as the classification says


@pytest.mark.parametrize("mode", ["edge", "wrap", "reflect"])
def test_pad_modes_on_an_image_and_on_the_last_axis(mode):
    rng = np.random.default_rng(7)
    inits = {"pads": np.array([0, 0, 2, 1, 0, 0, 1, 3], np.int64), "pads2": np.array([0, 2, 0, 1], np.int64)}
    nodes = _conv("x", "c", 3, rng, inits) + [helper.make_node("Pad", ["c", "pads"], ["y"], mode=mode),
                                              helper.make_node("Pad", ["z", "pads2"], ["w"], mode=mode)]
    model = make_model(nodes, {"x": ["N", 3, 4, 5], "z": ["N", 4]}, ["y", "w"], inits)
    assert_matches_onnxruntime(model)


def _refused(model, match: str) -> None:
    from interop_keras.onnx_import import import_onnx

    with pytest.raises(UnsupportedModelError, match=match) as error:
        import_onnx(model)
    assert error.value.exit_code == 3


def test_what_cannot_be_expressed_is_refused_by_name():
    inits = {"pads": np.array([0, 0, 0, 6], np.int64), "k": np.array([9], np.int64)}
    _refused(make_model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")], {"x": ["N", 4]}, ["y"], inits),
             r"Pad.*wrap padding of an axis by more than its size")
    _refused(make_model([helper.make_node("TopK", ["x", "k"], ["v", "i"])], {"x": ["N", 4]}, {"v": ["N", 9]},
                        inits), r"TopK.*k=9 on an axis of 4 elements")
    _refused(make_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2)], {"x": ["N", 6, 2, 2]},
                        ["y"], inits), r"DepthToSpace.*6 channels are not a multiple")


def test_the_layers_save_and_load_in_safe_mode_with_their_fixed_operands(tmp_path):
    """Every new layer in one model, fixed indices and updates included: saved as .keras, loaded through
    interop's safety check and Keras' safe mode, it still computes what onnxruntime does."""
    from interop_keras.loading import load_keras_model
    from interop_keras.onnx_import import import_onnx

    from .helpers import keras_run, ort_run, random_feeds

    rng = np.random.default_rng(8)
    inits = {"k": np.array([2], np.int64), "axis": np.array(1, np.int64), "one": np.array(1, np.int64),
             "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "gi": np.array([[[0, 1]], [[1, 0]]], np.int64),
             "si": np.array([[0, 2], [1, 0]], np.int64), "su": rng.standard_normal((2, 4, 4)).astype(np.float32),
             "ei": rng.integers(0, 4, (2, 3, 4, 4)).astype(np.int64), "w": rng.standard_normal((4, 3)).astype(np.float32)}
    nodes = [helper.make_node("Pad", ["x", "pads"], ["edge"], mode="edge"),
             helper.make_node("Pad", ["x", "pads"], ["wrap"], mode="wrap"), helper.make_node("Add", ["edge", "wrap"], ["p"]),
             helper.make_node("SpaceToDepth", ["p"], ["s"], blocksize=2),
             helper.make_node("DepthToSpace", ["s"], ["d"], blocksize=2, mode="CRD"),
             helper.make_node("CumSum", ["d", "axis"], ["c"]), helper.make_node("Trilu", ["c", "one"], ["t"]),
             helper.make_node("TopK", ["t", "k"], ["v", "i"], axis=-1),
             helper.make_node("GatherElements", ["t", "i"], ["ge"], axis=3),
             helper.make_node("ScatterND", ["x", "si", "su"], ["sn"]),
             helper.make_node("ScatterElements", ["sn", "ei", "x"], ["se"], axis=2, reduction="add"),
             helper.make_node("GatherND", ["se", "gi"], ["gn"], batch_dims=1),
             helper.make_node("Einsum", ["gn", "w"], ["y"], equation="bcw,wh->bch")]
    model = make_model(nodes, {"x": [2, 3, 4, 4]}, ["v", "ge", "y"], inits, opset=18)
    path = tmp_path / "model.keras"
    import_onnx(model).model.save(path)
    loaded = load_keras_model(path)
    feeds = random_feeds(model, 2)
    expected, actual = ort_run(model, feeds), keras_run(loaded, model, feeds)
    for name, ref in expected.items():
        np.testing.assert_allclose(actual[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.slow
def test_a_keras_model_with_top_k_take_along_axis_triu_and_cumsum_round_trips(tmp_path):
    """keras -> onnx (tf2onnx) -> keras: triu becomes a fixed mask and zeros_like (ConstantOfShape of a computed
    shape), take_along_axis a GatherND with batch_dims=1 over a broadcast of the top-k indices."""
    import keras

    import interop
    from interop_keras.loading import load_keras_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8))
    h = keras.layers.Dense(8)(inputs)
    scores = keras.ops.triu(keras.ops.matmul(h, keras.ops.transpose(h, (0, 2, 1))), 1)
    values, indices = keras.ops.top_k(scores, 2)
    picked = keras.ops.cumsum(keras.ops.take_along_axis(h, indices, axis=2), axis=1)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Concatenate()([picked, values])))
    original = keras.Model(inputs, outputs)
    source = tmp_path / "model.keras"
    original.save(source)
    exported, imported = tmp_path / "model.onnx", tmp_path / "imported.keras"
    interop.convert(source, exported)
    interop.convert(exported, imported)
    report = interop.check(source, [imported, exported], batch_sizes=(1, 5))
    assert report.passed, report.to_dict()
    loaded = load_keras_model(imported)
    assert sum(int(np.prod(w.shape)) for w in loaded.trainable_weights) == original.count_params()
