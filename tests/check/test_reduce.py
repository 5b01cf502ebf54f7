"""`interop reduce`: a 50+-node model whose Core ML conversion is wrong in one op shrinks to that op.

The fault is a test-only hook in the translator's op lookup (one op type converted with
a wrong attribute, or crashing); the translator itself is not changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def _model(path: Path) -> Path:
    """54 nodes: 13 residual blocks Conv -> Relu -> Add -> Mul, a Sigmoid gate, one Elu in block 8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for block in range(13):
        w = f"w{block}"
        inits.append(numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) * 0.15).astype(np.float32), w))
        nodes += [
            helper.make_node("Conv", [x, w], [f"c{block}"], name=f"conv{block}", pads=[1, 1, 1, 1]),
            helper.make_node("Elu" if block == 8 else "Relu", [f"c{block}"], [f"r{block}"],
                             name=f"{'elu' if block == 8 else 'relu'}{block}"),
            helper.make_node("Add", [x, f"r{block}"], [f"a{block}"], name=f"add{block}"),
            helper.make_node("Mul", [f"a{block}", "half"], [f"m{block}"], name=f"mul{block}"),
        ]
        if block == 3:  # a side branch: a gate computed from the block's output
            nodes += [helper.make_node("Sigmoid", [f"m{block}"], ["gate"], name="gate"),
                      helper.make_node("Mul", [f"m{block}", "gate"], ["gated"], name="gated")]
            x = "gated"
        else:
            x = f"m{block}"
    inits.append(numpy_helper.from_array(np.array(0.9, dtype=np.float32), "half"))
    graph = helper.make_graph(nodes, "blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 6, 6])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 8, 6, 6])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def wrong_elu(monkeypatch: pytest.MonkeyPatch):
    """Make the translator convert Elu with alpha 0.25 instead of the node's (a test-only hook)."""
    import onnx
    from onnx import helper

    from interop_coreml.onnx2mil import op_converters

    original = op_converters.converter_for
    mode = {"crash": False}

    def converter_with_wrong_elu(domain: str, op_type: str, opset: int):  # type: ignore[no-untyped-def]
        fn = original(domain, op_type, opset)
        if op_type != "Elu" or fn is None:
            return fn

        def wrong(ctx, node):  # type: ignore[no-untyped-def]
            if mode["crash"]:
                raise RuntimeError("injected converter bug")
            changed = onnx.NodeProto()
            changed.CopyFrom(node)
            del changed.attribute[:]
            changed.attribute.append(helper.make_attribute("alpha", 0.25))
            return fn(ctx, changed)
        return wrong

    monkeypatch.setattr(op_converters, "converter_for", converter_with_wrong_elu)
    return mode


@pytest.mark.slow
def test_a_wrong_op_in_a_54_node_model_shrinks_to_that_op(tmp_path, run_cli, wrong_elu) -> None:
    model = _model(tmp_path / "blocks.onnx")
    small = tmp_path / "small.onnx"
    code, out, err = run_cli("reduce", model, "--to", "coreml", "-o", small, "--json")
    assert code == 1, out + err
    summary = json.loads(out)
    assert summary["original_nodes"] == 54 and summary["kind"] == "mismatch"
    assert 1 <= summary["nodes"] <= 3 and any(k.startswith("Elu 'elu8'") for k in summary["kept"]), summary
    import onnx

    reduced = onnx.load(str(small))
    assert [n.op_type for n in reduced.graph.node].count("Elu") == 1 and len(reduced.graph.node) <= 3
    inputs = dict(np.load(tmp_path / "small.inputs.npz"))
    assert set(inputs) == {value.name for value in reduced.graph.input}
    # the written part reproduces the failure on its own, as the report says
    import interop

    interop.convert(small, tmp_path / "small.mlpackage")
    report = interop.check(small, [tmp_path / "small.mlpackage"], inputs=inputs, project_config=False)
    assert not report.passed


@pytest.mark.slow
def test_a_crashing_conversion_shrinks_to_the_op_that_crashes(tmp_path, run_cli, wrong_elu) -> None:
    wrong_elu["crash"] = True
    model = _model(tmp_path / "blocks.onnx")
    code, out, err = run_cli("reduce", model, "--to", "coreml", "-o", tmp_path / "small.onnx", "--json")
    summary = json.loads(out)
    assert code == summary["exit_code"] == 4 and summary["kind"] == "crash", out + err
    assert summary["nodes"] == 1 and summary["kept"][0].startswith("Elu")


def test_a_faithful_conversion_has_nothing_to_reduce(tmp_path, run_cli, linear_onnx) -> None:
    model = linear_onnx("linear.onnx")
    code, out, err = run_cli("reduce", model, "--to", "coreml", "-o", tmp_path / "small.onnx")
    assert code == 0 and "nothing to reduce" in out, err
    assert not (tmp_path / "small.onnx").exists()


def test_reduce_usage_errors(tmp_path, run_cli, linear_onnx) -> None:
    model = linear_onnx("linear.onnx")
    (tmp_path / "taken.onnx").write_bytes(b"x")
    code, _, err = run_cli("reduce", model, "--to", "coreml", "-o", tmp_path / "taken.onnx")
    assert code == 2 and "already exists" in err
    code, _, err = run_cli("reduce", model, "--to", "nosuchformat", "-o", tmp_path / "s.onnx")
    assert code == 2 and "unknown format" in err
    code, _, err = run_cli("reduce", model, "--to", "coreml", "-o", model, "--force")
    assert code == 2
