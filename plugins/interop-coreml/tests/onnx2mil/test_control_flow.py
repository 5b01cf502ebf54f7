"""ONNX Loop → MIL while_loop: the translated program against onnxruntime on the same graph.

Mirrors ops/control_flow.py: the for, while and for-with-condition forms, loop-carried
values (changing, passed through unchanged, and growing in shape), scan outputs (static,
batch-sized, bool, cut short by the condition, with a trip count computed at run time),
bodies reading outer values (through an Identity the pre-pass bypasses), nested loops, and
the refusals. The ONNX node cases are run by the op-coverage harness.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from interop_coreml import op_coverage
from interop_coreml.onnx2mil.errors import UnsupportedModelError

from .conftest import save

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "loop", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _const(name, value):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value)))


def _accumulating_body(with_scan=True):
    """acc <- 0.5 * acc + x[i] (x read from the outer graph); scans acc and whether it is positive."""
    nodes = [
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Gather", ["x_outer", "i"], ["row"], axis=1),  # x: [N, T, 3] -> row [N, 3]
        _const("half", np.float32(0.5)),
        helper.make_node("Mul", ["acc_in", "half"], ["scaled"]),
        helper.make_node("Add", ["scaled", "row"], ["acc_out"]),
    ]
    outputs = [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("acc_out", F, None)]
    if with_scan:
        nodes += [helper.make_node("Identity", ["acc_out"], ["scan_acc"]), _const("zero", np.float32(0)),
                  helper.make_node("Greater", ["acc_out", "zero"], ["scan_positive"])]
        outputs += [helper.make_tensor_value_info("scan_acc", F, None),
                    helper.make_tensor_value_info("scan_positive", B, None)]
    inputs = [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
              helper.make_tensor_value_info("acc_in", F, None)]
    return helper.make_graph(nodes, "body", inputs, outputs)


def _feeds(batch, steps=4, seed=0):
    return {"x": np.random.default_rng(seed).normal(size=(batch, steps, 3)).astype(np.float32)}


def _check(tmp_path, model, feeds_list, name="m"):
    from .conftest import assert_close, interpret, ort_run

    path = save(model, tmp_path / f"{name}.mlpackage")
    for feeds in feeds_list:
        expected = ort_run(model, feeds)
        got = interpret(path, feeds)
        for key, value in expected.items():
            if value.dtype == np.bool_:
                np.testing.assert_array_equal(got[key].astype(bool), value, err_msg=key)
        assert_close(got, {k: v for k, v in expected.items() if v.dtype != np.bool_})
    return path


def _while_loop_ops(path) -> list:
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    block = next(iter(spec.mlProgram.functions["main"].block_specializations.values()))
    return [op for op in block.operations if op.type == "while_loop"]


def _loop_over_x(extra_inputs=(), initializers=(), rows=4):
    """Loop(M, no condition, start = x's mean over time) with the accumulating body, x: [N, 4, 3]."""
    return _model(
        [helper.make_node("Identity", ["x"], ["x_outer"]),
         helper.make_node("ReduceMean", ["x"], ["start"], axes=[1], keepdims=0),
         helper.make_node("Loop", ["M", "", "start"], ["acc", "stacked", "positive"], body=_accumulating_body())],
        [helper.make_tensor_value_info("x", F, ["N", 4, 3]), *extra_inputs],
        [helper.make_tensor_value_info("acc", F, ["N", 3]), helper.make_tensor_value_info("stacked", F, [rows, "N", 3]),
         helper.make_tensor_value_info("positive", B, [rows, "N", 3])],
        initializers)


def test_for_loop_with_scan_outputs_of_the_dynamic_batch(tmp_path):
    """M from the graph, no condition; the body reads x from the outer graph (through a bypassed Identity)."""
    model = _loop_over_x(initializers=[numpy_helper.from_array(np.array(4, dtype=np.int64), "M")])
    path = _check(tmp_path, model, [_feeds(1), _feeds(5, seed=1)])
    assert len(_while_loop_ops(path)) == 1


@pytest.mark.parametrize("bounds", [(0, 1), (-1, 2**62)], ids=["first", "last"])
def test_first_or_last_scanned_step_squeezed_reads_back(tmp_path, bounds):
    """stacked[0] / stacked[-1] of a scan output over a dynamic T (a Keras SimpleRNN after a GRU, through
    tf2onnx): the translator knows the slice keeps one step, a reader of the saved program does not, and
    its squeeze kept the axis, so coremltools' loader refused the package ("Mismatch between var types")."""
    start, end = bounds
    model = _model(
        [helper.make_node("Identity", ["x"], ["x_outer"]),
         helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Gather", ["shape", "one"], ["M"], axis=0),
         helper.make_node("ReduceMean", ["x"], ["start"], axes=[1], keepdims=0),
         helper.make_node("Loop", ["M", "", "start"], ["acc", "stacked", "positive"], body=_accumulating_body()),
         helper.make_node("Slice", ["stacked", "begin", "end", "axis0"], ["step"]),
         helper.make_node("Squeeze", ["step", "axis0"], ["y"])],
        [helper.make_tensor_value_info("x", F, ["N", "T", 3])],
        [helper.make_tensor_value_info("y", F, ["N", 3])],
        [numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
         numpy_helper.from_array(np.array([start], dtype=np.int64), "begin"),
         numpy_helper.from_array(np.array([end], dtype=np.int64), "end"),
         numpy_helper.from_array(np.array([0], dtype=np.int64), "axis0")])
    _check(tmp_path, model, [_feeds(1, steps=2), _feeds(3, steps=5, seed=1)])


def test_condition_ends_the_loop_early_and_scans_keep_the_rows_that_ran(tmp_path):
    """M and a condition: the body stops once the accumulator's sum passes a threshold read from an input."""
    body = _accumulating_body()
    body.node.remove(body.node[0])
    body.node.extend([helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
                      helper.make_node("Less", ["total", "limit"], ["cond_out"])])
    x = helper.make_tensor_value_info("x", F, [2, 6, 3])
    model = _model(
        [helper.make_node("Identity", ["x"], ["x_outer"]),
         helper.make_node("Loop", ["M", "go", "start"], ["acc", "stacked", "positive"], body=body)],
        [x, helper.make_tensor_value_info("limit", F, []), helper.make_tensor_value_info("go", B, [])],
        [helper.make_tensor_value_info("acc", F, [2, 3]), helper.make_tensor_value_info("stacked", F, ["R", 2, 3]),
         helper.make_tensor_value_info("positive", B, ["R", 2, 3])],
        [numpy_helper.from_array(np.array(6, dtype=np.int64), "M"),
         numpy_helper.from_array(np.zeros((2, 3), np.float32), "start")])
    x_value = np.abs(np.random.default_rng(2).normal(size=(2, 6, 3))).astype(np.float32)
    feeds = [{"x": x_value, "limit": np.array(limit, np.float32), "go": np.array(True)} for limit in (1.0, 4.0, 1e9)]
    path = _check(tmp_path, model, feeds)
    from .conftest import interpret

    rows = [interpret(path, f)["stacked"].shape[0] for f in feeds]
    assert rows[0] < rows[1] < rows[2] == 6  # the condition decided how many iterations ran
    # A condition false on entry: no iteration, the initial value comes back and the scans are empty.
    ours = interpret(path, {**feeds[0], "go": np.array(False)})
    np.testing.assert_array_equal(ours["acc"], np.zeros((2, 3), np.float32))


def test_while_loop_without_trip_count(tmp_path):
    """No M: a Collatz-like count until the value reaches 1, with an int and a float carried value."""
    body = helper.make_graph(
        [_const("two", np.int64(2)), _const("one", np.int64(1)), _const("three", np.int64(3)),
         helper.make_node("Mod", ["n_in", "two"], ["parity"]),
         helper.make_node("Div", ["n_in", "two"], ["halved"]),
         helper.make_node("Mul", ["n_in", "three"], ["tripled"]),
         helper.make_node("Add", ["tripled", "one"], ["grown"]),
         helper.make_node("Equal", ["parity", "one"], ["odd"]),
         helper.make_node("Where", ["odd", "grown", "halved"], ["n_out"]),
         helper.make_node("Greater", ["n_out", "one"], ["cond_out"]),
         helper.make_node("Cast", ["n_out"], ["n_float"], to=F),
         helper.make_node("Add", ["total_in", "n_float"], ["total_out"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("n_in", I64, []), helper.make_tensor_value_info("total_in", F, [])],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("n_out", I64, []),
         helper.make_tensor_value_info("total_out", F, [])])
    model = _model(
        [helper.make_node("Greater", ["n", "one_outer"], ["go"]),
         helper.make_node("Loop", ["", "go", "n", "zero_total"], ["last", "total"], body=body)],
        [helper.make_tensor_value_info("n", I64, [])],
        [helper.make_tensor_value_info("last", I64, []), helper.make_tensor_value_info("total", F, [])],
        [numpy_helper.from_array(np.array(1, np.int64), "one_outer"),
         numpy_helper.from_array(np.array(0, np.float32), "zero_total")])
    _check(tmp_path, model, [{"n": np.array(n, np.int64)} for n in (1, 6, 27)])


def test_trip_count_computed_at_run_time(tmp_path):
    """M = the dynamic sequence length (Shape → Gather), as tf2onnx writes for a Keras RNN."""
    x = helper.make_tensor_value_info("x", F, ["N", "T", 3])
    model = _model(
        [helper.make_node("Identity", ["x"], ["x_outer"]),
         helper.make_node("ReduceMean", ["x"], ["start"], axes=[1], keepdims=0),
         helper.make_node("Shape", ["x"], ["shape"]),
         helper.make_node("Gather", ["shape", "one"], ["M"], axis=0),
         helper.make_node("Loop", ["M", "", "start"], ["acc", "stacked", "positive"], body=_accumulating_body())],
        [x], [helper.make_tensor_value_info("acc", F, ["N", 3]), helper.make_tensor_value_info("stacked", F, ["T", "N", 3]),
              helper.make_tensor_value_info("positive", B, ["T", "N", 3])],
        [numpy_helper.from_array(np.array(1, np.int64), "one")])
    _check(tmp_path, model, [_feeds(2, steps=3), _feeds(3, steps=7, seed=4)])


def test_trip_count_fed_as_an_input(tmp_path):
    """M from the caller: 0 and a negative M run no iteration (empty scans), a larger one every step of x."""
    model = _loop_over_x([helper.make_tensor_value_info("M", I64, [])], rows="R")
    feeds = [{**_feeds(2, seed=m + 5), "M": np.array(m, np.int64)} for m in (4, 2, 0, -3)]
    path = _check(tmp_path, model, feeds[:2])
    from .conftest import interpret, ort_run

    assert [interpret(path, f)["stacked"].shape for f in feeds] == [(4, 2, 3), (2, 2, 3), (0, 2, 3), (0, 2, 3)]
    for empty in feeds[2:]:
        # onnxruntime gives an empty scan the shape (0,): it never saw an iteration's value.
        np.testing.assert_array_equal(interpret(path, empty)["acc"], ort_run(model, empty)["acc"])


def test_scan_whose_row_shape_only_the_first_iteration_tells(tmp_path):
    """A [1, 3] start broadcast to [N, 3] by the body: MIL relaxes the carried value's dim to a new symbol,
    so no value before the loop has the rows' batch; the buffer takes its shape in the first iteration."""
    x = helper.make_tensor_value_info("x", F, ["N", 4, 3])
    start = numpy_helper.from_array(np.full((1, 3), 0.25, np.float32), "start")
    model = _model(
        [helper.make_node("Identity", ["x"], ["x_outer"]),
         helper.make_node("Loop", ["M", "", "start"], ["acc", "stacked", "positive"], body=_accumulating_body())],
        [x, helper.make_tensor_value_info("M", I64, [])],
        [helper.make_tensor_value_info("acc", F, ["N", 3]), helper.make_tensor_value_info("stacked", F, ["R", "N", 3]),
         helper.make_tensor_value_info("positive", B, ["R", "N", 3])], [start])
    path = _check(tmp_path, model, [{**_feeds(1), "M": np.array(4, np.int64)},
                                    {**_feeds(3, seed=2), "M": np.array(3, np.int64)}])
    ops = [op.type for op in _while_loop_ops(path)[0].blocks[1].operations]
    assert "cond" in ops


def test_weights_passed_through_the_loop_stay_constants(tmp_path):
    """tf2onnx threads a Keras cell's kernel through the loop unchanged: it is not a loop variable."""
    weight = np.random.default_rng(5).normal(size=(3, 3)).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Gather", ["x", "i"], ["row"], axis=1),
         helper.make_node("MatMul", ["h_in", "w_in"], ["recurrent"]),
         helper.make_node("Add", ["recurrent", "row"], ["pre"]),
         helper.make_node("Tanh", ["pre"], ["h_out"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("h_in", F, None), helper.make_tensor_value_info("w_in", F, [3, 3])],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("h_out", F, None),
         helper.make_tensor_value_info("w_in", F, [3, 3])])
    model = _model(
        [helper.make_node("ReduceMax", ["x"], ["h0"], axes=[1], keepdims=0),
         helper.make_node("Loop", ["M", "go", "h0", "w"], ["h", "w_final"], body=body)],
        [helper.make_tensor_value_info("x", F, ["N", 4, 3])],
        [helper.make_tensor_value_info("h", F, ["N", 3]), helper.make_tensor_value_info("w_final", F, [3, 3])],
        [numpy_helper.from_array(np.array(4, np.int64), "M"), numpy_helper.from_array(np.array(True), "go"),
         numpy_helper.from_array(weight, "w")])
    path = _check(tmp_path, model, [_feeds(3)])
    (loop,) = _while_loop_ops(path)
    # iteration number, condition and h: the weight is read as a constant, not carried
    assert len(loop.inputs["loop_vars"].arguments) == 3


def test_nested_loops_read_every_enclosing_graph(tmp_path):
    """An inner Loop whose body reads the outer body's iteration number and the graph's input."""
    inner = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("Cast", ["i_outer"], ["i_float"], to=F),
         helper.make_node("Cast", ["j"], ["j_float"], to=F),
         helper.make_node("Mul", ["i_float", "j_float"], ["product"]),
         helper.make_node("Mul", ["product", "x"], ["term"]),
         helper.make_node("Add", ["s_in", "term"], ["s_out"])],
        "inner",
        [helper.make_tensor_value_info("j", I64, []), helper.make_tensor_value_info("c_in", B, []),
         helper.make_tensor_value_info("s_in", F, ["N", 2])],
        [helper.make_tensor_value_info("c_out", B, []), helper.make_tensor_value_info("s_out", F, ["N", 2])])
    outer = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Loop", ["three", "", "s_in"], ["s_out"], body=inner),
         helper.make_node("Identity", ["s_out"], ["scan_s"])],
        "outer",
        [helper.make_tensor_value_info("i_outer", I64, []), helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("s_in", F, ["N", 2])],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("s_out", F, ["N", 2]),
         helper.make_tensor_value_info("scan_s", F, ["N", 2])])
    model = _model(
        [helper.make_node("Loop", ["M", "", "x"], ["s", "history"], body=outer)],
        [helper.make_tensor_value_info("x", F, ["N", 2])],
        [helper.make_tensor_value_info("s", F, ["N", 2]), helper.make_tensor_value_info("history", F, [3, "N", 2])],
        [numpy_helper.from_array(np.array(3, np.int64), "M"), numpy_helper.from_array(np.array(3, np.int64), "three")])
    _check(tmp_path, model, [{"x": np.random.default_rng(6).normal(size=(n, 2)).astype(np.float32)} for n in (1, 4)])


