"""Rank > 5 in Reshape/Transpose chains (window partitioning) and padding by run-time amounts.

Core ML tensors have rank <= 5; Swin's and MaxViT's partitions reshape to rank 6. The
translator rewrites such chains into rank <= 5 reshapes and transposes; the graphs below
are held against onnxruntime (which has no rank limit) at two batch sizes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from interop_coreml.onnx2mil import high_rank
from interop_coreml.onnx2mil.errors import UnsupportedModelError

from .conftest import interpret, make_model, ort_run, save


def _const(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _info(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def _check(model, tmp_path, shapes, **options):
    path = save(model, tmp_path / "m.mlpackage", **options)
    rng = np.random.default_rng(0)
    name = model.graph.input[0].name
    for shape in shapes:
        feeds = {name: rng.standard_normal(shape).astype(np.float32)}
        ours, reference = interpret(path, feeds), ort_run(model, feeds)
        for key, expected in reference.items():
            assert ours[key].shape == expected.shape
            np.testing.assert_allclose(ours[key], expected, rtol=1e-5, atol=1e-6, err_msg=key)
    return path


def test_block_swaps_reach_every_permutation_with_rank_4_views():
    for perm in itertools.permutations(range(6)):
        order = list(range(6))
        swaps = high_rank.block_swaps(list(perm))
        assert len(swaps) <= 5, perm
        for i, j, k in swaps:
            assert i < j < k <= 6, perm  # before | block 1 | block 2 | after: a view of rank <= 4
            order = order[:i] + order[j:k] + order[i:j] + order[k:]
        assert order == list(perm)


def test_axes_that_move_together_are_merged():
    assert high_rank.runs([0, 1, 3, 2, 4, 5]) == [[0, 1], [3], [2], [4, 5]]  # Swin: one rank-4 transpose
    assert len(high_rank.runs([0, 2, 4, 1, 3, 5])) == 6  # MaxViT's grid: no two axes move together


def _partition_graph(perm_in, perm_out, split, merge):
    """x (N, 8, 12, 4) -> Reshape to rank 6 (N from Shape) -> Transpose -> Reshape to windows -> Relu -> back."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], end=1),
        helper.make_node("Concat", ["shape", "split"], ["six"], axis=0),
        helper.make_node("Reshape", ["x", "six"], ["r6"]),
        helper.make_node("Transpose", ["r6"], ["t6"], perm=perm_in),
        helper.make_node("Reshape", ["t6", "windows_shape"], ["windows"]),
        helper.make_node("Relu", ["windows"], ["act"]),
        helper.make_node("Concat", ["shape", "merge"], ["six_back"], axis=0),
        helper.make_node("Reshape", ["act", "six_back"], ["b6"]),
        helper.make_node("Transpose", ["b6"], ["u6"], perm=perm_out),
        helper.make_node("Concat", ["shape", "image"], ["four"], axis=0),
        helper.make_node("Reshape", ["u6", "four"], ["y"]),
    ]
    inits = [_const("split", split), _const("merge", merge), _const("windows_shape", [-1, 16, 4]),
             _const("image", [8, 12, 4])]
    return make_model(nodes, [_info("x", ["N", 8, 12, 4])], [_info("y", ["N", 8, 12, 4])], inits)


def test_swin_window_partition_and_reverse(tmp_path):
    model = _partition_graph([0, 1, 3, 2, 4, 5], [0, 1, 3, 2, 4, 5], [2, 4, 3, 4, 4], [2, 3, 4, 4, 4])
    _check(model, tmp_path, [(1, 8, 12, 4), (3, 8, 12, 4)])


def test_maxvit_grid_partition_moving_no_axes_together(tmp_path):
    # (N, 4, 2, 4, 3, 4) -> grid (0, 2, 4, 1, 3, 5) -> windows of 4x4 -> back with (0, 3, 1, 4, 2, 5).
    model = _partition_graph([0, 2, 4, 1, 3, 5], [0, 3, 1, 4, 2, 5], [4, 2, 4, 3, 4], [2, 3, 4, 4, 4])
    _check(model, tmp_path, [(1, 8, 12, 4), (3, 8, 12, 4)])


def test_unsqueeze_to_rank_6_and_squeeze_back(tmp_path):
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes"], ["x6"]),
        helper.make_node("Transpose", ["x6"], ["t6"], perm=[0, 2, 1, 3, 5, 4]),
        helper.make_node("Squeeze", ["t6", "squeezed"], ["y"]),
    ]
    model = make_model(nodes, [_info("x", ["N", 3, 4, 2, 5])], [_info("y", ["N", 3, 4, 5, 2])],
                       [_const("axes", [1]), _const("squeezed", [2])])
    _check(model, tmp_path, [(1, 3, 4, 2, 5), (2, 3, 4, 2, 5)])


