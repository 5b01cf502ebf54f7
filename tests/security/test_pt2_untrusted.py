"""A crafted .pt2 runs no code when `interop convert` or `interop check` opens it.

``torch.export.load`` unpickles sample inputs (retrying with ``weights_only=False``),
weights and constants stored with ``use_pickle``, opaque and custom object constants and
the legacy layout's state dict; it ``sympify``-s (evals) shape expressions, and
``ExportedProgram.module()`` execs guard code. Each test builds a .pt2 that is a normal
archive except for one such payload, shows where possible that the payload is live (torch
itself creates the *marker* file when it loads the file), and then proves that interop
refuses the file (exit 2, one line naming the reason) and that the marker never appears.
Malformed archives get exit 2 and one line too, with no torch traceback or log line.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


class _Payload:
    """Unpickling it creates ``marker`` (``open(marker, 'w')``)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):  # noqa: D105
        return (open, (self.marker, "w"))


class Tiny(torch.nn.Module):
    """(x - mean) -> Linear(3, 2) -> ReLU, + a constant: weights, a buffer and a constant tensor."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, 2)
        self.register_buffer("mean", torch.tensor([0.5, -0.25, 1.0]))
        self.offset = torch.tensor([0.125, -0.5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x - self.mean)) + self.offset


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, Path]:
    """A normally saved program and an ONNX file computing the same function."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from interop_torch.loading import save_program

    folder = tmp_path_factory.mktemp("pt2")
    model = Tiny().eval()
    program = torch.export.export(model, (torch.randn(4, 3),), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    pt2 = folder / "good.pt2"
    save_program(program, pt2, ["x"], ["y"])
    inits = [numpy_helper.from_array(t.detach().numpy(), name) for name, t in (
        ("mean", model.mean), ("W", model.fc.weight), ("B", model.fc.bias), ("offset", model.offset))]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["centred"]),
             helper.make_node("Gemm", ["centred", "W", "B"], ["linear"], transB=1),
             helper.make_node("Relu", ["linear"], ["relu"]), helper.make_node("Add", ["relu", "offset"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], inits)
    onnx_path = folder / "good.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), onnx_path)
    return pt2, onnx_path


def _members(pt2: Path) -> tuple[str, dict[str, bytes]]:
    with zipfile.ZipFile(pt2) as archive:
        root = archive.namelist()[0].split("/", 1)[0]
        return root, {n[len(root) + 1:]: archive.read(n) for n in archive.namelist()}


