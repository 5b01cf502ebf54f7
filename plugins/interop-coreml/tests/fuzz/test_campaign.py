"""The campaign runner: chosen trials rerun alone, and the summary says which trials had which signature."""

from __future__ import annotations

import json
from pathlib import Path

from interop_coreml.fuzz.campaign import Summary, _record, _write_summary, run_campaign


def test_only_the_chosen_trials_run_and_they_are_the_seeds_graphs(tmp_path: Path) -> None:
    summary = run_campaign(5, 1000, 1, tmp_path, ops=["Relu", "Add"], only=[7, 3, 7])
    document = json.loads((tmp_path / "summary.json").read_text())
    assert summary.graphs == 2 and document["done"] == 2 and document["trials"] == 2
    assert summary.statuses["ok"] == 2, summary.line()


def test_the_summary_lists_the_trials_of_each_signature(tmp_path: Path) -> None:
    summary = Summary()
    for trial in (12, 4):
        _record({"trial": trial, "seed": 1, "status": "mismatch", "kind": "value",
                 "signature": "mismatch[value] Floor"}, tmp_path, summary)
    _write_summary(tmp_path, 0, 20, summary)
    document = json.loads((tmp_path / "summary.json").read_text())
    assert document["signatures"] == [{"signature": "mismatch[value] Floor", "count": 2, "explained": 0,
                                       "trials": [4, 12], "folder": "01-mismatch-value-Floor"}]


def test_the_summary_lists_the_first_trials_of_each_reason_a_graph_was_not_compared(tmp_path: Path) -> None:
    from interop_coreml.fuzz.campaign import REASON_TRIALS

    summary = Summary()
    for trial in range(REASON_TRIALS + 5, 0, -1):
        _record({"trial": trial, "seed": 1, "status": "refused", "kind": "",
                 "reason": "Dropout node '_' cannot be converted"}, tmp_path, summary)
    _write_summary(tmp_path, 0, 30, summary)
    (entry,) = json.loads((tmp_path / "summary.json").read_text())["not_compared"]
    assert entry["reason"] == "refused: Dropout node '_' cannot be converted"
    assert entry["count"] == REASON_TRIALS + 5
    assert entry["trials"] == list(range(6, REASON_TRIALS + 6))  # the first recorded, in order


def _save_repro(folder: Path, model, feeds: dict) -> Path:
    import numpy as np
    import onnx

    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "min.onnx"))
    np.savez(folder / "min_inputs.npz", **feeds)
    return folder


def _model(nodes, inputs, outputs, initializers=()):
    from onnx import helper

    graph = helper.make_graph(nodes, "repro", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_judge_rejudges_saved_repros_and_its_exit_status_says_whether_any_still_fails(tmp_path: Path, capsys) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from interop_coreml.fuzz.__main__ import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3])
    relu = _model([helper.make_node("Relu", ["x"], ["y"])], [x],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3])])
    feeds = {"x": np.array([[[-1.0, 0.5, 2.0]]], np.float32)}
    _save_repro(tmp_path / "campaign" / "01-ok-Relu", relu, feeds)
    # kernel 1 < stride 2 with SAME_UPPER: onnxruntime's output is shorter than the spec's 3 * 2
    weight = numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "w")
    convtranspose = _model([helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2], auto_pad="SAME_UPPER")],
                           [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    _save_repro(tmp_path / "campaign" / "02-convtranspose", convtranspose, feeds)
    assert main(["--judge", str(tmp_path / "campaign")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("01-ok-Relu: ok")
    assert "02-convtranspose: mismatch[shape] (explained: ort-convtranspose-same-negative-pad)" in lines[1]
    assert lines[-1] == "2 repro folders, 0 still failing unexplained"

    # a folder whose graph cannot be read is reported by name and fails the run; no repro folder is exit 2
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "min.onnx").write_bytes(b"not a model")
    np.savez(tmp_path / "broken" / "min_inputs.npz", x=feeds["x"])
    assert main(["--judge", str(tmp_path / "broken")]) == 1
    assert "broken: unreadable" in capsys.readouterr().out
    assert main(["--judge", str(tmp_path / "nothing-here")]) == 2
    assert "is neither a repro folder" in capsys.readouterr().err
