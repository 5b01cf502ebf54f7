"""The weight-folding fusions release the constants they replace at once (onnx2mil/passes.py).

Each guarded fusion must compute exactly what coremltools' own pass computes, and the array
of the folded weight must be gone as soon as the pass has run, not at the end of the pipeline.
"""

from __future__ import annotations

import gc
import pathlib
import weakref

import numpy as np
import onnx
import pytest
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

from interop_coreml.onnx2mil import passes

from .conftest import assert_close, interpret, make_model, ort_run, save, tensor_info


def _conv_then(kind: str, rng: np.random.Generator):
    """A MIL program conv -> (batch_norm | add | mul) -> relu, and a weak reference to the array the fusion
    replaces: the conv's weight, or with an add (which keeps the weight) its bias."""
    weight = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    alive = weakref.ref(bias if kind == "bias" else weight)
    per_channel = rng.uniform(0.5, 1.5, (8,)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 10, 10))])
    def prog(x):
        y = mb.conv(x=x, weight=weight, bias=bias)
        if kind == "batchnorm":
            y = mb.batch_norm(x=y, mean=rng.standard_normal(8).astype(np.float32), variance=per_channel,
                              gamma=rng.standard_normal(8).astype(np.float32),
                              beta=rng.standard_normal(8).astype(np.float32), epsilon=np.float32(1e-5))
        elif kind == "bias":
            y = mb.add(x=y, y=rng.standard_normal((1, 8, 1, 1)).astype(np.float32))
        else:
            y = mb.mul(x=y, y=per_channel.reshape(1, 8, 1, 1))
        return mb.relu(x=y)

    del weight, bias
    return prog, alive


def _linear_then_add(rng: np.random.Generator, matmul: bool):
    """linear (or matmul by a constant) -> add -> relu; a weak reference to the linear's bias (which the
    fusion replaces, keeping the weight) or None for the matmul, whose constant the fusion keeps: it
    becomes a linear's weight through a transpose that const_elimination folds later."""
    weight = rng.standard_normal((5, 6)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    alive = weakref.ref(bias)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 6))])
    def prog(x):
        y = mb.matmul(x=x, y=weight.T.copy()) if matmul else mb.linear(x=x, weight=weight, bias=bias)
        return mb.relu(x=mb.add(x=y, y=rng.standard_normal(5).astype(np.float32)))

    del weight, bias
    return prog, None if matmul else alive


def _consts(prog) -> list[tuple[str, bytes]]:
    values = [np.asarray(op.outputs[0].val) for op in prog.functions["main"].operations if op.op_type == "const"]
    return [(str(value.dtype), value.shape, value.tobytes()) for value in values]


def _op_types(prog) -> list[str]:
    return [op.op_type for op in prog.functions["main"].operations]


CASES = [
    ("batchnorm", "fuse_conv_batchnorm", lambda rng: _conv_then("batchnorm", rng)),
    ("bias", "fuse_conv_bias", lambda rng: _conv_then("bias", rng)),
    ("scale", "fuse_conv_scale", lambda rng: _conv_then("scale", rng)),
    ("linear", "fuse_linear_bias", lambda rng: _linear_then_add(rng, matmul=False)),
    ("matmul", "fuse_matmul_weight_bias", lambda rng: _linear_then_add(rng, matmul=True)),
]


@pytest.mark.parametrize("case, name, build", CASES, ids=[case[0] for case in CASES])
def test_fusion_frees_the_replaced_weight_and_computes_what_coremltools_does(case, name, build):
    ours, ours_alive = build(np.random.default_rng(0))
    theirs, theirs_alive = build(np.random.default_rng(0))
    gc.collect()
    gc.disable()  # freed by reference counting, as under the driver's gc.freeze(), not by a collection
    try:
        PASS_REGISTRY[f"interop::guarded_{name}"](ours)
        PASS_REGISTRY[f"common::{name}"](theirs)
        if ours_alive is not None:
            assert ours_alive() is None, "the folded weight is still held after the fusion"
            assert theirs_alive() is not None  # coremltools' pass leaves it to dead_code_elimination
    finally:
        gc.enable()
    assert len(_op_types(ours)) < len(_op_types(theirs))  # the dead consts are gone already
    PASS_REGISTRY["common::dead_code_elimination"](theirs)
    assert _op_types(ours) == _op_types(theirs)
    assert _consts(ours) == _consts(theirs)  # the same values, bit for bit


