"""Reusing dead buffers must never change a result: runs with and without capture agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from interop_coreml.interpreter import load_program  # noqa: E402


def test_in_place_kernels_leave_views_of_their_inputs_intact(tmp_path):
    weight = np.random.default_rng(0).standard_normal((4, 3, 1, 1)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 2, 2))], opset_version=ct.target.iOS17)
    def program(x):
        conv = mb.conv(x=x, weight=weight)
        # `flat` is a view of the conv result in numpy; the relu below is the conv result's last
        # reader, and must not overwrite the buffer `flat` still shares.
        flat = mb.reshape(x=conv, shape=[1, 16])
        activated = mb.relu(x=conv)
        shifted = mb.add(x=activated, y=np.float32(1.0))
        return mb.add(x=mb.reshape(x=shifted, shape=[1, 16]), y=flat)

    path = tmp_path / "views.mlpackage"
    ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
               minimum_deployment_target=ct.target.iOS17, pass_pipeline=ct.PassPipeline.EMPTY).save(str(path))
    loaded = load_program(path)
    x = np.random.default_rng(1).standard_normal((1, 3, 2, 2)).astype(np.float32)
    (name,) = [spec.name for spec in loaded.inputs]
    (output,) = [spec.name for spec in loaded.outputs]
    conv = np.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x).reshape(1, 16)
    expected = np.maximum(conv, 0) + 1 + conv
    reused = loaded.run({name: x})[output]
    kept = loaded.run({name: x}, capture=loaded.var_names()[:1])[output]
    np.testing.assert_allclose(reused, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reused, kept)
    assert np.array_equal(x, np.random.default_rng(1).standard_normal((1, 3, 2, 2)).astype(np.float32))