def test_rank_6_tensor_used_by_another_op_is_refused_naming_it(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "six"], ["r6"]), helper.make_node("Relu", ["r6"], ["a6"]),
             helper.make_node("Reshape", ["a6", "back"], ["y"])]
    model = make_model(nodes, [_info("x", [2, 8, 12, 4])], [_info("y", [2, 8, 12, 4])],
                       [_const("six", [2, 2, 4, 3, 4, 4]), _const("back", [2, 8, 12, 4])])
    with pytest.raises(UnsupportedModelError, match=r"'r6' is a rank-6 tensor .*not Relu"):
        save(model, tmp_path / "m.mlpackage")
    assert not (tmp_path / "m.mlpackage").exists()


def test_rank_6_graph_output_is_refused(tmp_path):
    nodes = [helper.make_node("Reshape", ["x", "six"], ["y"])]
    model = make_model(nodes, [_info("x", [2, 8, 12, 4])], [_info("y", [2, 2, 4, 3, 4, 4])],
                       [_const("six", [2, 2, 4, 3, 4, 4])])
    with pytest.raises(UnsupportedModelError, match="graph output 'y' has rank 6"):
        save(model, tmp_path / "m.mlpackage")


# ------------------------------------------------------------------------------ run-time padding


def _pad_to_windows_graph(pads_from):
    """x (N, S, 4) padded at the end of axis 1 by an amount computed from S."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], start=1, end=2),
        *pads_from,
        helper.make_node("Concat", ["zeros2", "amount", "zero1"], ["ends"], axis=0),
        helper.make_node("Concat", ["zeros3", "ends"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads", "fill"], ["y"]),
    ]
    inits = [_const("zero1", [0]), _const("zeros2", [0]), _const("zeros3", [0, 0, 0]), _const("three", [3]),
             _const("four", [4]), _const("fill", 0.5, np.float32)]
    return make_model(nodes, [_info("x", ["N", "S", 4])], [_info("y", ["N", None, 4])], inits)


def test_pad_up_to_whole_windows_by_a_run_time_amount(tmp_path):
    """torchvision's Swin: pad = 4 * ((S + 3) // 4) - S, known to be >= 0 for every S."""
    model = _pad_to_windows_graph([
        helper.make_node("Add", ["shape", "three"], ["up"]),
        helper.make_node("Div", ["up", "four"], ["count"]),
        helper.make_node("Mul", ["count", "four"], ["padded"]),
        helper.make_node("Sub", ["padded", "shape"], ["amount"]),
    ])
    _check(model, tmp_path, [(1, 5, 4), (3, 8, 4), (2, 1, 4)])


def test_pad_by_an_amount_that_may_be_negative_is_refused(tmp_path):
    model = _pad_to_windows_graph([helper.make_node("Sub", ["shape", "four"], ["amount"])])
    with pytest.raises(UnsupportedModelError, match="must be known to be >= 0"):
        save(model, tmp_path / "m.mlpackage")


# ------------------------------------------------------------------------------ Gather to rank 6


def _unfold_graph(index_input: bool):
    """torch.onnx's im2col for nn.Unfold((3, 1)) on (N, 4, 6, 1): two Gathers, the second of rank 6,
    a Transpose and a Reshape to (N, 4·3, 6). The row indices are a constant or a graph input."""
    rows = (np.arange(3)[:, None] + np.arange(6)[None, :]).astype(np.int64)  # (kernel, positions), padded by 1
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"]),
        helper.make_node("Gather", ["padded", "rows"], ["g5"], axis=2),  # (N, 4, 3, 6, 1)
        helper.make_node("Gather", ["g5", "cols"], ["g6"], axis=4),  # (N, 4, 3, 6, 1, 1)
        helper.make_node("Transpose", ["g6"], ["t6"], perm=[0, 1, 2, 4, 3, 5]),
        helper.make_node("Reshape", ["t6", "target"], ["y"]),
    ]
    inits = [_const("pads", [0, 0, 1, 0, 0, 0, 1, 0]), _const("cols", [[0]]), _const("target", [0, 12, -1])]
    inputs = [_info("x", ["N", 4, 6, 1])]
    if index_input:
        inputs.append(_info("rows", [3, 6], TensorProto.INT64))
    else:
        inits.append(_const("rows", rows))
    return make_model(nodes, inputs, [_info("y", ["N", 12, 6])], inits), rows


@pytest.mark.parametrize("index_input", [False, True], ids=["constant-indices", "indices-at-run-time"])
def test_gather_to_rank_6_then_transpose_and_reshape_back(tmp_path, index_input):
    model, rows = _unfold_graph(index_input)
    path = save(model, tmp_path / "m.mlpackage")
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        feeds = {"x": rng.standard_normal((batch, 4, 6, 1)).astype(np.float32)}
        if index_input:
            feeds["rows"] = rows
        ours, reference = interpret(path, feeds), ort_run(model, feeds)
        assert ours["y"].shape == reference["y"].shape == (batch, 12, 6)
        np.testing.assert_allclose(ours["y"], reference["y"], rtol=1e-6, atol=1e-6)
