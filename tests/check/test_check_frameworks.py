"""`interop check` on the reference MLP trained in Keras and PyTorch and converted by interop's own plugins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import interop


def test_converted_model_that_computes_the_same_passes(torch_mlp: Path, torch_onnx: Path) -> None:
    report = interop.check(torch_mlp, [torch_onnx], dataset="iris", project_config=False)
    assert report.passed, report.format_table()
    logits = report.pairs[0].outputs[0]
    assert logits.name == "logits"
    assert logits.metrics.argmax_agreement == 1.0
    assert report.pairs[0].candidate.engine == "onnxruntime (CPUExecutionProvider)"
    assert report.pairs[0].reference.engine == "torch (eager CPU)"


def test_keras_torch_and_onnxruntime_copies_in_one_command(
    keras_mlp: Path, keras_onnx: Path, torch_mlp: Path, torch_onnx: Path, run_cli, tmp_path: Path,
) -> None:
    # Two lineages: the Keras model with its ONNX conversion, the PyTorch model with its own.
    code, out, err = run_cli(
        "check", keras_mlp, keras_onnx, "+", torch_mlp, torch_onnx, f"{torch_onnx}@onnxruntime",
        "--dataset", "iris-grid", "--json-file", tmp_path / "report.json",
    )
    document = json.loads((tmp_path / "report.json").read_text())
    assert code == 0, out + err
    assert [g["reference"]["runtime"] for g in document["groups"]] == ["keras", "torch"]
    assert [p["runtime"] for p in document["pairs"]] == ["onnxruntime"] * 3
    assert {"tensorflow", "torch", "onnxruntime"} <= set(document["versions"])
    assert "keras (TensorFlow CPU)" in out and "torch (eager CPU)" in out


def test_independently_trained_models_are_not_equivalent(keras_mlp: Path, torch_mlp: Path) -> None:
    # Different training runs compute different functions: the checker must say so.
    report = interop.check(keras_mlp, [torch_mlp], dataset="iris", project_config=False)
    assert not report.passed


def test_fp16_core_ml_copy_gets_fp16_tolerances_from_its_metadata(
    torch_onnx: Path, models_dir: Path, run_cli,
) -> None:
    fp16 = models_dir / "mlp_fp16.mlpackage"
    if not fp16.exists():
        interop.convert(torch_onnx, fp16, options={"precision": "fp16"})
    code, out, err = run_cli("check", torch_onnx, fp16, "--dataset", "iris")
    assert code == 0, out + err
    assert "coreml (reference interpreter)" in out  # Apple's runtime is unavailable on Linux: fallback
    assert "[fp16]" in out and "interop.precision=fp16" in out
    code, out, err = run_cli("check", torch_onnx, fp16, "--dataset", "iris", "--atol", "1e-6", "--rtol", "1e-6")
    assert code == 1
    # Apple's runtime named explicitly: exit 3 here, or a skip with a warning when allowed.
    code, _, err = run_cli("check", torch_onnx, f"{fp16}@coreml")
    assert code == 3 and "macOS" in err
    code, out, err = run_cli("check", torch_onnx, f"{fp16}@coreml", torch_onnx, "--allow-missing-runtime",
                             "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["skipped"] and "macOS" in document["skipped"][0]["reason"]


def test_an_fp16_onnx_model_and_its_ios15_core_ml_copy_compare_by_value(linear_onnx, run_cli, tmp_path) -> None:
    """Core ML for iOS 15 has no float16 inputs or outputs: the copy returns float32, not a dtype mismatch."""
    source = linear_onnx("half.onnx", fp16=True)
    copy = tmp_path / "half.mlpackage"
    interop.convert(source, copy, options={"minimum_deployment_target": "iOS15"})
    code, out, err = run_cli("check", source, copy, "--json")
    assert code == 0, err
    pair = json.loads(out)["pairs"][0]
    assert pair["precision"] == "fp16"
    for output in pair["outputs"]:
        assert (output["reference_dtype"], output["candidate_dtype"]) == ("float16", "float32")
        assert output["message"] == "compared by value: reference float16, candidate float32"
    assert "y: compared by value: reference float16, candidate float32" in err  # the table (stderr with --json)


def test_convert_check_verifies_every_hop_and_marks_divergence(torch_mlp: Path, tmp_path: Path, run_cli) -> None:
    dst = tmp_path / "checked.onnx"
    code, out, err = run_cli("convert", torch_mlp, "-o", dst, "--check", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["verified"] is True and document["check"]["passed"] is True
    assert not (tmp_path / "checked.onnx.unverified.json").exists()


def test_convert_check_keeps_a_diverging_output_with_an_unverified_note(
    torch_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli,
) -> None:
    # An ONNX -> Core ML hop in fp16 diverges beyond fp32 tolerances once a project asks for them.
    (tmp_path / "pyproject.toml").write_text("[tool.interop.check]\natol = 1e-7\nrtol = 1e-7\n")
    src = tmp_path / "src.onnx"
    shutil.copy(torch_onnx, src)
    dst = tmp_path / "out.mlpackage"
    code, out, err = run_cli("convert", src, "-o", dst, "--precision", "fp16", "--check")
    assert code == 1, out + err
    assert dst.exists()
    note = json.loads((tmp_path / "out.mlpackage.unverified.json").read_text())
    assert note["verified"] is False and note["check"]["passed"] is False
    assert "NOT VERIFIED" in err


def test_a_programs_declared_batch_bound_keeps_the_checks_runs_within_it(tmp_path: Path) -> None:
    """torch.export refuses a batch above a Dim's max: the check feeds runs no larger than it."""
    torch = pytest.importorskip("torch")

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5)).eval()
    batch = torch.export.Dim("batch", min=1, max=16)
    program = torch.export.export(model, (torch.randn(2, 3, 6, 6),), dynamic_shapes=({0: batch},))
    path = tmp_path / "bounded.pt2"
    torch.export.save(program, str(path))
    onnx_copy = tmp_path / "bounded.onnx"
    interop.convert(path, onnx_copy)

    report = interop.check(path, [onnx_copy])
    assert report.passed
    document = report.to_dict()
    assert document["inputs"]["runs"] and max(document["inputs"]["runs"]) <= 16
    assert document["inputs"]["samples"] > 16  # the default plan's 64-sample run was cut, not dropped


