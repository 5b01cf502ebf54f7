"""while_loop and cond, saved to an .mlpackage and run by the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from interop_coreml.interpreter import load_program  # noqa: E402


def _save(program, path):
    ct.convert(program, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
               minimum_deployment_target=ct.target.iOS17).save(str(path))
    return load_program(path)


def test_while_loop_doubles_until_the_counter_reaches_the_limit(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1,)), mb.TensorSpec(shape=(2, 2))], opset_version=ct.target.iOS17)
    def program(counter, values):
        def cond(i, acc):
            return mb.less(x=i, y=np.float32(5.0))

        def body(i, acc):
            return mb.add(x=i, y=np.float32(1.0)), mb.mul(x=acc, y=np.float32(2.0))

        return mb.while_loop(_cond=cond, _body=body, loop_vars=(counter, values))

    loaded = _save(program, tmp_path / "loop.mlpackage")
    names = [spec.name for spec in loaded.inputs]
    values = np.arange(4, dtype=np.float32).reshape(2, 2)
    out = loaded.run({names[0]: np.array([2.0], np.float32), names[1]: values})
    final_counter, final_values = (out[spec.name] for spec in loaded.outputs)
    np.testing.assert_array_equal(final_counter, [5.0])
    np.testing.assert_array_equal(final_values, values * 8)


def test_cond_picks_the_branch_from_the_predicate(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))], opset_version=ct.target.iOS17)
    def program(x):
        predicate = mb.greater(x=mb.reduce_sum(x=x), y=np.float32(0.0))
        return mb.cond(pred=predicate, _true_fn=lambda: mb.mul(x=x, y=np.float32(10.0)),
                       _false_fn=lambda: mb.sub(x=x, y=np.float32(1.0)))

    loaded = _save(program, tmp_path / "cond.mlpackage")
    (name,) = [spec.name for spec in loaded.inputs]
    (output,) = [spec.name for spec in loaded.outputs]
    positive = np.array([1.0, 2.0, -0.5], np.float32)
    np.testing.assert_array_equal(loaded.run({name: positive})[output], positive * 10)
    negative = -positive
    np.testing.assert_array_equal(loaded.run({name: negative})[output], negative - 1)
