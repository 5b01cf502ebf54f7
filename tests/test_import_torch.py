"""The reference MLP imported into PyTorch: from its ONNX export and from Keras through a planned route.

``interop train`` makes the models (conftest's session fixtures); the importer turns their
ONNX copies into a .pt2 and a torch-source folder, which ``interop check`` compares with the
source on the Iris data at the default fp32 tolerance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import interop

#: Dense(2 -> 64) and Dense(64 -> 3) with biases; the normalisation constants are not weights.
MLP_WEIGHTS = 2 * 64 + 64 + 64 * 3 + 3


@pytest.mark.parametrize("lineage", ["torch", "keras"])
def test_reference_mlp_imports_into_both_formats_and_trains(lineage, request, model_dir):
    import torch

    from interop_torch.loading import load_program
    from interop_torch.onnx_import import load_torch_source

    source = request.getfixturevalue(f"{lineage}_onnx")
    pt2, src = model_dir / f"iris_{lineage}_import.pt2", model_dir / f"iris_{lineage}_import_src"
    interop.convert(source, pt2)
    interop.convert(source, src, to="torch-source")
    report = interop.check(source, [pt2, src], dataset="iris")
    assert report.passed, report.format_table()
    program = load_program(pt2).program
    assert sum(p.numel() for p in program.module().parameters() if p.requires_grad) == MLP_WEIGHTS
    config = json.loads((src / "torch-source.json").read_text())
    assert config["weight_count"] == MLP_WEIGHTS
    assert {entry["role"] for entry in config["parameters"].values() if entry["kind"] == "buffer"} == {"constant"}

    module = load_torch_source(src)
    from interop.datasets import load_iris

    x, y = load_iris()
    x, y = torch.from_numpy(x[:30]), torch.from_numpy(y[:30])
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(module(x), y)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert float(torch.nn.functional.cross_entropy(module(x), y)) < loss.item()


def test_keras_mlp_converts_to_torch_through_onnx_and_matches(keras_model, model_dir, cli):
    pt2 = model_dir / "iris_from_keras_routed.pt2"
    result = cli("convert", str(keras_model), "-o", str(pt2), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["route"] == ["keras", "onnx", "torch"]
    checked = cli("check", str(keras_model), str(pt2), "--dataset", "iris")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = interop.check(keras_model, pt2, dataset="iris")
    errors = [out.metrics.max_abs for pair in report.pairs for out in pair.outputs]
    assert errors and max(errors) < 1e-5  # fp32 agreement with the Keras source, through two hops


def test_keras_mlp_converts_to_torch_source(keras_model, model_dir):
    src = model_dir / "iris_from_keras_src"
    result = interop.convert(keras_model, src, to="torch-source")
    assert result.route == ["keras", "onnx", "torch-source"]
    report = interop.check(keras_model, src, dataset="iris")
    assert report.passed, report.format_table()
    outputs = [spec["name"] for spec in json.loads((src / "torch-source.json").read_text())["outputs"]]
    assert outputs and np.all([isinstance(name, str) for name in outputs])
