"""Clear refusals: unknown MIL ops (at load time), legacy NeuralNetwork models, bad feeds, non-macOS native runtime."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from interop_coreml.interpreter import (  # noqa: E402
    InputError,
    LegacyModelError,
    ModelFormatError,
    UnsupportedOpError,
    load_program,
)


def _save_program(program, path):
    mlmodel = ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                         minimum_deployment_target=ct.target.iOS17)
    mlmodel.save(str(path))
    return path


@pytest.fixture(scope="module")
def add_one_package(tmp_path_factory):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.add(x=x, y=np.float32(1.0), name="plus_one")

    return _save_program(program, tmp_path_factory.mktemp("add") / "add.mlpackage")


def test_op_without_kernel_is_reported_at_load_time(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS17)
    def program(x):
        noise = mb.random_uniform(shape=np.array([2, 3], np.int32), name="noise")
        return mb.add(x=x, y=noise)

    path = _save_program(program, tmp_path / "random.mlpackage")
    with pytest.raises(UnsupportedOpError) as raised:
        load_program(path)
    error = raised.value
    assert error.op_type == "random_uniform"
    assert "function 'main'" in error.location
    assert "random_uniform" in str(error) and "noise" in str(error)


def test_legacy_neural_network_model_is_refused(tmp_path):
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    builder = NeuralNetworkBuilder(
        [("x", datatypes.Array(3))], [("y", datatypes.Array(3))], disable_rank5_shape_mapping=True
    )
    builder.add_activation("relu", "RELU", "x", "y")
    path = tmp_path / "legacy.mlmodel"
    ct.utils.save_spec(builder.spec, str(path))
    with pytest.raises(LegacyModelError, match="neuralNetwork.*only ML Programs"):
        load_program(path)


def test_missing_and_malformed_files_are_model_format_errors(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        load_program(tmp_path / "absent.mlpackage")
    not_a_package = tmp_path / "empty.mlpackage"
    not_a_package.mkdir()
    with pytest.raises(ModelFormatError, match="Manifest.json"):
        load_program(not_a_package)
    garbage = tmp_path / "garbage.mlmodel"
    garbage.write_bytes(b"\xff\x00not a protobuf\x13")
    with pytest.raises(ModelFormatError):
        load_program(garbage)


def test_feeds_are_checked_against_the_program_inputs(add_one_package):
    program = load_program(add_one_package)
    (spec,) = program.inputs
    assert spec.shape == (2, 3) and spec.dtype == "float32"
    out = program.run({spec.name: np.zeros((2, 3), np.float64)})
    np.testing.assert_array_equal(out[program.outputs[0].name], np.ones((2, 3), np.float32))
    with pytest.raises(InputError, match="shape"):
        program.run({spec.name: np.zeros((3, 3), np.float32)})
    with pytest.raises(InputError, match="missing"):
        program.run({})


def test_runtime_availability_reports_without_importing_frameworks():
    import interop_coreml.runtime as runtime

    assert runtime.interpreter_available() == (True, "")
    ok, reason = runtime.native_available()
    if platform.system() != "Darwin":
        assert ok is False
        assert "only on macOS" in reason
        with pytest.raises(RuntimeError, match="only on macOS"):
            runtime.load_native(__file__)


def test_importing_the_runtime_module_imports_no_framework():
    import os
    import subprocess

    probe = (
        "import sys, interop_coreml.runtime; "
        "print(sorted(m for m in ('coremltools', 'torch', 'tensorflow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env=dict(os.environ))
    assert result.stdout.strip() == "[]"


def test_nan_and_inf_are_computed_without_numpy_warnings():
    # A fully masked attention row (every score -inf) through softmax is NaN, as on Core ML; numpy's
    # "invalid value encountered" warnings would reach the user's terminal during interop check.
    import warnings

    from .interp_helpers import interpret_on_input

    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, 2.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (soft,) = interpret_on_input(lambda v: mb.softmax(x=v, axis=-1), x)
        (ratio,) = interpret_on_input(lambda v: mb.real_div(x=v, y=mb.sub(x=v, y=v)), x)
    assert np.isnan(soft[0]).all() and np.allclose(soft[1].sum(), 1.0)
    assert np.isnan(ratio[0]).all() and np.isnan(ratio[1, 0]) and np.isinf(ratio[1, 1:]).all()  # inf - inf, 0 / 0, 1 / 0
