"""Matrix products: Linear (Gemm/MatMul), broadcasting MatMul, batched products."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class BroadcastMatMul(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 5, 3))

    def forward(self, x):
        # (N, 1, 4, 5) @ (2, 5, 3) broadcasts the leading dims.
        return x.unsqueeze(1) @ self.weight


class SelfProduct(nn.Module):
    def forward(self, x):
        return x @ x.transpose(-1, -2)


CASES = {
    "linear": (nn.Linear(6, 4), (6,)),
    "linear_3d": (nn.Linear(6, 4), (5, 6)),
    "linear_no_bias": (nn.Linear(6, 4, bias=False), (6,)),
    "broadcast_matmul": (BroadcastMatMul(), (4, 5)),
    "batched_self_product": (SelfProduct(), (4, 5)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matmul_layers_match_onnxruntime(name, torch_check):
    torch.manual_seed(0)
    module, shape = CASES[name]
    model = torch_check(module, shape)
    assert any(node.op_type in ("Gemm", "MatMul") for node in model.graph.node)


# --- Gemm built with onnx.helper: every C shape ONNX broadcasts, constant and run-time B, int32 operands

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from .conftest import assert_close, interpret, make_model, ort_run, save, tensor_info  # noqa: E402

M, K, N = 3, 5, 4
C_SHAPES = {"none": None, "scalar": [], "one": [1], "row_1d": [N], "column": [M, 1], "row": [1, N], "full": [M, N],
            "one_by_one": [1, 1]}


def _gemm_model(c_shape, b_const, trans_a, trans_b, alpha, beta, rng):
    a_shape = [K, M] if trans_a else [M, K]
    b_shape = [N, K] if trans_b else [K, N]
    inputs, inits, names = [tensor_info("a", a_shape)], [], ["a", "b"]
    if b_const:
        inits.append(onnx.numpy_helper.from_array(rng.standard_normal(b_shape).astype(np.float32), "b"))
    else:
        inputs.append(tensor_info("b", b_shape))
    if c_shape is not None:
        inits.append(onnx.numpy_helper.from_array(rng.standard_normal(c_shape).astype(np.float32), "c"))
        names.append("c")
    node = onnx.helper.make_node("Gemm", names, ["y"], alpha=alpha, beta=beta, transA=int(trans_a), transB=int(trans_b))
    return make_model([node], inputs, [tensor_info("y", [M, N])], inits, opset=13), a_shape, b_shape


@pytest.mark.parametrize("c_name", sorted(C_SHAPES))
@pytest.mark.parametrize("b_const,trans_a,trans_b", [(True, False, False), (True, True, True), (False, False, True),
                                                     (False, True, False)])
def test_gemm_broadcasts_every_c_shape(c_name, b_const, trans_a, trans_b, tmp_path):
    rng = np.random.default_rng(0)
    model, a_shape, b_shape = _gemm_model(C_SHAPES[c_name], b_const, trans_a, trans_b, 2.0, 0.5, rng)
    feeds = {"a": rng.standard_normal(a_shape).astype(np.float32)}
    if not b_const:
        feeds["b"] = rng.standard_normal(b_shape).astype(np.float32)
    assert_close(interpret(save(model, tmp_path / "gemm.mlpackage"), feeds), ort_run(model, feeds), rtol=1e-5, atol=1e-5)


def test_gemm_of_a_cast_shape_computes_in_float(tmp_path):
    """Shape(x)[-2:] → Cast(float) → Flatten → Gemm with float weights: no int32 anywhere in the result."""
    rng = np.random.default_rng(1)
    nodes = [
        onnx.helper.make_node("Shape", ["x"], ["s"], start=-2),
        onnx.helper.make_node("Cast", ["s"], ["f"], to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("Flatten", ["f"], ["a"], axis=1),
        onnx.helper.make_node("Gemm", ["a", "w", "bias"], ["y"], transB=1),
    ]
    inits = [onnx.numpy_helper.from_array(rng.standard_normal((5, 1)).astype(np.float32), "w"),
             onnx.numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "bias")]
    model = make_model(nodes, [tensor_info("x", ["N", 3, 2])], [tensor_info("y", [2, 5])], inits)
    feeds = {"x": rng.standard_normal((2, 3, 2)).astype(np.float32)}
    got = interpret(save(model, tmp_path / "gemm.mlpackage"), feeds)
    assert got["y"].dtype == np.float32
    assert_close(got, ort_run(model, feeds), rtol=1e-6, atol=1e-6)
