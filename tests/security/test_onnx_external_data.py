"""ONNX external data never reaches outside the model's folder.

An ONNX initializer may keep its bytes in another file (``data_location=EXTERNAL``,
``location`` relative to the model). A crafted model can name ``../secret``, an
absolute path or a link inside its folder that points elsewhere. onnx (``onnx.load``,
used by the Core ML translator) and onnxruntime both validate the location before
opening it; these tests pin that guarantee for every reader interop uses: the outside
file is a named pipe, so an attempt to open it would be recorded, and it must not be.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from security_helpers import refused

pytest.importorskip("onnx")


def _model_with_external_weight(path: Path, location: str) -> Path:
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())  # onnx.save would try to resolve the data
    return path


def _locations(model_dir: Path, outside: Path) -> dict[str, str]:
    link = model_dir / "weights.bin"
    os.symlink(outside, link)
    return {
        "relative": os.path.relpath(outside, model_dir),
        "absolute": str(outside),
        "link": link.name,
    }


@pytest.mark.parametrize("kind", ["relative", "absolute", "link"])
def test_check_never_opens_external_data_outside_the_model(tmp_path, watched, cli, kind):
    secret = watched()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = _model_with_external_weight(model_dir / "evil.onnx", _locations(model_dir, secret.path)[kind])

    result = cli("check", str(model), str(model), "-q")

    refused(result, "evil.onnx")
    assert not secret.stop(), "the outside file was opened"


@pytest.mark.parametrize("target, needs", [("evil.mlpackage", "coremltools"), ("evil.keras", "keras")])
def test_convert_never_opens_external_data_outside_the_model(tmp_path, watched, cli, target, needs):
    pytest.importorskip(needs)
    secret = watched()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = _model_with_external_weight(model_dir / "evil.onnx", _locations(model_dir, secret.path)["relative"])
    out = tmp_path / target

    result = cli("convert", str(model), "-o", str(out))

    refused(result, "evil.onnx")
    assert not secret.stop(), "the outside file was opened"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary output was left behind"
