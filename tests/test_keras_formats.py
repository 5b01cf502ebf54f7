"""Every Keras storage format converts: .keras, legacy .h5 and a TensorFlow SavedModel directory."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop.implementations import open_session
from interop.plugin_registry import get_registry


@pytest.fixture(scope="module")
def keras_variants(keras_model, tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("keras_variants")
    model = keras.saving.load_model(str(keras_model), safe_mode=True)
    model.save(str(folder / "iris.h5"))
    model.export(str(folder / "iris_saved"), format="tf_saved_model", verbose=False)
    return {"h5": folder / "iris.h5", "saved_model": folder / "iris_saved"}


@pytest.mark.parametrize("variant", ["h5", "saved_model"])
def test_variant_converts_and_matches(variant, keras_variants, keras_model, tmp_path, sample_batches):
    registry = get_registry()
    src = keras_variants[variant]
    dst = tmp_path / f"{variant}.onnx"
    result = interop.convert(src, dst)
    assert result.source_format == "keras" and result.route == ["keras", "onnx"]
    original = open_session(registry.runtimes["keras"], registry, keras_model)
    copy = open_session(registry.runtimes["onnxruntime"], registry, dst)
    assert [s.name for s in copy.inputs] == ["petal"]  # captured constants are folded, not inputs
    assert copy.inputs[0].is_dynamic(0)
    out_name = copy.outputs[0].name
    for batch in sample_batches:
        np.testing.assert_allclose(
            copy.run({"petal": batch})[out_name], original.run({"petal": batch})["logits"], atol=1e-5, rtol=0
        )


def test_saved_model_runs_in_the_keras_runtime(keras_variants, keras_model, sample_batches):
    registry = get_registry()
    saved = open_session(registry.runtimes["keras"], registry, keras_variants["saved_model"])
    original = open_session(registry.runtimes["keras"], registry, keras_model)
    x = sample_batches[0]
    np.testing.assert_allclose(
        saved.run({"petal": x})[saved.outputs[0].name], original.run({"petal": x})["logits"], atol=1e-6
    )


def test_an_untrained_design_keeps_every_weight_with_its_exact_value(tmp_path):
    """Zero biases (every Keras layer's before training) stay ONNX initializers, and stay exactly zero."""
    import keras
    from onnx import load, numpy_helper

    keras.utils.set_random_seed(3)
    inputs = keras.Input((2,), name="petal")
    hidden = keras.layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(hidden))
    src = tmp_path / "design.keras"
    model.save(str(src))
    dst = tmp_path / "design.onnx"
    interop.convert(src, dst)

    stored = [numpy_helper.to_array(t) for t in load(str(dst)).graph.initializer]
    stored = [v for v in stored if v.dtype == np.float32 and v.size > 1]
    weights = [np.asarray(w) for w in model.weights]
    assert sorted(v.shape for v in stored) == sorted(w.shape for w in weights)
    for weight in weights:
        matches = [v for v in stored if v.shape == weight.shape and np.array_equal(v, weight)]
        assert matches, f"no initializer holds the weight of shape {weight.shape} exactly"
    assert sum(1 for v in stored if v.ndim == 1 and not np.any(v)) == 2  # both biases, exact zeros