@pytest.mark.parametrize("shape, groups, with_bias, dtype", [
    ((8, 3, 3), 1, True, np.float32),  # conv1d
    ((6, 3, 3, 3), 1, False, np.float32),  # no bias: coremltools starts from zeros
    ((6, 1, 3, 3), 3, True, np.float32),  # grouped
    ((4, 3, 1, 2, 2), 1, True, np.float32),  # conv3d
    ((6, 3, 3, 3), 1, True, np.float16),  # not float32: coremltools' own code
], ids=["conv1d", "no-bias", "grouped", "conv3d", "float16"])
def test_batchnorm_folding_gives_coremltools_bits(shape, groups, with_bias, dtype):
    def build():
        rng = np.random.default_rng(3)
        weight = rng.standard_normal(shape).astype(dtype)
        channels, spatial = shape[0], (5,) * (len(shape) - 2)
        vectors = [rng.standard_normal(channels).astype(dtype) for _ in range(4)]
        vectors[3] = np.abs(vectors[3]) + dtype(0.1)  # variance

        @mb.program(input_specs=[mb.TensorSpec(shape=(1, shape[1] * groups, *spatial))])
        def prog(x):
            if dtype == np.float16:
                x = mb.cast(x=x, dtype="fp16")
            y = mb.conv(x=x, weight=weight, groups=groups, **({"bias": vectors[0]} if with_bias else {}))
            y = mb.batch_norm(x=y, mean=vectors[1], variance=vectors[3], gamma=vectors[2],
                              beta=rng.standard_normal(channels).astype(dtype), epsilon=dtype(1e-3))
            return mb.relu(x=y)

        return prog

    ours, theirs = build(), build()
    PASS_REGISTRY["interop::guarded_fuse_conv_batchnorm"](ours)
    PASS_REGISTRY["common::fuse_conv_batchnorm"](theirs)
    PASS_REGISTRY["common::dead_code_elimination"](theirs)
    assert "batch_norm" not in _op_types(ours)
    assert _op_types(ours) == _op_types(theirs)
    assert _consts(ours) == _consts(theirs)


def test_a_weight_another_op_uses_stays():
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 5, 5))])
    def prog(x):
        w = mb.const(val=weight)
        a = mb.batch_norm(x=mb.conv(x=x, weight=w), mean=np.zeros(4, np.float32), variance=np.ones(4, np.float32),
                          gamma=np.full(4, 2.0, np.float32), beta=np.zeros(4, np.float32))
        return mb.add(x=a, y=mb.conv(x=x, weight=w))  # the second conv keeps reading the unfused weight

    PASS_REGISTRY["interop::guarded_fuse_conv_batchnorm"](prog)
    kept = [op.outputs[0].val for op in prog.functions["main"].operations if op.op_type == "const"
            and np.shape(op.outputs[0].val) == weight.shape]
    assert any(np.array_equal(value, weight) for value in kept)
    assert any(np.allclose(value, 2 * weight, rtol=1e-4) and not np.array_equal(value, weight) for value in kept)
    assert "batch_norm" not in _op_types(prog)


def _conv_bn_net() -> onnx.ModelProto:
    """Two Conv -> BatchNormalization -> Relu blocks, a Conv + Add and a Gemm: every fusion that folds weights."""
    rng = np.random.default_rng(2)
    arrays = {
        "w1": rng.standard_normal((6, 3, 3, 3)), "g1": rng.uniform(0.5, 1.5, 6), "b1": rng.standard_normal(6),
        "m1": rng.standard_normal(6), "v1": rng.uniform(0.5, 1.5, 6),
        "w2": rng.standard_normal((6, 6, 3, 3)), "g2": rng.uniform(0.5, 1.5, 6), "b2": rng.standard_normal(6),
        "m2": rng.standard_normal(6), "v2": rng.uniform(0.5, 1.5, 6),
        "w3": rng.standard_normal((4, 6, 1, 1)), "k3": rng.standard_normal((1, 4, 1, 1)),
        "fc": rng.standard_normal((4, 3)), "fb": rng.standard_normal(3),
    }
    initializers = [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in arrays.items()]
    initializers.append(onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "flat"))
    nodes = [
        onnx.helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("BatchNormalization", ["c1", "g1", "b1", "m1", "v1"], ["n1"]),
        onnx.helper.make_node("Relu", ["n1"], ["r1"]),
        onnx.helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        onnx.helper.make_node("BatchNormalization", ["c2", "g2", "b2", "m2", "v2"], ["n2"]),
        onnx.helper.make_node("Relu", ["n2"], ["r2"]),
        onnx.helper.make_node("Conv", ["r2", "w3"], ["c3"]),
        onnx.helper.make_node("Add", ["c3", "k3"], ["a3"]),
        onnx.helper.make_node("GlobalAveragePool", ["a3"], ["p"]),
        onnx.helper.make_node("Reshape", ["p", "flat"], ["f"]),
        onnx.helper.make_node("Gemm", ["f", "fc", "fb"], ["y"]),
    ]
    return make_model(nodes, [tensor_info("x", ["batch", 3, 12, 12])], [tensor_info("y", ["batch", 3])],
                      initializers)


def _weights_and_ops(path: pathlib.Path) -> tuple[dict[str, bytes], list[str]]:
    """The package's weight files, byte for byte, and its op types in program order.

    Not the whole model file: the names coremltools gives new consts (``const_12``) and symbols come
    from counters that depend on what the process converted before.
    """
    weights = {str(f.relative_to(path)): f.read_bytes() for f in sorted((path / "Data").rglob("*.bin"))}
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    blocks = spec.mlProgram.functions["main"].block_specializations.values()
    return weights, [op.type for block in blocks for op in block.operations]


def test_same_package_as_without_the_release_and_matches_onnxruntime(tmp_path, monkeypatch):
    model = _conv_bn_net()
    released = save(model, tmp_path / "released.mlpackage")
    monkeypatch.setattr(passes, "_release_orphaned_consts", lambda const_ops: None)
    kept = save(model, tmp_path / "kept.mlpackage")
    weights, op_types = _weights_and_ops(released)
    assert weights and (weights, op_types) == _weights_and_ops(kept)
    assert "batch_norm" not in op_types and op_types.count("conv") == 3 and "linear" in op_types
    for batch in (1, 3):
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 3, 12, 12)).astype(np.float32)}
        assert_close(interpret(released, feeds), ort_run(model, feeds))
