"""Reductions and arg-reductions exported by torch.onnx, then helper-built ONNX graphs (reductions
over no axes, integer reductions) held against onnxruntime and the reference evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
import torch

from .conftest import LambdaModule, make_model, tensor_info
from .spec_check import check_graph

CASES = {
    "sum": lambda x: x.sum(dim=1),
    "mean_keepdim": lambda x: x.mean(dim=(1, 2), keepdim=True),
    "max_min": lambda x: x.amax(dim=-1) - x.amin(dim=-1),
    "prod": lambda x: (x * 0.5 + 1).prod(dim=2),
    "norms": lambda x: torch.linalg.vector_norm(x, dim=1) + x.abs().sum(dim=1),
    "logsumexp": lambda x: torch.logsumexp(x, dim=-1),
    "argmax": lambda x: x.argmax(dim=1).float(),
    "argmin_keepdim": lambda x: x.argmin(dim=-1, keepdim=True).float(),
    "variance": lambda x: x.var(dim=-1, unbiased=False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reduction_matches_onnxruntime(name, torch_check):
    model = torch_check(LambdaModule(CASES[name]), (3, 4, 5))
    assert model.graph.node


# ---------------------------------------------------------------- ONNX-built graphs

_REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


@pytest.mark.parametrize("op", _REDUCE_OPS)
@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("axes_form", ["empty-tensor", "absent"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_over_no_axes_is_the_elementwise_part(op, opset, axes_form, keepdims, tmp_path):
    """noop_with_empty_axes=1 with empty axes: ReduceSumSquare gives x², ReduceL2 sqrt(x²) (tiny x underflow), ..."""
    inputs = ["x", "axes"] if axes_form == "empty-tensor" else ["x"]
    inits = [numpy_helper.from_array(np.array([], np.int64), "axes")] if axes_form == "empty-tensor" else []
    node = helper.make_node(op, inputs, ["y"], keepdims=keepdims, noop_with_empty_axes=1)
    model = make_model([node], [tensor_info("x", ["N", 5, 2])], [tensor_info("y", None)], inits, opset)
    rng = np.random.default_rng(2)
    x = rng.uniform(0.1, 2.0, (3, 5, 2)).astype(np.float32)
    x[0, 0, :] = [1e-23, 3e-30]  # x² underflows in float32: ReduceL2 gives 0 there, not |x|
    check_graph(model, [{"x": x}], tmp_path, rtol=1e-6, atol=0)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_sum_opset13_noop_and_reduce_all(keepdims, tmp_path):
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["noop"], keepdims=keepdims, noop_with_empty_axes=1),
             helper.make_node("ReduceSum", ["x", "axes"], ["all"], keepdims=1)]
    inits = [numpy_helper.from_array(np.array([], np.int64), "axes")]
    model = make_model(nodes, [tensor_info("x", [2, 3])], [tensor_info("noop", None), tensor_info("all", None)],
                       inits, 13)
    check_graph(model, [{"x": np.arange(6, dtype=np.float32).reshape(2, 3) - 2}], tmp_path)


@pytest.mark.parametrize("op", [op for op in _REDUCE_OPS if op not in ("ReduceLogSum", "ReduceLogSumExp")])
@pytest.mark.parametrize("noop", [0, 1])
def test_integer_reductions_keep_their_dtype(op, noop, tmp_path):
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=1, noop_with_empty_axes=noop)
    inits = [numpy_helper.from_array(np.array([] if noop else [1], np.int64), "axes")]
    model = make_model([node], [tensor_info("x", [2, 3], TensorProto.INT32)],
                       [tensor_info("y", None, TensorProto.INT32)], inits, 18)
    check_graph(model, [{"x": np.array([[3, -7, 2], [5, 1, -4]], np.int32)}], tmp_path, rtol=0, atol=0)
