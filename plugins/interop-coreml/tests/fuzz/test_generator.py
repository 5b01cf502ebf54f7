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


def _pool_model(op_type: str, size: int, attrs: dict) -> onnx.ModelProto:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op_type, ["x"], ["y"], **attrs)], "pool",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, size])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 19)])


def test_pool_output_size_is_the_length_onnxruntime_returns_where_shape_inference_keeps_a_window() -> None:
    import itertools

    from interop_coreml.fuzz.generator import pool_output_size
    from interop_coreml.fuzz.oracle import run_onnxruntime

    compared = inference_off = 0
    for op_type, size, k, s, d, auto_pad, ceil_mode, begin, end in itertools.product(
            ("MaxPool", "AveragePool"), range(1, 7), range(1, 4), range(1, 4), (1, 2),
            ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"), (0, 1), range(3), range(3)):
        if (op_type == "AveragePool" and d > 1) or (auto_pad != "NOTSET" and (begin or end)) or max(begin, end) >= k:
            continue
        if auto_pad.startswith("SAME") and (d > 1 or (-(-size // s) - 1) * s + k < size):
            continue  # onnxruntime's ort-pool-same-dilations deviation; a negative SAME padding it refuses
        attrs = {"kernel_shape": [k], "strides": [s], "ceil_mode": ceil_mode, "dilations": [d]}
        attrs.update({"pads": [begin, end]} if auto_pad == "NOTSET" else {"auto_pad": auto_pad})
        expected = pool_output_size(size, k, s, d, attrs.get("pads"), 0, auto_pad, ceil_mode)
        if expected <= 0:  # an empty pool: the generator rejects it (onnxruntime may crash on it)
            continue
        model = _pool_model(op_type, size, attrs)
        got = run_onnxruntime(model, {"x": np.ones((1, 1, size), np.float32)})["y"].shape[2]
        inferred = onnx.shape_inference.infer_shapes(model).graph.output[0].type.tensor_type.shape.dim[2].dim_value
        assert got == expected, (op_type, size, attrs)
        compared += 1
        inference_off += inferred != got
    assert compared > 1000 and inference_off > 100  # ONNX shape inference keeps ceil_mode's dropped window


def _downstream(case, names: set[str]) -> list[onnx.NodeProto]:
    names, found = set(names), []
    for node in case.model.graph.node:
        if names & set(node.input):
            names |= set(node.output)
            found.append(node)
    return found


def test_ceil_mode_pools_are_sized_as_the_spec_so_later_index_ops_fit_and_run() -> None:
    # ONNX shape inference keeps a ceil_mode window that starts past the input; the generator used
    # its length, so later Gather/Scatter indices ran out of range (fuzz seed 4, refused graphs)
    from interop_coreml.fuzz.oracle import evaluate, run_onnxruntime

    ops = ["MaxPool", "AveragePool", "Gather", "GatherElements", "GatherND", "ScatterElements", "ScatterND",
           "Add", "Relu", "Reshape", "Concat", "Size", "Expand", "Tile"]
    index_ops = {"Gather", "GatherElements", "GatherND", "ScatterElements", "ScatterND"}
    spec_shaped = with_index_op = 0
    for seed in range(700):
        case = generate(seed, ops=ops, half=False)  # float16 Scatter reductions onnxruntime cannot run
        if not case.spec_shapes:
            continue
        spec_shaped += 1
        later = _downstream(case, set(case.spec_shapes))
        onnx.checker.check_model(case.model, full_check=True)
        try:
            got = run_onnxruntime(case.model, case.feeds)
        except Exception as error:  # noqa: BLE001 - a SAME pool needing a negative padding (refused)
            assert "padding values must be non-negative" in str(error), seed
            continue
        for value in case.model.graph.output:  # a declared length is the real one; inference's is left out
            dims = value.type.tensor_type.shape.dim
            assert [d.dim_value for d in dims if d.HasField("dim_value")] == \
                [n for d, n in zip(dims, got[value.name].shape) if d.HasField("dim_value")], (seed, value.name)
        if index_ops & {node.op_type for node in later}:
            outcome = evaluate(case.model, case.feeds)
            if outcome.status == "refused":  # only the pools' own known refusals (a dynamic spatial dim)
                assert "Pool node" in outcome.message, (seed, outcome.message)
                continue
            assert outcome.status == "ok" or outcome.explained, (seed, outcome.status, outcome.message)
            with_index_op += 1
    assert spec_shaped >= 10 and with_index_op >= 2


def test_recurrent_ops_get_sequence_lens_shorter_than_the_sequence_which_onnxruntime_zero_fills() -> None:
    from interop_coreml.fuzz.oracle import evaluate, run_onnxruntime

    short = 0
    for seed in range(120):
        case = generate(seed, ops=["LSTM", "GRU", "RNN"], max_nodes=1)
        [node] = [n for n in case.model.graph.node if n.op_type in ("LSTM", "GRU", "RNN")] or [None]
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in case.model.graph.initializer}
        if node is None or len(node.input) < 5 or node.input[4] not in inits:
            continue
        lengths = inits[node.input[4]]
        x = case.feeds.get(node.input[0])
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        if x is None or layout or lengths.min() == x.shape[0]:
            continue
        short += 1
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        del model.graph.output[:]
        model.graph.output.append(onnx.helper.make_tensor_value_info(
            node.output[0], onnx.helper.np_dtype_to_tensor_dtype(x.dtype), None))
        y = run_onnxruntime(model, case.feeds)[node.output[0]]  # [seq, dirs, batch, hidden]
        for b, n in enumerate(lengths):  # the spec: zeros past each batch entry's length
            assert not y[n:, :, b].any(), (seed, lengths.tolist())
        assert evaluate(case.model, case.feeds).status == "ok", seed
    assert short >= 5


def test_no_conv_window_is_longer_than_its_padded_input() -> None:
    # ONNX shape inference truncates (4 - 5) / 2 toward zero and gives such a Conv one output; the
    # spec's floor gives none and onnxruntime refuses it ("Invalid input shape"): 17 graphs in these
    # 400 were invalid before the generator checked the spec's length (fuzz seed 9 trial 4553)
    from interop_coreml.fuzz.oracle import run_onnxruntime

    ran = 0
    for seed in range(400):
        case = generate(seed, ops=["Conv"], half=False)
        try:
            run_onnxruntime(case.model, case.feeds)
            ran += 1
        except Exception as error:  # noqa: BLE001 - onnxruntime has no dilated SAME Conv (judged otherwise)
            assert "Dilation not supported for AutoPadType::SAME" in str(error), (seed, str(error)[-200:])
    assert ran > 300
