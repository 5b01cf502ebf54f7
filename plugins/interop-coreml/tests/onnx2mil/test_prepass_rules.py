"""One test per rewrite rule of the pre-pass, each on the smallest node that exercises it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from interop_coreml.onnx2mil import prepass
from interop_coreml.onnx2mil.prepass import (
    RULES,
    _Walk,
    bypass_no_op,
    fold_constant_inputs,
    fold_constant_node,
    fold_shape_and_size,
    mark_suspect_shapes,
    propagate_symbolic_shapes,
    rewrite_symbolic_reshape,
)


def _walk(**known) -> _Walk:  # type: ignore[no-untyped-def]
    walk = _Walk(opset=18, shapes={}, constants={}, graph_outputs={"out"}, consumed=set())
    for name, value in known.items():
        setattr(walk, name, value)
    return walk


def test_the_rules_run_in_the_documented_order() -> None:
    assert [rule.__name__ for rule in RULES] == [
        "bypass_no_op", "fold_constant_node", "mark_suspect_shapes", "fold_shape_and_size",
        "fold_constant_inputs", "propagate_symbolic_shapes", "rewrite_symbolic_reshape"]
    assert all(name in prepass.__doc__ for name in (rule.__name__ for rule in RULES))


def test_bypass_no_op() -> None:
    walk = _walk()
    assert bypass_no_op(helper.make_node("Identity", ["x"], ["y"]), walk) and walk.alias == {"y": "x"}
    # A graph output keeps its node (its name must survive); training-mode Dropout is no no-op.
    assert not bypass_no_op(helper.make_node("Identity", ["x"], ["out"]), walk)
    training = _walk(constants={"ratio": np.array(0.5, np.float32), "on": np.array(True)})
    assert not bypass_no_op(helper.make_node("Dropout", ["x", "ratio", "on"], ["d"]), training)
    assert bypass_no_op(helper.make_node("Dropout", ["x"], ["d"]), walk) and walk.alias["d"] == "x"
    # A Dropout whose mask is used stays.
    assert not bypass_no_op(helper.make_node("Dropout", ["x"], ["d2", "mask"]), _walk(consumed={"mask"}))


def test_fold_constant_node() -> None:
    walk = _walk()
    node = helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(np.arange(3, dtype=np.int64)))
    assert fold_constant_node(node, walk)
    np.testing.assert_array_equal(walk.constants["c"], [0, 1, 2])
    assert not fold_constant_node(helper.make_node("Relu", ["x"], ["y"]), walk)


def test_mark_suspect_shapes() -> None:
    # A ceil_mode pool whose inferred output length disagrees with the spec (3 windows, not 2).
    pool = helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2], strides=[2], ceil_mode=1)
    walk = _walk(shapes={"x": (1, 1, 5), "p": (1, 1, 2)})
    assert not mark_suspect_shapes(pool, walk) and walk.suspect == {"p"}
    assert not mark_suspect_shapes(helper.make_node("Relu", ["p"], ["r"]), walk) and "r" in walk.suspect
    clean = _walk(shapes={"x": (1, 1, 5), "p": (1, 1, 3)})
    mark_suspect_shapes(pool, clean)
    assert clean.suspect == set()


def test_fold_shape_and_size() -> None:
    walk = _walk(shapes={"x": (2, 3, 4), "s": ("N", 3)})
    assert fold_shape_and_size(helper.make_node("Shape", ["x"], ["shape"], start=1), walk)
    np.testing.assert_array_equal(walk.constants["shape"], [3, 4])
    assert fold_shape_and_size(helper.make_node("Size", ["x"], ["size"]), walk) and walk.constants["size"] == 24
    assert not fold_shape_and_size(helper.make_node("Shape", ["s"], ["sym"]), walk)
    assert walk.symbolic["sym"].tolist() == ["?N", 3]
    suspect = _walk(shapes={"x": (2, 3)}, suspect={"x"})
    assert not fold_shape_and_size(helper.make_node("Shape", ["x"], ["s2"]), suspect) and "s2" not in suspect.constants


def test_fold_constant_inputs() -> None:
    walk = _walk(constants={"a": np.array([1.0, -2.0], np.float32)})
    assert fold_constant_inputs(helper.make_node("Relu", ["a"], ["r"]), walk)
    np.testing.assert_array_equal(walk.constants["r"], [1.0, 0.0])
    assert not fold_constant_inputs(helper.make_node("Relu", ["x"], ["r2"]), walk)  # x is not known
    assert not fold_constant_inputs(helper.make_node("RandomUniformLike", ["a"], ["u"]), walk)  # never folded
    assert not fold_constant_inputs(helper.make_node("LRN", ["a"], ["l"], size=1), walk)  # evaluator unreliable


def test_propagate_symbolic_shapes() -> None:
    walk = _walk(symbolic={"shape": np.array(["?N", 3, 4], dtype=object)},
                 constants={"idx": np.array([1, 2], np.int64), "zero": np.array(0, np.int64)})
    assert propagate_symbolic_shapes(helper.make_node("Gather", ["shape", "idx"], ["static"], axis=0), walk)
    np.testing.assert_array_equal(walk.constants["static"], [3, 4])  # every entry static: a constant
    assert not propagate_symbolic_shapes(helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0), walk)
    assert walk.symbolic["batch"].tolist() == "?N"


def test_rewrite_symbolic_reshape() -> None:
    walk = _walk(shapes={"x": ("N", 2, 3)}, symbolic={"target": np.array(["?N", 6], dtype=object)})
    node = helper.make_node("Reshape", ["x", "target"], ["y"])
    assert not rewrite_symbolic_reshape(node, walk)  # edits, never removes
    assert node.input[1] == "target__folded"
    np.testing.assert_array_equal(walk.constants["target__folded"], [0, 6])
    # allowzero=1 with a literal 0 in the target cannot use the 0 marker: left alone.
    zero = _walk(shapes={"x": ("N", 0)}, symbolic={"t": np.array(["?N", 0], dtype=object)})
    keep = helper.make_node("Reshape", ["x", "t"], ["y"], allowzero=1)
    rewrite_symbolic_reshape(keep, zero)
    assert keep.input[1] == "t"
