"""The random-graph generator: valid ONNX, deterministic per seed, every verified op covered."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from interop_coreml.fuzz.generator import (
    FLOAT32_ONLY,
    MAX_OPSET,
    MIN_OPSET,
    NOT_GENERATED,
    OPS,
    generate,
    usable_ops,
)

COVERAGE_TABLE = Path(__file__).resolve().parents[4] / "docs" / "coreml-op-coverage.md"


def _verified_ops() -> set[str]:
    rows = re.findall(r"^\| (\w+) \| [\d, ]+ \| \d+ / \d+ \| (yes|no) \|$", COVERAGE_TABLE.read_text(), re.M)
    return {op for op, verified in rows if verified == "yes"}


def test_every_graph_of_seeds_0_to_200_passes_the_full_checker() -> None:
    opsets = set()
    for seed in range(201):
        case = generate(seed)
        onnx.checker.check_model(case.model, full_check=True)
        onnx.shape_inference.infer_shapes(case.model, check_type=True, strict_mode=True)
        opset = case.model.opset_import[0].version
        assert MIN_OPSET <= opset <= MAX_OPSET
        opsets.add(opset)
        assert set(case.feeds) == {i.name for i in case.model.graph.input}
        symbols: dict[str, int] = {}
        for value in case.model.graph.input:
            dims = value.type.tensor_type.shape.dim
            feed = case.feeds[value.name]
            assert isinstance(feed, np.ndarray) and feed.ndim == len(dims)
            for dim, size in zip(dims, feed.shape):
                if dim.HasField("dim_value"):
                    assert dim.dim_value == size
                else:  # one symbol, one length: onnxruntime rejects feeds that break the promise
                    assert symbols.setdefault(dim.dim_param, size) == size, (seed, dim.dim_param)
    assert opsets == set(range(MIN_OPSET, MAX_OPSET + 1))


def test_the_same_seed_gives_the_same_graph_and_inputs() -> None:
    for seed in (0, 7, 123):
        first, second = generate(seed), generate(seed)
        assert first.model.SerializeToString() == second.model.SerializeToString()
        assert first.feeds.keys() == second.feeds.keys()
        for name in first.feeds:
            np.testing.assert_array_equal(first.feeds[name], second.feeds[name])
    assert generate(1).model.SerializeToString() != generate(2).model.SerializeToString()


def test_some_graphs_have_dynamic_dims_and_broadcasting() -> None:
    dynamic = broadcast = 0
    for seed in range(100):
        case = generate(seed)
        dynamic += case.dynamic is not None
        ranks = {len(i.type.tensor_type.shape.dim) for i in case.model.graph.input}
        ranks |= {len(init.dims) for init in case.model.graph.initializer}
        broadcast += len(ranks) > 1
    assert dynamic >= 10 and broadcast >= 30


def test_every_op_the_coverage_table_verifies_has_a_generator_or_a_reason() -> None:
    verified = _verified_ops()
    assert len(verified) > 100  # the table parsed
    assert verified - set(OPS) - set(NOT_GENERATED) == set()


@pytest.mark.parametrize("op_type", sorted(OPS))
def test_each_generator_makes_its_op(op_type: str) -> None:
    made = 0
    for seed in range(6):
        case = generate(seed, ops=[op_type], max_nodes=2)
        made += any(node.op_type == op_type for node in case.model.graph.node)
        assert any(usable_ops(o, [op_type]) for o in range(MIN_OPSET, MAX_OPSET + 1))
    assert made >= 3, f"{op_type} was generated in only {made} of 6 graphs"


def test_a_quarter_of_the_graphs_are_float16_throughout() -> None:
    halves = edges = 0
    for seed in range(120):
        case = generate(seed)
        graph = case.model.graph
        floats = {i.data_type for i in graph.initializer if i.name not in _resize_scales(case.model)}
        floats |= {v.type.tensor_type.elem_type for v in graph.input}
        floats &= {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}
        if case.half:
            # float32 only at the edges: an input that only Casts read, an output a Cast writes
            for value in graph.input:
                if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                    readers = [n for n in graph.node if value.name in n.input]
                    assert readers and all(n.op_type == "Cast" for n in readers), seed
                    edges += 1
            floats.discard(onnx.TensorProto.FLOAT)
        assert floats <= {onnx.TensorProto.FLOAT16 if case.half else onnx.TensorProto.FLOAT}, seed
        halves += case.half
        assert generate(seed, half=not case.half).half is not case.half
    assert 15 <= halves <= 45 and edges >= 3


def _resize_scales(model: onnx.ModelProto) -> set[str]:
    return {node.input[2] for node in model.graph.node if node.op_type == "Resize" and len(node.input) > 2}


@pytest.mark.parametrize("op_type", sorted(set(OPS) - set(FLOAT32_ONLY)))
def test_each_generator_makes_its_op_in_float16_graphs(op_type: str) -> None:
    made = sum(any(node.op_type == op_type for node in generate(seed, ops=[op_type], max_nodes=2, half=True).model.graph.node)
               for seed in range(6))
    assert made >= 3, f"{op_type} was generated in only {made} of 6 float16 graphs"


@pytest.mark.parametrize("op_type", sorted(FLOAT32_ONLY))
def test_the_float32_only_ops_are_not_valid_in_float16(op_type: str) -> None:
    assert not any(any(node.op_type == op_type for node in generate(seed, ops=[op_type], max_nodes=2,
                                                                     half=True).model.graph.node) for seed in range(3))