def _refusal(model, tmp_path) -> str:
    with pytest.raises(UnsupportedModelError) as error:
        save(model, tmp_path / "refused.mlpackage")
    assert not (tmp_path / "refused.mlpackage").exists()
    return error.value.message


def test_a_loop_that_never_ends_is_refused(tmp_path):
    body = _accumulating_body(with_scan=False)
    model = _model([helper.make_node("Identity", ["x"], ["x_outer"]),
                    helper.make_node("Loop", ["", "", "start"], ["acc"], body=body)],
                   [helper.make_tensor_value_info("x", F, [1, 4, 3])], [helper.make_tensor_value_info("acc", F, [1, 3])],
                   [numpy_helper.from_array(np.zeros((1, 3), np.float32), "start")])
    assert "no condition and no trip count M" in _refusal(model, tmp_path)


def test_scan_outputs_without_trip_count_are_refused(tmp_path):
    model = _model([helper.make_node("Identity", ["x"], ["x_outer"]),
                    helper.make_node("Loop", ["", "go", "start"], ["acc", "stacked", "positive"],
                                     body=_accumulating_body())],
                   [helper.make_tensor_value_info("x", F, [1, 4, 3]), helper.make_tensor_value_info("go", B, [])],
                   [helper.make_tensor_value_info("acc", F, [1, 3]), helper.make_tensor_value_info("stacked", F, ["R", 1, 3]),
                    helper.make_tensor_value_info("positive", B, ["R", 1, 3])],
                   [numpy_helper.from_array(np.zeros((1, 3), np.float32), "start")])
    assert "2 scan output(s) without a trip count M" in _refusal(model, tmp_path)


