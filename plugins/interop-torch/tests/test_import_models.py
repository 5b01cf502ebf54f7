"""Whole networks through the ONNX -> torch importer: .pt2 and torch-source, checked against onnxruntime.

`make test` runs the whole pipeline on one representative (SqueezeNet); `make test-extended`
(the ``extended`` marker) runs it on the other eight zoo nets and on every Keras Application.

The nine model-zoo architectures of the onnx wheel (random weights, symbolic batch) and Keras
Applications converted by tf2onnx are imported into both formats with ``interop.convert``,
compared with onnxruntime by ``interop.check`` at batch 1 and 2, their trainable parameters
counted against the source's weights (counted here independently of the importer), and
trained one SGD step on a fixed batch, which must lower the loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import interop
from interop.testing.zoo import (
    ZOO_NAMES,
    onnx_weight_count,
    zoo_model,
    zoo_weight_names,
)
try:
    from interop_keras.applications import KERAS_APPS, keras_application_onnx
except ImportError:  # interop-keras not installed: the campaign has no Keras Applications
    KERAS_APPS = ()

from .conftest import ort_run, save, sgd_step, without_final_softmax

#: What `make test` runs of the campaign: the rest is `make test-extended`.
REPRESENTATIVE = "squeezenet"
#: These keep their closing Softmax (not saturated with random weights) so Softmax is imported too.
KEEP_SOFTMAX = {"squeezenet", "inception_v1"}


def zoo_expected_weights(name: str, model: onnx.ModelProto) -> int:
    """Elements of the zoo architecture's weights, BatchNorm running statistics left out (they are buffers)."""
    statistics = {n.input[i] for n in model.graph.node if n.op_type == "BatchNormalization" for i in (3, 4)}
    weights = set(zoo_weight_names(name)) - statistics
    return sum(int(np.prod(init.dims)) for init in model.graph.initializer if init.name in weights)


def keras_expected_weights(model: onnx.ModelProto) -> int:
    """tf2onnx keeps weights (BatchNorm folded into Conv or Mul/Add) as float tensors of 2+ elements;
    the preprocessing layers' constants (Rescaling, Normalization) are the only other ones."""
    total = 0
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.kind == "f" and array.size >= 2 and not any(
                layer in init.name for layer in ("rescaling", "normalization")):
            total += array.size
    return total


def _load_pt2_module(path: Path):  # type: ignore[no-untyped-def]
    from interop_torch.loading import load_program

    return load_program(path).program.module()


def _import_both(model: onnx.ModelProto, folder: Path, name: str) -> tuple[Path, Path, Path]:
    source = save(model, folder / f"{name}.onnx")
    pt2, src = folder / f"{name}.pt2", folder / f"{name}_src"
    interop.convert(source, pt2)
    interop.convert(source, src, to="torch-source")
    return source, pt2, src


def _assert_imported(source: Path, pt2: Path, src: Path, expected_weights: int, input_shape: tuple[int, ...]) -> None:
    import torch

    from interop_torch.onnx_import import load_torch_source

    # Random weights give logits in the hundreds: the absolute tolerance follows the output's scale.
    model = onnx.load(str(source))
    x = np.random.default_rng(0).uniform(-1, 1, (2, *input_shape)).astype(np.float32)
    scale = max(float(np.abs(out).max()) for out in ort_run(model, {model.graph.input[0].name: x}))
    report = interop.check(source, [pt2, src], batch_sizes=(1, 2), rtol=1e-4, atol=1e-5 * max(scale, 1.0))
    assert report.passed, report.format_table()

    program_module = _load_pt2_module(pt2)
    trainable = sum(p.numel() for p in program_module.parameters() if p.requires_grad)
    assert trainable == expected_weights
    record = json.loads((src / "torch-source.json").read_text())
    assert record["weight_count"] == expected_weights
    source_module = load_torch_source(src)
    assert sum(p.numel() for p in source_module.parameters() if p.requires_grad) == expected_weights

    x = torch.from_numpy(np.random.default_rng(7).standard_normal((1, *input_shape)).astype(np.float32))
    before, after = sgd_step(program_module, [x], train=False)  # a .pt2 is an eval-mode program
    assert after < before, (before, after)
    before, after = sgd_step(source_module, [x])
    assert after < before, (before, after)


@pytest.mark.parametrize("name", [n if n == REPRESENTATIVE else pytest.param(n, marks=pytest.mark.extended)
                                  for n in ZOO_NAMES])
def test_zoo_architecture_imports_trains_and_matches_onnxruntime(name, workdir):
    model = zoo_model(name, seed=0, dynamic_batch=True)
    if name not in KEEP_SOFTMAX:
        model = without_final_softmax(model)
    source, pt2, src = _import_both(model, workdir, name)
    _assert_imported(source, pt2, src, zoo_expected_weights(name, model), (3, 224, 224))
    # Every parameter is named after (and maps to) an ONNX initializer the zoo file holds as a weight.
    record = json.loads((src / "torch-source.json").read_text())
    origins = {entry["onnx"] for entry in record["parameters"].values() if entry["kind"] == "parameter"}
    assert origins <= set(zoo_weight_names(name))


@pytest.mark.parametrize("app", [pytest.param(a, marks=pytest.mark.extended) for a in KERAS_APPS])
def test_keras_application_imports_trains_and_matches_onnxruntime(app, workdir):
    model = keras_application_onnx(app, (32, 32, 3))
    source, pt2, src = _import_both(model, workdir, app)
    expected = keras_expected_weights(model)
    # The rule the Keras importer's campaign counts with gives the same number: both imports train the same tensors.
    assert onnx_weight_count(model) == expected
    _assert_imported(source, pt2, src, expected, (32, 32, 3))