def test_a_program_returning_a_dict_and_nested_tuples_runs_and_names_its_outputs(tmp_path: Path) -> None:
    """A module returning a dict is checked output by output, named by its keys in every copy."""
    torch = pytest.importorskip("torch")
    import onnx

    class Heads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x):  # type: ignore[no-untyped-def]
            y = self.linear(x)
            return {"logits": y, "probs": y.softmax(-1), "label": y.argmax(-1)}

    class Nested(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return x + 1, (x * 2, [x.sum(-1)])

    batch = torch.export.Dim("batch", min=1, max=64)
    torch.manual_seed(0)
    for name, module, names in (("heads", Heads(), ["logits", "probs", "label"]),
                                ("nested", Nested(), ["output_0", "output_1", "output_2"])):
        program = torch.export.export(module.eval(), (torch.randn(2, 4),), dynamic_shapes=({0: batch},))
        path = tmp_path / f"{name}.pt2"
        torch.export.save(program, str(path))
        onnx_copy = tmp_path / f"{name}.onnx"
        interop.convert(path, onnx_copy)
        assert [o.name for o in onnx.load(str(onnx_copy)).graph.output] == names
        report = interop.check(path, [onnx_copy], batch_sizes=(1, 5))
        assert report.passed, report.format_table()
        (pair,) = report.to_dict()["pairs"]
        assert [output["name"] for output in pair["outputs"]] == names
