"""Inline models loaded with their large weights referenced in the file (interop_coreml/inline_weights.py).

The file-size threshold is lowered so that small models take the path: the stripped model must be
the file's model once its external data is read back, the tensors the design leaves alone must stay
inline, malformed files must give the errors the normal load gives, and `interop convert`'s path
must write the same package bytes either way (each way in a fresh process, so that coremltools'
name counters start alike and the whole model file can be compared).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from interop.plugin_api import ModelLoadError
from interop_coreml.converter import load_onnx
from interop_coreml.inline_weights import MIN_ELEMENTS, stripped_model

from .conftest import interpret, ort_run, torch_to_onnx


def _float_data(name: str, array: np.ndarray) -> TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.ravel().tolist(), raw=False)


def _mixed_model(path: pathlib.Path, convertible: bool = False) -> onnx.ModelProto:
    """MatMul chain whose initializers use every encoding the stripper must handle or leave alone.

    ``convertible``: without the If (with a large initializer in its branch) and the sparse
    initializer, which the translator does not take.
    """
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((32, 64)).astype(np.float32)  # raw, large: referenced
    w2 = rng.standard_normal((64, 48)).astype(np.float32)  # float_data: left inline
    w3 = rng.standard_normal((48, 40)).astype(np.float16)  # raw fp16, large: referenced
    b3 = rng.standard_normal(40).astype(np.float32)  # small: left inline
    table = rng.integers(0, 7, size=(1100,), dtype=np.int64)  # raw int64, large: referenced
    then_c = rng.standard_normal((2000,)).astype(np.float32)  # a subgraph's initializer: left inline
    then_graph = helper.make_graph([helper.make_node("ReduceSum", ["tc"], ["t_out"], keepdims=0)], "then", [],
                                   [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [])],
                                   [numpy_helper.from_array(then_c, "tc")])
    else_graph = helper.make_graph([helper.make_node("Constant", [], ["e_out"], value_float=1.0)], "else", [],
                                   [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [])])
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.ones(1200, np.float32), "sp"),
                                       numpy_helper.from_array(np.arange(1200, dtype=np.int64), "sp_i"), [1300])
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"]),
        helper.make_node("MatMul", ["h1", "w2"], ["h2"]),
        helper.make_node("Cast", ["h2"], ["h2h"], to=TensorProto.FLOAT16),
        helper.make_node("MatMul", ["h2h", "w3"], ["h3h"]),
        helper.make_node("Cast", ["h3h"], ["h3"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["h3", "b3"], ["h4"]),
        helper.make_node("Cast", ["table"], ["table_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["table_f"], ["t_sum"], keepdims=0),
        helper.make_node("Greater", ["t_sum", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["branch"], then_branch=then_graph, else_branch=else_graph),
        helper.make_node("ReduceSum", ["sp"], ["sp_sum"], keepdims=0),
        helper.make_node("Add", ["branch", "sp_sum"], ["shift"]),
        helper.make_node("Add", ["h4", "shift"], ["y"]),
    ]
    if convertible:
        nodes[8:12] = [helper.make_node("Add", ["t_sum", "zero"], ["shift"])]
    graph = helper.make_graph(
        nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40])],
        [numpy_helper.from_array(w1, "w1"), _float_data("w2", w2), numpy_helper.from_array(w3, "w3"),
         numpy_helper.from_array(b3, "b3"), numpy_helper.from_array(table, "table"),
         numpy_helper.from_array(np.float32(0), "zero")],
        sparse_initializer=[] if convertible else [sparse])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return model


def _external_names(model: onnx.ModelProto) -> set[str]:
    return {t.name for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL}


def test_stripped_model_is_the_file_once_its_external_data_is_read(tmp_path):
    path = tmp_path / "mixed.onnx"
    original = _mixed_model(path)
    data, referenced = stripped_model(path)
    assert referenced == 3
    removed = 32 * 64 * 4 + 48 * 40 * 2 + 1100 * 8
    assert len(data) < path.stat().st_size - removed + 3 * 100  # + the external-data fields
    stripped = onnx.ModelProto.FromString(data)
    assert _external_names(stripped) == {"w1", "w3", "table"}
    for tensor in stripped.graph.initializer:
        if tensor.name in ("w1", "w3", "table"):
            entries = {e.key: e.value for e in tensor.external_data}
            assert entries["location"] == "mixed.onnx" and not tensor.HasField("raw_data")
            payload = path.read_bytes()[int(entries["offset"]):int(entries["offset"]) + int(entries["length"])]
            assert payload == next(t for t in original.graph.initializer if t.name == tensor.name).raw_data
    # Untouched: float_data, small tensors, sparse initializers, a subgraph's initializer.
    w2 = next(t for t in stripped.graph.initializer if t.name == "w2")
    assert len(w2.float_data) == 64 * 48 and w2.data_location == TensorProto.DEFAULT
    assert stripped.graph.sparse_initializer[0] == original.graph.sparse_initializer[0]
    assert stripped.graph.node[9] == original.graph.node[9]
    onnx.load_external_data_for_model(stripped, str(tmp_path))
    for tensor in stripped.graph.initializer:
        tensor.ClearField("data_location")
    assert stripped == original


def test_load_onnx_references_the_weights_and_converts_like_the_whole_load(tmp_path):
    import interop

    path = tmp_path / "mixed.onnx"
    original = _mixed_model(path, convertible=True)
    assert _external_names(load_onnx(path, stream_inline_above=0)) == {"w1", "w3", "table"}
    assert not _external_names(load_onnx(path, stream_inline_above=path.stat().st_size))
    assert not _external_names(load_onnx(path, stream_inline_above=None))
    interop.convert(path, tmp_path / "default.mlpackage")  # the small file is parsed whole
    feeds = {"x": np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)}
    np.testing.assert_allclose(interpret(tmp_path / "default.mlpackage", feeds)["y"], ort_run(original, feeds)["y"],
                               rtol=2e-2, atol=2e-2)


def test_a_linked_model_file_is_parsed_whole(tmp_path):
    target = tmp_path / "real.onnx"
    _mixed_model(target)
    (tmp_path / "link.onnx").symlink_to(target)
    assert not _external_names(load_onnx(tmp_path / "link.onnx", stream_inline_above=0))
    assert _external_names(load_onnx(target, stream_inline_above=0))


def test_a_model_with_external_data_of_its_own_is_loaded_the_normal_way(tmp_path):
    """Its own external tensors are checked by path, where onnx resolves them against the folder."""
    path = tmp_path / "mixed.onnx"
    model = _mixed_model(path, convertible=True)
    onnx.save(model, str(path), save_as_external_data=True, location="w.bin",
              size_threshold=8500)  # table (8,800 bytes) goes to w.bin, the rest stays inline
    assert stripped_model(path)[1] == 2  # w1 and w3 could be referenced ...
    loaded = load_onnx(path, stream_inline_above=0)
    locations = {t.name: {e.key: e.value for e in t.external_data}.get("location") for t in loaded.graph.initializer}
    assert locations == {"w1": None, "w2": None, "w3": None, "b3": None, "table": "w.bin", "zero": None}  # ... not


def _wrong_payload_size(path: pathlib.Path) -> None:
    tensor = numpy_helper.from_array(np.ones((40, 40), np.float32), "w")
    tensor.raw_data = tensor.raw_data[:-4]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 40])], [tensor])
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def _bad_checker(path: pathlib.Path) -> None:
    """Parses, but the checker refuses it: a node input nothing defines."""
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "nowhere"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 40])],
                              [numpy_helper.from_array(np.ones((40, 40), np.float32), "w")])
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def _truncated(path: pathlib.Path) -> None:
    _mixed_model(path)
    path.write_bytes(path.read_bytes()[:9000])


def _garbage(path: pathlib.Path) -> None:
    path.write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8)))


def _bad_utf8_name(path: pathlib.Path) -> None:
    """Well-formed wire format around the weights, invalid UTF-8 in the graph's name (a string field)."""
    _mixed_model(path)
    data = path.read_bytes()
    position = data.index(b"mixed")
    path.write_bytes(data[:position] + b"\xff\xfe\xfdxx" + data[position + 5:])