def test_scan_output_growing_every_iteration_is_refused(tmp_path):
    """The carried value grows by a row each iteration and is scanned: no one per-iteration shape."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Concat", ["v_in", "row"], ["v_out"], axis=0),
         helper.make_node("Identity", ["v_out"], ["scan_v"])],
        "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("v_in", F, None)],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("v_out", F, None),
         helper.make_tensor_value_info("scan_v", F, None)])
    model = _model([helper.make_node("Loop", ["M", "", "row"], ["v", "stacked"], body=body)],
                   [helper.make_tensor_value_info("row", F, [1, 2])],
                   [helper.make_tensor_value_info("v", F, ["V", 2]), helper.make_tensor_value_info("stacked", F, [3, "V", 2])],
                   [numpy_helper.from_array(np.array(3, np.int64), "M")])
    message = _refusal(model, tmp_path)
    assert "scan output 'stacked' has a per-iteration dim" in message and "changes shape" in message
    assert "Loop node" in message


def test_growing_carried_value_without_scan_converts(tmp_path):
    """The same growth as a loop-carried value only: MIL relaxes its dim, the result matches."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Concat", ["v_in", "row"], ["v_out"], axis=0)],
        "body",
        [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in", B, []),
         helper.make_tensor_value_info("v_in", F, None)],
        [helper.make_tensor_value_info("cond_out", B, []), helper.make_tensor_value_info("v_out", F, None)])
    model = _model([helper.make_node("Loop", ["M", "", "row"], ["v"], body=body)],
                   [helper.make_tensor_value_info("row", F, [1, 2])], [helper.make_tensor_value_info("v", F, ["V", 2])],
                   [numpy_helper.from_array(np.array(3, np.int64), "M")])
    _check(tmp_path, model, [{"row": np.array([[1.0, -2.0]], np.float32)}])


