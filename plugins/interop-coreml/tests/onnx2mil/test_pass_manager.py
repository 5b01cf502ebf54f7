"""The lean pass manager (onnx2mil/pass_manager.py) gives the model coremltools' own manager gives."""

from __future__ import annotations

import logging
import pathlib

import numpy as np
import onnx
import pytest
from coremltools.converters.mil.mil.block import Block
from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager

from interop_coreml.onnx2mil import convert_model
from interop_coreml.onnx2mil.pass_manager import lean_pass_manager

from .conftest import make_model, tensor_info


def _cnn(with_transpose: bool) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu -> Mul by a constant (fused by the passes), maybe a Transpose pair."""
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((4, 3, 3, 3)), "b": rng.standard_normal(4),
        "scale": rng.uniform(0.5, 1.5, 4), "bias": rng.standard_normal(4),
        "mean": rng.standard_normal(4), "var": rng.uniform(0.5, 1.5, 4),
        "k": rng.uniform(0.5, 1.5, (1, 4, 1, 1)),
    }
    initializers = [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in arrays.items()]
    nodes = [
        onnx.helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
        onnx.helper.make_node("Relu", ["n"], ["r"]),
        onnx.helper.make_node("Mul", ["r", "k"], ["m"]),
    ]
    last = "m"
    if with_transpose:
        nodes += [onnx.helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 3, 1]),
                  onnx.helper.make_node("Sigmoid", ["t"], ["s"]),
                  onnx.helper.make_node("Transpose", ["s"], ["u"], perm=[0, 3, 1, 2])]
        last = "u"
    nodes.append(onnx.helper.make_node("Identity", [last], ["y"]))
    return make_model(nodes, [tensor_info("x", ["batch", 3, 8, 8])], [tensor_info("y", ["batch", 4, 8, 8])],
                      initializers)


def _package_bytes(mlmodel, folder: pathlib.Path) -> dict[str, bytes]:
    path = folder / "model.mlpackage"
    mlmodel.save(str(path))
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*"))
            if f.is_file() and f.name != "Manifest.json"}  # the manifest holds random identifiers


@pytest.mark.parametrize("with_transpose", [False, True], ids=["no-transpose", "transposes"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_same_package_as_coremltools_manager(tmp_path, with_transpose, precision):
    model = _cnn(with_transpose)
    timings: dict[str, float] = {}
    lean = convert_model(model, precision=precision, timings=timings)
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.DEBUG)  # the lean manager steps aside: coremltools' own runs every pass
    try:
        reference = convert_model(model, precision=precision)
    finally:
        logger.setLevel(level)
    (tmp_path / "lean").mkdir()
    (tmp_path / "reference").mkdir()
    lean_files = _package_bytes(lean, tmp_path / "lean")
    assert lean_files == _package_bytes(reference, tmp_path / "reference")
    program = lean.get_spec().mlProgram.functions["main"].block_specializations
    op_types = [op.type for block in program.values() for op in block.operations]
    assert "batch_norm" not in op_types and "conv" in op_types  # the fusions still ran
    assert op_types.count("transpose") == 0  # with transposes, the pair cancelled through the sigmoid
    assert {"prepare", "build", "passes", "serialise"} <= set(timings)
    assert "pass:interop::guarded_fuse_conv_batchnorm" in timings
    assert ("pass:interop::guarded_reduce_transposes" in timings) == with_transpose


def test_coremltools_functions_are_restored():
    apply_pipeline = PassPipelineManager.__dict__["apply_pipeline"]
    propagate = Block.__dict__["_propagate_nonreplaceable_vars"]
    with pytest.raises(RuntimeError, match="inside"):
        with lean_pass_manager():
            assert PassPipelineManager.__dict__["apply_pipeline"] is not apply_pipeline
            raise RuntimeError("inside")
    assert PassPipelineManager.__dict__["apply_pipeline"] is apply_pipeline
    assert Block.__dict__["_propagate_nonreplaceable_vars"] is propagate


def _upstream_sets(with_constexpr: bool) -> list[list[str]]:
    """Each op's output's nonreplaceable_vars_upstream (as the op types producing them), in program order,
    after leaving the function's block."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def prog(x):
        if with_constexpr:
            w = mb.constexpr_affine_dequantize(quantized_data=np.arange(6, dtype=np.uint8).reshape(2, 3),
                                               zero_point=np.uint8(1), scale=np.float32(0.5), axis=0)
        else:
            w = mb.const(val=np.ones((2, 3), np.float32))
        y = mb.add(x=x, y=w)
        return mb.relu(x=mb.reshape(x=y, shape=mb.shape(x=y)))

    function = prog.functions["main"]
    stale = function.operations[-1].outputs[0]
    stale._nonreplaceable_vars_upstream = {function.inputs["x"]}  # as left by a constexpr op since removed
    with function:
        pass
    return [sorted(v.op.op_type if v.op else "input" for v in var.nonreplaceable_vars_upstream)
            for op in function.operations for var in op.outputs]


@pytest.mark.parametrize("with_constexpr", [False, True])
def test_nonreplaceable_vars_as_coremltools_computes_them(with_constexpr):
    expected = _upstream_sets(with_constexpr)
    with lean_pass_manager():
        got = _upstream_sets(with_constexpr)
    assert got == expected
    assert any(got) == with_constexpr
