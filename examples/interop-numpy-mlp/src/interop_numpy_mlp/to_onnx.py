"""numpy-mlp -> ONNX, written node by node with ``onnx.helper`` (batch dimension dynamic)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


from interop_numpy_mlp.model import load_mlp


def convert(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = load_mlp(src)
    opset = int(options.get("opset") or 13)
    inits = [numpy_helper.from_array(model.mean, "mean"), numpy_helper.from_array(model.std, "std")]
    nodes = [helper.make_node("Sub", [model.input_name, "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "std"], ["h0"])]
    last = len(model.weights) - 1
    for i, (w, b, act) in enumerate(zip(model.weights, model.biases, model.activations)):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = model.output_name if i == last and act is None else f"z{i + 1}"
        nodes.append(helper.make_node("Gemm", [f"h{i}", f"w{i}", f"b{i}"], [out]))
        if act == "relu":
            relu_out = model.output_name if i == last else f"h{i + 1}"
            nodes.append(helper.make_node("Relu", [out], [relu_out]))
        elif i != last:
            nodes.append(helper.make_node("Identity", [out], [f"h{i + 1}"]))
    n_in, n_out = int(model.weights[0].shape[0]), int(model.weights[-1].shape[1])
    graph = helper.make_graph(
        nodes, "numpy_mlp",
        [helper.make_tensor_value_info(model.input_name, TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(model.output_name, TensorProto.FLOAT, ["batch", n_out])],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="interop-numpy-mlp"
    )
    onnx_model.ir_version = 8  # readable by every runtime of the last years
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(dst))


__all__ = ["convert"]
