"""Every Keras storage format converts: .keras, legacy .h5 and a TensorFlow SavedModel directory."""

from __future__ import annotations

import numpy as np
import pytest

import interop
from interop.implementations import open_session
from interop.registry import get_registry


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
