"""Every kind of check report follows the published JSON Schema (interop/schemas/check.schema.json)."""

from __future__ import annotations

import json

import interop


def test_passing_failing_golden_and_skipped_reports_follow_the_schema(
    linear_onnx, run_cli, tmp_path, valid_check_document,
) -> None:
    ref = linear_onnx("ref.onnx")
    documents = []
    code, out, _ = run_cli("check", ref, linear_onnx("copy.onnx"), "--json")
    documents.append(json.loads(out))
    code, out, _ = run_cli("check", ref, linear_onnx("bad.onnx", weight_delta=1e-3), linear_onnx("nan.onnx", nan_bias=True),
                           linear_onnx("renamed.onnx", input_name="features"), "--json", "--locate",
                           "--save-failures", tmp_path / "fails")
    assert code == 1
    documents.append(json.loads(out))
    golden = tmp_path / "golden.npz"
    run_cli("check", ref, "--save-golden", golden)
    code, out, _ = run_cli("check", "--golden", golden, linear_onnx("copy2.onnx"), "--json",
                           "--check-error-stat", "y=p99")
    documents.append(json.loads(out))
    mlpackage = tmp_path / "linear.mlpackage"
    interop.convert(ref, mlpackage)
    report = interop.check(ref, [linear_onnx("copy3.onnx"), (mlpackage, "coreml")], allow_missing_runtime=True,
                           project_config=False, value_range={"x": (0, 2)}, input_shapes={"x": (3, 4)})
    documents.append(report.to_dict())
    for document in documents:
        valid_check_document(document)
    failing = documents[1]
    assert failing["schema"] == 2
    pair = failing["pairs"][0]
    assert pair["reference"]["path"] == str(ref) and pair["candidate"]["format"] == "onnx"
    assert pair["located"]["status"] == "located" and pair["oracle"]["from_reference"] is True
    assert documents[3]["skipped"] and documents[3]["inputs"]["inputs"]["x"]["range"] == [0.0, 2.0]