def test_unsupported_ops_inside_a_body_are_listed_before_building(tmp_path):
    body = _accumulating_body(with_scan=False)
    body.node.append(helper.make_node("Det", ["acc_out"], ["unused"]))
    body.node.append(helper.make_node("Unique", ["acc_out"], ["unused2"]))
    model = _model([helper.make_node("Identity", ["x"], ["x_outer"]),
                    helper.make_node("Loop", ["M", "", "start"], ["acc"], body=body)],
                   [helper.make_tensor_value_info("x", F, [1, 4, 3])], [helper.make_tensor_value_info("acc", F, [1, 3])],
                   [numpy_helper.from_array(np.array(4, np.int64), "M"),
                    numpy_helper.from_array(np.zeros((1, 3), np.float32), "start")])
    message = _refusal(model, tmp_path)
    assert "2 unsupported op type(s)" in message and "Det x1" in message and "Unique x1" in message


def test_prepass_keeps_what_only_a_body_reads():
    """A value only a Loop body reads keeps its producer, a bypassed Identity is renamed in the body."""
    from interop_coreml.onnx2mil.prepass import prepare

    model = _model(
        [helper.make_node("Identity", ["x"], ["x_outer"]),
         helper.make_node("ReduceMean", ["x"], ["start"], axes=[1], keepdims=0),
         helper.make_node("Loop", ["M", "", "start"], ["acc"], body=_accumulating_body(with_scan=False))],
        [helper.make_tensor_value_info("x", F, ["N", 4, 3])], [helper.make_tensor_value_info("acc", F, ["N", 3])],
        [numpy_helper.from_array(np.array(4, np.int64), "M")])
    prepared = prepare(model)
    loop = prepared.model.graph.node[-1]
    body_reads = [name for node in loop.attribute[0].g.node for name in node.input]
    assert "x" in body_reads and "x_outer" not in body_reads
    assert [n.op_type for n in prepared.model.graph.node] == ["ReduceMean", "Loop"]


@pytest.mark.parametrize("case_name", ["test_loop11", "test_loop13_seq", "test_loop16_seq_none"])
def test_onnx_node_cases(case_name, tmp_path):
    (case,) = [c for c in op_coverage.collect_cases({"Loop"}) if c.name == case_name]
    result = op_coverage.run_case(case, tmp_path)
    if case_name == "test_loop11":
        assert result.status == op_coverage.PASS, result.reason
    else:  # sequences and optionals: Core ML has no such values
        assert result.status == op_coverage.NOT_CONVERTIBLE, result.reason
        assert "Sequence" in result.reason and "non-tensor graph input/output" in result.reason