def _newer_opset(path: pathlib.Path) -> None:
    _mixed_model(path)
    model = onnx.load(str(path))
    model.opset_import[0].version = onnx.defs.onnx_opset_version() + 1
    path.write_bytes(model.SerializeToString())


@pytest.mark.parametrize("make", [_wrong_payload_size, _bad_checker, _truncated, _garbage, _bad_utf8_name,
                                  _newer_opset])
def test_malformed_files_give_the_error_of_the_whole_load(make, tmp_path):
    path = tmp_path / "bad.onnx"
    make(path)
    errors = []
    for threshold in (None, 0):
        try:
            model = load_onnx(path, stream_inline_above=threshold)
        except ModelLoadError as error:
            errors.append(str(error))
        else:
            errors.append(f"loaded {model.graph.name!r}")
    assert errors[0] == errors[1]
    if make is _bad_utf8_name:  # protobuf does not validate proto2 strings: both load it
        assert errors[0].startswith("loaded")
    else:
        assert "\n" not in errors[0] and errors[0].startswith(f"{path} ")


def _torch_models(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """Small real architectures exported by torch.onnx, their weights inline as raw_data."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
            self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))

    class DenseLayer(nn.Module):
        def __init__(self, channels, growth):
            super().__init__()
            self.bn, self.conv = nn.BatchNorm2d(channels), nn.Conv2d(channels, growth, 3, padding=1, bias=False)

        def forward(self, x):
            return torch.cat([x, self.conv(torch.relu(self.bn(x)))], 1)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(16, 64)
            self.layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            return self.head(self.layer(self.embed(x)).mean(1))

    resnet = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                           Block(32), Block(32), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 100))
    densenet = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), DenseLayer(16, 12), DenseLayer(28, 12),
                             nn.BatchNorm2d(40), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 50))
    for net in (resnet, densenet):  # trained-looking statistics, so the folded batch norms are not identities
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    paths = {}
    for name, net, example in (("resnet", resnet, torch.randn(1, 3, 16, 16)),
                               ("densenet", densenet, torch.randn(1, 3, 16, 16)),
                               ("transformer", Encoder(), torch.randn(1, 6, 16))):
        paths[name] = folder / f"{name}.onnx"
        torch_to_onnx(net, example, paths[name])
    paths["mixed"] = folder / "mixed.onnx"
    _mixed_model(paths["mixed"], convertible=True)
    return paths


# Converts each (model, options) with `interop convert`'s function in this fresh process, the threshold given.
_CHILD = r"""
import json, pathlib, sys, warnings
warnings.simplefilter("ignore")
from interop_coreml import converter
converter.STREAM_INLINE_ABOVE = json.loads(sys.argv[1])
for src, dst, options in json.loads(sys.argv[2]):
    converter.onnx_to_coreml(pathlib.Path(src), pathlib.Path(dst), options)
"""


def _package_bytes(path: pathlib.Path) -> dict[str, bytes]:
    """Every file of the package but Manifest.json, whose item identifiers are random UUIDs.

    The model file as protobuf's deterministic serialisation of its message: the order in which
    protobuf writes a map (the metadata) varies from process to process.
    """
    import coremltools as ct

    files = {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}
    files = {name: data for name, data in files.items() if name != "Manifest.json"}
    for name in files:
        if name.endswith(".mlmodel"):
            files[name] = ct.proto.Model_pb2.Model.FromString(files[name]).SerializeToString(deterministic=True)
    return files


def test_convert_writes_the_same_package_bytes_either_way(tmp_path):
    models = _torch_models(tmp_path)
    for path in models.values():  # the child's load with the threshold at 0 references weights in the file
        assert _external_names(load_onnx(path, stream_inline_above=0))
    jobs = [(name, options) for name in models for options in ({}, {"precision": "fp16"})]
    jobs += [("resnet", {"compress": "int8"}), ("transformer", {"compress": "palettize4"}),
             ("densenet", {"compress": "palettize8"})]
    packages = {}
    for mode, threshold in (("whole", None), ("stream", 0)):
        batch = [(str(models[name]), str(tmp_path / f"{mode}-{i}-{name}.mlpackage"), options)
                 for i, (name, options) in enumerate(jobs)]
        env = {**os.environ, "INTEROP_DEBUG": "1"}
        result = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(threshold), json.dumps(batch)],
                                capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        packages[mode] = [_package_bytes(pathlib.Path(dst)) for _, dst, _ in batch]
    for job, whole, stream in zip(jobs, packages["whole"], packages["stream"]):
        assert any(name.endswith(".bin") for name in whole) and any(name.endswith(".mlmodel") for name in whole)
        assert whole.keys() == stream.keys(), job
        for name in whole:
            assert whole[name] == stream[name], (job, name)


def test_min_elements_matches_the_prepass_inference_limit():
    from interop_coreml.onnx2mil import prepass

    assert MIN_ELEMENTS == prepass._INFERENCE_MAX_ELEMENTS
