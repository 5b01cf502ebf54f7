"""The shrinker: a failure caused by one node shrinks to that node alone."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from interop_coreml.fuzz.shrink import prune, shrink


def _ten_node_graph() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x, y -> 10 nodes (two branches joined, one of them a Sin) -> two outputs."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Add", ["a", "y"], ["b"]),
        helper.make_node("Mul", ["b", "w"], ["c"]),
        helper.make_node("Tanh", ["c"], ["d"]),
        helper.make_node("Sin", ["d"], ["e"]),  # the culprit
        helper.make_node("Abs", ["e"], ["f"]),
        helper.make_node("Neg", ["y"], ["g"]),
        helper.make_node("Sub", ["f", "g"], ["h"]),
        helper.make_node("Exp", ["h"], ["out1"]),
        helper.make_node("Sigmoid", ["g"], ["out2"]),
    ]
    graph = helper.make_graph(
        nodes, "ten",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("out1", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("out2", TensorProto.FLOAT, [3])],
        initializer=[numpy_helper.from_array(np.full(3, 0.5, np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rng = np.random.default_rng(0)
    return model, {"x": rng.standard_normal((2, 3)).astype(np.float32),
                   "y": rng.standard_normal(3).astype(np.float32)}


def test_a_deliberately_failing_oracle_shrinks_ten_nodes_to_the_culprit() -> None:
    model, feeds = _ten_node_graph()
    onnx.checker.check_model(model, full_check=True)
    calls = []

    def fails_when_sin_is_there(candidate: onnx.ModelProto, candidate_feeds: dict) -> bool:
        calls.append(len(candidate.graph.node))
        onnx.checker.check_model(candidate, full_check=True)  # every candidate is valid ONNX
        assert set(candidate_feeds) == {i.name for i in candidate.graph.input}
        return any(node.op_type == "Sin" for node in candidate.graph.node)

    small, small_feeds = shrink(model, feeds, fails_when_sin_is_there)
    assert [node.op_type for node in small.graph.node] == ["Sin"]
    assert len(small.graph.input) == 1 and len(small.graph.output) == 1
    # The Sin's input is now a graph input carrying the value it had in the big graph, shrunk to one element.
    d = np.tanh((np.maximum(feeds["x"], 0) + feeds["y"]) * 0.5)
    value = small_feeds[small.graph.input[0].name]
    assert value.shape == (1, 1)
    np.testing.assert_allclose(value, d[:1, :1], rtol=1e-6)
    assert len(calls) < 60


def test_a_failure_that_needs_two_nodes_keeps_both() -> None:
    model, feeds = _ten_node_graph()

    def needs_neg_and_sub(candidate: onnx.ModelProto, _feeds: dict) -> bool:
        ops = [node.op_type for node in candidate.graph.node]
        return "Neg" in ops and "Sub" in ops and any(
            n.op_type == "Sub" and any(p.op_type == "Neg" and p.output[0] in n.input for p in candidate.graph.node)
            for n in candidate.graph.node)

    small, _ = shrink(model, feeds, needs_neg_and_sub)
    assert sorted(node.op_type for node in small.graph.node) == ["Neg", "Sub"]


def test_prune_drops_what_no_output_needs() -> None:
    model, feeds = _ten_node_graph()
    del model.graph.output[0]
    pruned, pruned_feeds = prune(model, feeds)
    assert [n.op_type for n in pruned.graph.node] == ["Neg", "Sigmoid"]
    assert list(pruned_feeds) == ["y"] and not pruned.graph.initializer


def test_intermediate_values_skip_a_dead_node_onnxruntime_cannot_run() -> None:
    """Fuzz float16 seed 1 trial 1931: a float16 ScatterElements with reduction 'mul' that no output
    needs. onnxruntime never runs it for the graph, but asking for every tensor made it fail, so no
    rule could be verified."""
    from interop_coreml.fuzz.shrink import intermediate_values

    h = TensorProto.FLOAT16
    graph = helper.make_graph(
        [helper.make_node("Cosh", ["x"], ["c"]),
         helper.make_node("ScatterElements", ["c", "i", "u"], ["dead"], axis=0, reduction="mul"),
         helper.make_node("Neg", ["c"], ["y"])], "t",
        [helper.make_tensor_value_info("x", h, [3]), helper.make_tensor_value_info("u", h, [1])],
        [helper.make_tensor_value_info("y", h, [3])],
        initializer=[numpy_helper.from_array(np.array([1], np.int64), "i")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    feeds = {"x": np.array([0.0, 1.0, -2.0], np.float16), "u": np.array([2.0], np.float16)}
    values = intermediate_values(model, feeds)
    assert set(values) == {"c", "y"}
    np.testing.assert_allclose(values["c"].astype(np.float64), np.cosh([0.0, 1.0, -2.0]), rtol=1e-3)