def _write(dst: Path, root: str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(f"{root}/{name}" if root else name, data)
    return dst


def _crafted(good_pt2: Path, dst: Path, **changes: bytes | None) -> Path:
    """A copy of the good archive with members replaced (``None`` removes one); names use / for __."""
    root, members = _members(good_pt2)
    for key, data in changes.items():
        name = key.replace("__", "/").replace("_DOT_", ".")
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    return _write(dst, root, members)


def _torch_save(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _config(good_pt2: Path, kind: str) -> dict:
    _, members = _members(good_pt2)
    return json.loads(members[f"data/{kind}/model_{kind}_config.json"])


def _program(good_pt2: Path) -> dict:
    _, members = _members(good_pt2)
    return json.loads(members["models/model.json"])


def _live(path: Path, marker: Path, run_module: bool = False) -> None:
    """torch's own loader runs the payload: the marker appears (then it is removed again)."""
    try:
        program = torch.export.load(str(path))
        if run_module:  # the generated guard function runs when the module is called
            program.module()(*program.example_inputs[0])
    except Exception:
        pass
    assert marker.exists(), "the crafted file is not live: torch.export.load did not run its payload"
    marker.unlink()


def _refused(result, *needles: str) -> str:
    """Exit 2; stderr is the one 'error:' line (plus an optional hint): no traceback, no torch logging."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), result.stderr
    assert all(line.startswith("hint:") for line in lines[1:]), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(params=["convert", "check"])
def open_with(request, cli, good, tmp_path):
    """Open a .pt2 with `interop convert X -o out.onnx` or `interop check X good.onnx`."""

    def run(pt2: Path):
        if request.param == "convert":
            out = tmp_path / "out.onnx"
            result = cli("convert", str(pt2), "-o", str(out))
            assert not out.exists()
        else:
            result = cli("check", str(pt2), str(good[1]))
        return result

    return run


# ------------------------------------------------------------------ pickled payloads


@pytest.mark.parametrize("form", ["torch.save", "raw pickle"])
def test_sample_inputs_pickle_never_runs(tmp_path, good, open_with, form):
    marker = tmp_path / "MARKER"
    payload = _torch_save((_Payload(marker),)) if form == "torch.save" else pickle.dumps(_Payload(marker))
    evil = _crafted(good[0], tmp_path / "evil.pt2", data__sample_inputs__model_DOT_pt=payload)
    _live(evil, marker)
    _refused(open_with(evil), "data/sample_inputs/model.pt", "pickled data", "could run code")
    assert not marker.exists()


def test_an_attribute_of_a_sample_input_tensor_never_runs(tmp_path, good, open_with):
    """A tensor with attributes is pickled through _rebuild_from_type_v2 (allowed); its attributes are checked."""
    marker = tmp_path / "MARKER"
    tensor = torch.zeros(2, 3)
    tensor.payload = _Payload(marker)
    evil = _crafted(good[0], tmp_path / "evil.pt2", data__sample_inputs__model_DOT_pt=_torch_save(((tensor,), {})))
    _live(evil, marker)
    _refused(open_with(evil), "data/sample_inputs/model.pt", "pickled data", "could run code", "open")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["weights", "constants"])
def test_use_pickle_tensors_never_run(tmp_path, good, open_with, kind):
    marker = tmp_path / "MARKER"
    config = _config(good[0], kind)
    fqn, entry = next(iter(config["config"].items()))
    entry["use_pickle"] = True
    evil = _crafted(good[0], tmp_path / "evil.pt2", **{
        f"data__{kind}__model_{kind}_config_DOT_json": json.dumps(config).encode(),
        f"data__{kind}__{entry['path_name']}": _torch_save(_Payload(marker)),
    })
    _live(evil, marker)
    _refused(open_with(evil), "pickled data", f"data/{kind}/{entry['path_name']}", fqn)
    assert not marker.exists()


@pytest.mark.parametrize("prefix", ["opaque_obj_", "custom_obj_"])
def test_object_constants_never_run(tmp_path, good, open_with, prefix):
    marker = tmp_path / "MARKER"
    config = _config(good[0], "constants")
    config["config"]["evil"] = {"path_name": f"{prefix}0", "is_param": False, "use_pickle": True, "tensor_meta": None}
    evil = _crafted(good[0], tmp_path / "evil.pt2", **{
        "data__constants__model_constants_config_DOT_json": json.dumps(config).encode(),
        f"data__constants__{prefix}0": pickle.dumps(_Payload(marker)),
    })
    if prefix == "opaque_obj_":  # torch pickle.loads it; the TorchScript unpickler of custom_obj_ is narrower
        _live(evil, marker)
    _refused(open_with(evil), "object constant", f"data/constants/{prefix}0", "could run code")
    assert not marker.exists()


def test_legacy_weights_file_never_runs(tmp_path, good, open_with):
    marker = tmp_path / "MARKER"
    evil = _crafted(good[0], tmp_path / "evil.pt2", data__weights__model_DOT_pt=_torch_save({"w": _Payload(marker)}))
    _live(evil, marker)
    _refused(open_with(evil), "legacy", "data/weights/model.pt", "could run code")
    assert not marker.exists()


def test_legacy_layout_state_dict_never_runs(tmp_path, good, open_with):
    """The torch < 2.7 layout: a flat zip whose serialized_state_dict.pt is a pickle."""
    marker = tmp_path / "MARKER"
    from torch._export.serde.schema import SCHEMA_VERSION

    _, members = _members(good[0])
    evil = _write(tmp_path / "evil.pt2", "", {
        "version": ".".join(map(str, SCHEMA_VERSION)).encode(),
        "serialized_exported_program.json": members["models/model.json"],
        "serialized_state_dict.pt": _torch_save({"fc.weight": _Payload(marker)}),
        "serialized_constants.pt": _torch_save({}),
        "serialized_example_inputs.pt": _torch_save(((torch.zeros(2, 3),), {})),
    })
    _live(evil, marker)
    _refused(open_with(evil), "legacy", "serialized_state_dict.pt", "could run code")
    assert not marker.exists()


def test_aotinductor_native_code_is_refused_unloaded(tmp_path, good, open_with):
    """torch.export.load hands data/aotinductor/<model>/ to AOTInductor's loader (a shared library)."""
    evil = _crafted(good[0], tmp_path / "evil.pt2", data__aotinductor__model__model_DOT_so=b"\x7fELF not really")
    _refused(open_with(evil), "AOTInductor", "does not load")


# ------------------------------------------------------------------ code in the program JSON


def _first_expression(node) -> dict:
    stack = [node]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "expr_str" in value:
                return value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    raise AssertionError("the program has no shape expression")


def test_shape_expression_is_never_evaluated(tmp_path, good, open_with):
    marker = tmp_path / "MARKER"
    program = _program(good[0])
    expression = _first_expression(program)
    expression["expr_str"] = f"{expression['expr_str']} + 0*len(open({str(marker)!r}, 'w').name)"
    evil = _crafted(good[0], tmp_path / "evil.pt2", models__model_DOT_json=json.dumps(program).encode())
    _live(evil, marker)
    _refused(open_with(evil), "shape expression", "names 'len'")
    assert not marker.exists()


def test_node_target_outside_torch_ops_is_refused(tmp_path, good, open_with):
    """deserialize_operator walks attributes from the torch module: torch.serialization.os.system resolves."""
    program = _program(good[0])
    node = program["graph_module"]["graph"]["nodes"][0]
    node["target"] = "torch.serialization.os.system"
    evil = _crafted(good[0], tmp_path / "evil.pt2", models__model_DOT_json=json.dumps(program).encode())
    _refused(open_with(evil), "torch.serialization.os.system", "not a torch operator")


def test_torch_ops_attribute_that_is_not_an_operator_is_refused(tmp_path, good, cli):
    """torch.ops.load_library would load a native library; only registered operators are accepted."""
    program = _program(good[0])
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.ops.load_library.__call__"
    evil = _crafted(good[0], tmp_path / "evil.pt2", models__model_DOT_json=json.dumps(program).encode())
    _refused(cli("convert", str(evil), "-o", str(tmp_path / "out.onnx")), "load_library", "not a torch operator")


def test_aten_operators_named_like_python_operators_load(tmp_path):
    """aten names some operators like operator methods (``aten::__and__``); attention masks use them."""
    from interop_torch.loading import load_program, save_program

    class Masked(torch.nn.Module):
        def forward(self, x, y):
            return ((x > 0) & (y > 0)).to(torch.float32) + (x.to(torch.int64) >> 1).to(torch.float32)

    program = torch.export.export(Masked(), (torch.randn(2, 3), torch.randn(2, 3)))
    pt2 = tmp_path / "masked.pt2"
    save_program(program, pt2, ["x", "y"], ["z"])
    targets = {str(node.target) for node in load_program(pt2).program.graph.nodes if node.op == "call_function"}
    assert {"aten.__and__.Tensor", "aten.__rshift__.Scalar"} <= targets


@pytest.mark.parametrize("target", ["torch.ops.aten.__and__.__call__", "torch.ops.aten.__class__.default",
                                    "torch.ops.__class__.__and__"])
def test_dunder_that_is_not_an_operator_name_is_refused(tmp_path, good, cli, target):
    program = _program(good[0])
    program["graph_module"]["graph"]["nodes"][0]["target"] = target
    evil = _crafted(good[0], tmp_path / "evil.pt2", models__model_DOT_json=json.dumps(program).encode())
    _refused(cli("convert", str(evil), "-o", str(tmp_path / "out.onnx")), "not a torch operator")


@pytest.mark.parametrize("form", ["enum", "defaultdict"])
def test_input_structure_naming_a_module_imports_nothing(tmp_path, good, cli, form):
    """torch's treespec_loads imports the module an enum key or a defaultdict factory names."""
    import sys

    marker = tmp_path / "MARKER"
    site = tmp_path / "site"
    site.mkdir()
    module = f"interop_planted_{form}"
    (site / f"{module}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport enum\nclass Color(enum.Enum):\n    RED = 1\nfactory = list\n")
    program = _program(good[0])
    signature = program["graph_module"]["module_call_graph"][0]["signature"]
    spec = json.loads(signature["in_spec"])
    kwargs = spec[1]["children_spec"][1]
    if form == "enum":
        kwargs["context"] = json.dumps([{"__enum__": True, "fqn": f"{module}:Color", "name": "RED"}])
    else:
        kwargs.update(type="collections.defaultdict", context={
            "default_factory_module": module, "default_factory_name": "factory", "dict_context": []})
    signature["in_spec"] = json.dumps(spec)
    evil = _crafted(good[0], tmp_path / "evil.pt2", models__model_DOT_json=json.dumps(program).encode())
    sys.path.insert(0, str(site))
    try:
        _live(evil, marker)
    finally:
        sys.path.remove(str(site))
        sys.modules.pop(module, None)
    result = cli("check", str(evil), str(good[1]), env={"PYTHONPATH": str(site)})
    _refused(result, "input/output structure", module)
    assert not marker.exists()


def test_guard_code_is_never_executed(tmp_path, good, cli):
    """ExportedProgram.module() compiles guards_code into the module; interop drops it (inputs are
    still checked against the program's range constraints)."""
    marker = tmp_path / "MARKER"
    program = _program(good[0])
    program["guards_code"] = [f"open({str(marker)!r}, 'w') is not None"]
    evil = _crafted(good[0], tmp_path / "evil.pt2", models__model_DOT_json=json.dumps(program).encode())
    _live(evil, marker, run_module=True)
    result = cli("check", str(evil), str(good[1]), "--samples", "8")
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


# ------------------------------------------------------------------ malformed archives


def _truncated(good_pt2: Path, dst: Path) -> Path:
    dst.write_bytes(good_pt2.read_bytes()[: good_pt2.stat().st_size * 2 // 3])
    return dst


def _without_program(good_pt2: Path, dst: Path) -> Path:
    return _crafted(good_pt2, dst, models__model_DOT_json=None)


def _corrupt_json(good_pt2: Path, dst: Path) -> Path:
    return _crafted(good_pt2, dst, models__model_DOT_json=b'{"graph_module": {"graph": [1, 2')


def _schema_violating_json(good_pt2: Path, dst: Path) -> Path:
    program = _program(good_pt2)
    program["graph_module"]["graph"]["nodes"] = [{"target": "torch.ops.aten.relu.default", "inputs": 7}]
    return _crafted(good_pt2, dst, models__model_DOT_json=json.dumps(program).encode())


def _short_weight(good_pt2: Path, dst: Path) -> Path:
    entry = next(iter(_config(good_pt2, "weights")["config"].values()))
    _, members = _members(good_pt2)
    record = f"data/weights/{entry['path_name']}"
    return _crafted(good_pt2, dst, **{record.replace("/", "__"): members[record][:-4]})


def _ragged_weight(good_pt2: Path, dst: Path) -> Path:
    entry = next(iter(_config(good_pt2, "weights")["config"].values()))
    _, members = _members(good_pt2)
    record = f"data/weights/{entry['path_name']}"
    return _crafted(good_pt2, dst, **{record.replace("/", "__"): members[record] + b"\x00"})


def _patch_declared_size(good_pt2: Path, dst: Path, *, compressed: bool, deflate: bool) -> Path:
    """The central directory claims the program JSON inflates to 2**32 - 16 bytes."""
    root, members = _members(good_pt2)
    with zipfile.ZipFile(dst, "w") as archive:
        for name, blob in members.items():
            method = zipfile.ZIP_DEFLATED if deflate and name == "models/model.json" else zipfile.ZIP_STORED
            archive.writestr(f"{root}/{name}", blob, compress_type=method)
    data = bytearray(dst.read_bytes())
    at = data.rfind(f"{root}/models/model.json".encode()) - 46  # that member's central directory record
    assert data[at:at + 4] == b"PK\x01\x02"
    if compressed:
        data[at + 20:at + 24] = (0xFFFFFFF0).to_bytes(4, "little")
    data[at + 24:at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    dst.write_bytes(bytes(data))
    return dst


def _huge_declared_size(good_pt2: Path, dst: Path) -> Path:
    return _patch_declared_size(good_pt2, dst, compressed=True, deflate=False)


def _zip_bomb(good_pt2: Path, dst: Path) -> Path:
    return _patch_declared_size(good_pt2, dst, compressed=False, deflate=True)


@pytest.mark.parametrize(("make", "needle"), [
    (_truncated, "zip archive"),
    (_without_program, "no torch.export program"),
    (_corrupt_json, "not valid JSON"),
    (_short_weight, "holds"),
    (_ragged_weight, "not a whole number"),
    (_huge_declared_size, "more than the file holds"),
    (_zip_bomb, "zip bomb"),
], ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else None)
def test_malformed_archive_is_one_line_and_exit_2(tmp_path, good, open_with, make, needle):
    bad = make(good[0], tmp_path / "bad.pt2")
    line = _refused(open_with(bad), needle)
    assert "bad.pt2" in line


def test_program_json_torch_rejects_is_one_line_and_exit_2(tmp_path, good, cli):
    """Valid JSON that is not a valid program: torch's deserializer fails, and logs nothing."""
    bad = _schema_violating_json(good[0], tmp_path / "bad.pt2")
    line = _refused(cli("check", str(bad), str(good[1])), "cannot load this program")
    assert "bad.pt2" in line


# ------------------------------------------------------------------ files interop and torch write


class Convolutional(torch.nn.Module):
    """Conv + BatchNorm (integer buffer), a non-contiguous buffer, tied weights, a constant, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 4 * 4, 4)
        self.head = torch.nn.Linear(4, 4)
        self.tied = torch.nn.Linear(4, 4, bias=False)
        self.tied.weight = self.head.weight
        self.register_buffer("scale", torch.arange(1.0, 5.0).reshape(4, 1).t())
        self.shift = torch.linspace(-1, 1, 4)

    def forward(self, x: torch.Tensor):
        y = torch.relu(self.bn(self.conv(x)))
        y = self.fc(y.flatten(1)) * self.scale + self.shift
        return self.tied(self.head(y)).softmax(-1), y.argmax(1)


class Attention(torch.nn.Module):
    """A transformer-ish block: embedding, self-attention, a data-dependent torch.cond."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.emb = torch.nn.Embedding(10, 8)
        self.qkv = torch.nn.Linear(8, 24)
        self.norm = torch.nn.LayerNorm(8)

    def forward(self, tokens: torch.Tensor):
        h = self.emb(tokens)
        q, k, v = self.qkv(h).chunk(3, -1)
        att = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, -1) @ v
        out = self.norm(h + att)
        return torch.cond(out.sum() > 0, lambda t: t * 2, lambda t: t - 1, (out,))


@pytest.mark.parametrize(("module", "example", "dims"), [
    (Convolutional, lambda: torch.randn(2, 3, 4, 4), {"x": {0: torch.export.Dim("n", min=1, max=64)}}),
    (Attention, lambda: torch.randint(0, 10, (2, 5)), {"tokens": {1: torch.export.Dim("t", min=2, max=32)}}),
    # Dim.DYNAMIC marks the example tensors with attributes: torch.save pickles them with _rebuild_from_type_v2.
    (Convolutional, lambda: torch.randn(2, 3, 4, 4), {"x": {0: torch.export.Dim.DYNAMIC}}),
])
def test_programs_torch_saves_load_and_compute_the_same(tmp_path, module, example, dims):
    from interop_torch.loading import load_program

    model = module().eval()
    program = torch.export.export(model, (example(),), dynamic_shapes=dims)
    path = tmp_path / "m.pt2"
    torch.export.save(program, str(path))
    loaded = load_program(path).program
    reference = torch.export.load(str(path))
    assert str(loaded.graph) == str(reference.graph)
    for ours, theirs in ((loaded.state_dict, reference.state_dict), (loaded.constants, reference.constants)):
        assert ours.keys() == theirs.keys()
        for name in ours:
            a, b = ours[name], theirs[name]
            assert (type(a), a.dtype, a.shape, a.stride(), a.requires_grad) == \
                   (type(b), b.dtype, b.shape, b.stride(), b.requires_grad), name
            assert torch.equal(a.detach(), b.detach()), name
    with torch.no_grad():
        for _ in range(2):
            x = example()
            for got, want in zip(loaded.module()(x), model(x)):
                assert torch.equal(got, want)


def test_interop_saved_program_runs_unchanged(good):
    """save_program's file through interop's torch runtime (the CLI path is test_guard_code_is_never_executed)."""
    from interop_torch.runtime import load

    session = load(good[0])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    with torch.no_grad():
        want = Tiny().eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)
    assert [s.name for s in session.inputs] == ["x"] and [s.name for s in session.outputs] == ["y"]