def test_exact_gelu_converts_through_erf(tmp_path):
    """Keras' exact GELU is TensorFlow's Erfc, which ONNX lacks: it becomes 1 - Erf, accurate in the tails too."""
    import keras
    import onnx

    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(4, activation="gelu", name="y")(inputs))
    src = tmp_path / "gelu.keras"
    model.save(str(src))
    dst = tmp_path / "gelu.onnx"
    interop.convert(src, dst)

    ops = {node.op_type for node in onnx.load(str(dst)).graph.node}
    assert "Erf" in ops and "Erfc" not in ops
    registry = get_registry()
    copy = open_session(registry.runtimes["onnxruntime"], registry, dst)
    x = np.linspace(-12, 12, 6 * 50, dtype=np.float32).reshape(50, 6)  # pre-activations far into both tails
    want = np.asarray(model(x))
    got = copy.run({"x": x})[copy.outputs[0].name]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_grouped_convolutions_keras_compiles_with_xla_convert(tmp_path):
    """Keras 3 runs grouped convolutions (ConvNeXt's depthwise ones) and channels-first 3-D ones in a
    tf.function(jit_compile=True); tf2onnx left each as a StatefulPartitionedCall no runtime knows. The
    converter has grappler inline them: the ONNX graph holds grouped Convs and matches Keras."""
    import keras
    import onnx

    keras.utils.set_random_seed(6)
    image = keras.Input((9, 9, 8), name="image")
    grouped = keras.layers.Conv2D(8, 3, padding="same", groups=8, name="depthwise")(image)  # ConvNeXt's form
    grouped = keras.layers.Conv2D(12, 1, groups=4, activation="relu")(grouped)
    volume = keras.Input((2, 5, 5, 3), name="volume")
    first = keras.layers.Conv3D(4, 2, data_format="channels_first", name="cf3d")(volume)
    model = keras.Model([image, volume], [grouped, first])
    src = tmp_path / "grouped.keras"
    model.save(str(src))
    dst = tmp_path / "grouped.onnx"
    interop.convert(src, dst)

    graph = onnx.load(str(dst)).graph
    assert not [n.op_type for n in graph.node if "PartitionedCall" in n.op_type]
    assert sorted(a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group") == [1, 4, 8]
    registry = get_registry()
    copy = open_session(registry.runtimes["onnxruntime"], registry, dst)
    rng = np.random.default_rng(6)
    feeds = {"image": rng.standard_normal((3, 9, 9, 8)).astype(np.float32),
             "volume": rng.standard_normal((3, 2, 5, 5, 3)).astype(np.float32)}
    got = copy.run(feeds)
    for want, output in zip(model([feeds["image"], feeds["volume"]]), copy.outputs):
        np.testing.assert_allclose(got[output.name], np.asarray(want), rtol=1e-5, atol=1e-5)


def test_a_model_with_dict_inputs_keeps_its_captured_constants_out_of_the_inputs(tmp_path):
    """Dict inputs go through tf2onnx's function path, which listed captured constants as inputs."""
    import keras
    import onnx

    keras.utils.set_random_seed(7)
    numbers, image = keras.Input((8,), name="num"), keras.Input((4, 4, 3), name="img")
    normalized = keras.layers.Normalization(mean=np.arange(8.0), variance=np.arange(1.0, 9.0))(numbers)
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 2)(keras.layers.Rescaling(1 / 255.0)(image)))
    hidden = keras.layers.Dense(16, activation="tanh")(keras.layers.Concatenate()([normalized, features]))
    model = keras.Model({"num": numbers, "img": image},
                        {"flag": keras.layers.Dense(2, activation="sigmoid")(hidden), "value": keras.layers.Dense(1)(hidden)})
    src = tmp_path / "multi.keras"
    model.save(str(src))
    dst = tmp_path / "multi.onnx"
    interop.convert(src, dst)

    graph = onnx.load(str(dst)).graph
    initializers = {t.name for t in graph.initializer}
    assert sorted(i.name for i in graph.input if i.name not in initializers) == ["img", "num"]
    report = interop.check(src, [dst])
    assert report.passed, report.format_table()


def test_a_sequential_model_loaded_from_its_file_converts_and_checks(tmp_path):
    """Keras 3 leaves a loaded Sequential uncalled: ``.input``/``.output`` raise (the converter, the runtime
    and the trainer read them) and tf2onnx's from_keras looks its outputs up by a call's names."""
    import keras
    import onnx

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    src = tmp_path / "sequential.keras"
    model.save(str(src))
    dst = tmp_path / "sequential.onnx"
    interop.convert(src, dst)
    graph = onnx.load(str(dst)).graph
    assert len(graph.input) == 1 and len(graph.output) == 1
    report = interop.check(src, [dst])
    assert report.passed, report.format_table()
