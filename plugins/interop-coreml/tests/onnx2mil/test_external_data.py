"""Models with external data: weights mapped from their file, never read into the proto.

The 2.5 GB case is benchmarks/bench_large_onnx_to_coreml.py (peak RSS / weight size); here a
small model takes the same path: `interop convert` of an ONNX file whose initializers live in
a file beside it, checked against onnxruntime, and the translator's arrays shown to be views
of a memory map of that file.
"""

from __future__ import annotations

import mmap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from interop_coreml.onnx2mil.weights import WeightReader

from .conftest import interpret, ort_run


def _external(name: str, array: np.ndarray, data, offset: int) -> tuple[TensorProto, int]:
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    data.write(raw)
    tensor = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=list(array.shape))
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", str(offset)), ("length", str(len(raw)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor, offset + len(raw)


def _model(folder):
    """x -> MatMul(W1) -> Add(b1) -> Relu -> Gemm(W2, transB) -> Gather rows of an int64-indexed table."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 64)).astype(np.float32)
    b1 = rng.standard_normal(64).astype(np.float32)
    w2 = rng.standard_normal((8, 64)).astype(np.float32)
    scale = np.float32(0.5)
    with open(folder / "weights.bin", "wb") as data:
        t1, offset = _external("w1", w1, data, 0)
        t2, offset = _external("b1", b1, data, offset)
        t3, offset = _external("w2", w2, data, offset)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m"]),
        helper.make_node("Add", ["m", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["h"]),
        helper.make_node("Gemm", ["h", "w2"], ["g"], transB=1),
        helper.make_node("Mul", ["g", "scale"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
                              [t1, t2, t3, numpy_helper.from_array(scale, "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_model_converts_and_matches_onnxruntime(tmp_path):
    import interop

    source = _model(tmp_path)
    package = tmp_path / "model.mlpackage"
    interop.convert(source, package)  # what `interop convert model.onnx -o model.mlpackage` runs
    for batch in (1, 3):
        feeds = {"x": np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)}
        expected = ort_run(onnx.load(str(source)), feeds)["y"]
        np.testing.assert_allclose(interpret(package, feeds)["y"], expected, rtol=1e-5, atol=1e-5)


def _mapping_of(array: np.ndarray):
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base  # np.frombuffer keeps a memoryview


@pytest.mark.parametrize("map_at_least", [0, 1024])
def test_large_external_initializers_are_views_of_a_mapping_each(tmp_path, map_at_least):
    """Each large initializer maps its own bytes (so its pages leave with it); a small one is read."""
    source = _model(tmp_path)
    model = onnx.load(str(source), load_external_data=False)
    reader = WeightReader(tmp_path, map_at_least=map_at_least)
    arrays = {t.name: reader.array(t) for t in model.graph.initializer}
    full = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(source)).graph.initializer}
    mappings = []
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, full[name])
        base = _mapping_of(array)
        # External data: w1 and w2 (4096 and 2048 bytes) are large at 1024, b1 (256 bytes) is not;
        # inline data ("scale") is decoded as usual.
        large = name != "scale" and array.nbytes >= map_at_least
        assert isinstance(base, mmap.mmap) == large, (name, type(base))
        if large:
            assert len(base) < (tmp_path / "weights.bin").stat().st_size  # its own bytes, not the whole file
            mappings.append(base)
        elif name != "scale":
            assert isinstance(base, bytearray)
    assert len({id(m) for m in mappings}) == len(mappings) == (3 if map_at_least == 0 else 2)


def test_external_data_that_does_not_hold_the_tensor_is_refused(tmp_path):
    source = _model(tmp_path)
    with open(tmp_path / "weights.bin", "r+b") as data:
        data.truncate(100)  # w1 alone needs 4096 bytes
    model = onnx.load(str(source), load_external_data=False)
    with pytest.raises(ValueError, match="does not hold"):
        WeightReader(tmp_path).array(model.graph.initializer[0])
