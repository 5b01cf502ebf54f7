"""Einsum → Core ML (ops/einsum.py): every equation numpy's einsum defines, against onnxruntime.

MIL's own ``einsum`` takes a few two-operand layouts only; torch.onnx keeps ``torch.einsum`` as an
ONNX Einsum node, so attention scores (``bhid,bhjd->bhij``), rotary tables (``i,j->ij``) and
relative-position terms failed to convert. Each case here is converted, saved, run in the reference
interpreter and compared with onnxruntime, with static and with dynamic dims.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops.einsum import parse_equation

from .conftest import assert_close, interpret, ort_run, save

# equation -> operand shapes
CASES = {
    "bhid,bhjd->bhij": [(2, 3, 5, 4), (2, 3, 6, 4)],  # attention scores (torch)
    "bhij,bhjd->bhid": [(2, 3, 5, 6), (2, 3, 6, 4)],  # attention @ values
    "i,j->ij": [(5,), (7,)],  # outer product (rotary tables)
    "i,i": [(6,), (6,)],  # inner product, implicit output: a scalar
    "i,i->": [(6,), (6,)],
    "ij->ji": [(3, 4)],
    "ij->i": [(3, 4)],
    "ij->": [(3, 4)],
    "ii->i": [(4, 4)],  # diagonal
    "...ii->...i": [(2, 3, 4, 4)],
    "bij,jk->bik": [(2, 3, 4), (4, 5)],
    "bn,anm->bam": [(2, 3), (4, 3, 5)],
    "...ij,...jk->...ik": [(2, 3, 4), (2, 4, 5)],
    "...ij,jk": [(2, 3, 4), (4, 5)],  # implicit: ellipsis first, then i and k
    "bhld,lrd->bhlr": [(2, 2, 3, 4), (3, 5, 4)],  # relative positions
    "abc,cd,de->abe": [(2, 3, 4), (4, 5), (5, 6)],  # three operands
    "abcd,cdef->abef": [(2, 3, 4, 5), (4, 5, 2, 3)],  # two contracted letters flattened into one
    "ab,cd->abcd": [(2, 3), (4, 5)],
    "nchw,oc->nohw": [(2, 3, 4, 5), (6, 3)],
    "bij,bkj->bik": [(1, 3, 4), (5, 2, 4)],  # batch dims broadcast (1 vs 5)
    "ij,ij->ij": [(3, 4), (3, 4)],  # elementwise
    "ijk,ijk->i": [(2, 3, 4), (2, 3, 4)],
    "ab,bc->": [(3, 4), (4, 5)],
    # Found by the fuzzer: a product whose kept groups are not one dim each must be reshaped back.
    "a,abc->bc": [(2,), (2, 3, 3)],
    "abcd,bed,a->eba": [(1, 1, 1, 4), (1, 4, 4), (1,)],
    "abc,c,ade->deab": [(4, 5, 1), (1,), (4, 1, 1)],
    # fuzz seed 31: as many kept letters as the product has dims, in other groups ((1, 1, 3) for (1, 3, 1))
    "a,fea->eaf": [(1,), (3, 1, 1)],
    "a,fea->fae": [(2,), (3, 4, 2)],
    "abc,c->ab": [(5, 4, 2), (2,)],
}


def _model(equation: str, shapes, dynamic: bool, dtype=TensorProto.FLOAT, out_shape=None) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(len(shapes))]
    inputs = [helper.make_tensor_value_info(name, dtype, [f"d{i}_{k}" if dynamic else s for k, s in enumerate(shape)])
              for i, (name, shape) in enumerate(zip(names, shapes))]
    graph = helper.make_graph([helper.make_node("Einsum", names, ["y"], equation=equation)], "einsum", inputs,
                              [helper.make_tensor_value_info("y", dtype, out_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("equation", list(CASES))
def test_einsum_matches_onnxruntime(tmp_path, equation, dynamic):
    shapes = CASES[equation]
    rng = np.random.default_rng(len(equation))
    feeds = {f"x{i}": rng.standard_normal(shape).astype(np.float32) for i, shape in enumerate(shapes)}
    model = _model(equation, shapes, dynamic)
    expected = ort_run(model, feeds)
    np.testing.assert_allclose(expected["y"], np.einsum(equation, *feeds.values()), rtol=1e-5, atol=1e-5)
    package = save(model, tmp_path / "e.mlpackage")
    assert_close(interpret(package, feeds), expected, rtol=1e-5, atol=1e-5)


def test_dynamic_einsum_runs_at_other_sizes(tmp_path):
    """The flattened groups are read from the shapes at run time, not fixed at conversion."""
    equation = "abcd,cdef->abef"
    package = save(_model(equation, CASES[equation], dynamic=True), tmp_path / "e.mlpackage")
    rng = np.random.default_rng(1)
    for shapes in ([(1, 2, 3, 2), (3, 2, 4, 1)], [(3, 1, 2, 5), (2, 5, 2, 2)]):
        feeds = {f"x{i}": rng.standard_normal(shape).astype(np.float32) for i, shape in enumerate(shapes)}
        got = interpret(package, feeds)["y"]
        np.testing.assert_allclose(got, np.einsum(equation, *feeds.values()), rtol=1e-5, atol=1e-5)


def test_float16_einsum_matches_onnxruntime(tmp_path):
    equation, shapes = "bhid,bhjd->bhij", CASES["bhid,bhjd->bhij"]
    rng = np.random.default_rng(3)
    feeds = {f"x{i}": rng.standard_normal(shape).astype(np.float16) for i, shape in enumerate(shapes)}
    model = _model(equation, shapes, dynamic=False, dtype=TensorProto.FLOAT16)
    package = save(model, tmp_path / "e.mlpackage", precision="fp16")
    assert_close(interpret(package, feeds), ort_run(model, feeds), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(("equation", "ranks", "message"), [
    ("ij,jk->ik", [2], "2 operand"),
    ("ijk->i", [2], "3 letters for a rank-2"),
    ("i1->i", [2], "letters"),
    ("ij->k", [2], "letters of the operands"),
    ("ij->ii", [2], "distinct"),
])
def test_malformed_equations_are_refused_by_name(equation, ranks, message):
    with pytest.raises(NodeNotConvertible, match=message):
        parse_equation(equation, ranks)


def test_integer_einsum_is_refused_with_exit_3(tmp_path):
    import interop
    from interop.plugin_api import InteropError

    model = _model("ij,jk->ik", [(2, 3), (3, 4)], dynamic=False, dtype=TensorProto.INT64, out_shape=[2, 4])
    onnx.save(model, str(tmp_path / "i.onnx"))
    with pytest.raises(InteropError) as info:
        interop.convert(tmp_path / "i.onnx", tmp_path / "i.mlpackage")
    assert info.value.exit_code == 3 and "integer einsum" in str(info.value)
    assert not (tmp_path / "i.mlpackage").exists()
