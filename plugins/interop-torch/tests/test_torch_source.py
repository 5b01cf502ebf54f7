"""The importer's two outputs on a small CNN: what it recovers, how torch-source behaves, how it is gated.

The model is built with onnx.helper (Conv -> BatchNormalization -> Relu -> Dropout ->
GlobalAveragePool -> Flatten -> Gemm, plus input normalisation and a Reshape by a constant
shape), so every test here runs in a few seconds on the real importer, torch and onnxruntime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import interop
from interop.plugin_api import ModelLoadError, UnsupportedModelError

from .conftest import ort_run, save, sgd_step, torch_run

TRUST_ENV = "INTEROP_TRUST_MODEL_CODE"


def small_cnn(dropout: bool = True) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(array), name)

    inits = [
        init("pixel_mean", np.array([0.5, 0.4, 0.3], np.float32).reshape(1, 3, 1, 1)),
        init("features.0.weight", rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3),
        init("features.0.bias", rng.standard_normal(8).astype(np.float32) * 0.1),
        init("features.1.weight", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        init("features.1.bias", rng.uniform(-0.2, 0.2, 8).astype(np.float32)),
        init("features.1.running_mean", rng.uniform(-0.2, 0.2, 8).astype(np.float32)),
        init("features.1.running_var", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
        init("flat_shape", np.array([0, -1], np.int64)),
        init("head.weight", rng.standard_normal((4, 8)).astype(np.float32) * 0.5),
        init("head.bias", rng.standard_normal(4).astype(np.float32) * 0.1),
        init("drop_ratio", np.array(0.3, np.float32)),
    ]
    nodes = [
        helper.make_node("Sub", ["image", "pixel_mean"], ["centred"], name="normalize"),
        helper.make_node("Conv", ["centred", "features.0.weight", "features.0.bias"], ["conv"], name="features.0",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "features.1.weight", "features.1.bias",
                                                "features.1.running_mean", "features.1.running_var"], ["bn"],
                         name="features.1", epsilon=1e-5, momentum=0.9),
        helper.make_node("Relu", ["bn"], ["relu"], name="features.2"),
    ]
    last = "relu"
    if dropout:
        nodes.append(helper.make_node("Dropout", ["relu", "drop_ratio"], ["dropped"], name="features.3"))
        last = "dropped"
    nodes += [
        helper.make_node("GlobalAveragePool", [last], ["pooled"], name="pool"),
        helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "head.weight", "head.bias"], ["logits"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="interop-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


#: The CNN's weights: conv 8*3*3*3 + 8, BatchNorm scale and shift 8 + 8, head 4*8 + 4.
WEIGHTS = 216 + 8 + 16 + 32 + 4


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("INTEROP_DEBUG", TRUST_ENV)}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "interop", *args], env=full_env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def cnn(workdir: Path) -> Path:
    return save(small_cnn(), workdir / "small_cnn.onnx")


@pytest.fixture(scope="module")
def cnn_src(cnn: Path, workdir: Path) -> Path:
    result = run_cli("convert", str(cnn), "-o", str(workdir / "small_cnn_src"), "--to", "torch-source")
    assert result.returncode == 0, result.stderr
    assert "note: 1 Dropout node(s) became nn.Dropout" in result.stderr
    return workdir / "small_cnn_src"


def test_import_recovers_layers_and_keeps_every_weight_trainable():
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(small_cnn())
    text = imported.source
    for layer in ("nn.Conv2d(3, 8, kernel_size=3, padding=1)", "nn.BatchNorm2d(8, eps=1e-05, momentum=0.1)",
                  "nn.ReLU()", "nn.Dropout(0.3)", "nn.AdaptiveAvgPool2d(1)", "nn.Linear(8, 4)"):
        assert layer in text, layer
    assert imported.weight_count == WEIGHTS == imported.trainable_count
    names = {key: entry.get("onnx") for key, entry in imported.parameter_sources.items()}
    assert names["features_0.weight"] == "features.0.weight" and names["head.weight"] == "head.weight"
    buffers = {key for key, entry in imported.parameter_sources.items() if entry["kind"] == "buffer"}
    # Input normalisation and running statistics are buffers; the Reshape's shape is no tensor at all.
    assert {"pixel_mean", "features_1.running_mean", "features_1.running_var"} <= buffers
    assert not any("flat_shape" in key for key in imported.parameter_sources)
    forward = text.split("def forward", 1)[1].splitlines()[1:]
    assert len(forward) == 9  # one line per ONNX node (8) and the return


def test_batchnorm_updates_running_statistics_in_train_mode_only():
    import torch

    from interop_torch.onnx_import import import_onnx

    model = small_cnn(dropout=False)
    imported = import_onnx(model)
    module = imported.module
    x = np.random.default_rng(3).standard_normal((5, 3, 16, 16)).astype(np.float32)
    module.eval()
    (eval_out,) = torch_run(module, {"image": x}, imported.input_names)
    np.testing.assert_allclose(eval_out, ort_run(model, {"image": x})[0], rtol=1e-5, atol=1e-5)
    bn = module.features_1
    before = bn.running_mean.clone()
    module.train()
    with torch.no_grad():
        centred = torch.from_numpy(x) - module.pixel_mean
        batch_mean = module.features_0(centred).mean(dim=(0, 2, 3))
        module(torch.from_numpy(x))
    # ONNX momentum 0.9 keeps 90% of the old statistic: torch's momentum 0.1 weighs the new batch.
    torch.testing.assert_close(bn.running_mean, 0.9 * before + 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
    module.eval()
    (after,) = torch_run(module, {"image": x}, imported.input_names)
    assert not np.allclose(after, eval_out)  # eval mode now normalises with the updated statistics


def test_pt2_loads_through_the_safe_loader_with_trainable_named_weights(cnn, workdir):
    import torch

    from interop_torch.loading import load_program

    pt2 = workdir / "small_cnn.pt2"
    interop.convert(cnn, pt2)
    loaded = load_program(pt2)
    assert loaded.input_names == ["image"] and loaded.output_names == ["logits"]
    module = loaded.program.module()
    params = dict(module.named_parameters())
    assert all(p.requires_grad for p in params.values())
    assert sum(p.numel() for p in params.values()) == WEIGHTS
    import zipfile

    with zipfile.ZipFile(pt2) as archive:
        record = json.loads(archive.read(next(n for n in archive.namelist() if n.endswith("interop_onnx_import.json"))))
    assert record["parameters"]["head.weight"]["onnx"] == "head.weight"
    assert record["weight_count"] == WEIGHTS
    # The batch stays dynamic, and the program computes what onnxruntime does.
    report = interop.check(cnn, pt2, batch_sizes=(1, 5))
    assert report.passed, report.format_table()
    before, after = sgd_step(module, [torch.randn(3, 3, 16, 16)], train=False)
    assert after < before


def test_torch_source_folder_is_readable_code_with_its_weights(cnn_src):
    assert sorted(p.name for p in cnn_src.iterdir()) == ["model.py", "torch-source.json", "weights.safetensors"]
    text = (cnn_src / "model.py").read_text()
    assert "class SmallCnn(nn.Module):" in text and "self.features_0 = nn.Conv2d(" in text
    assert 'model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))' in text
    config = json.loads((cnn_src / "torch-source.json").read_text())
    assert config["class"] == "SmallCnn" and config["inputs"][0]["shape"] == ["batch", 3, 16, 16]
    assert config["weight_count"] == WEIGHTS


def test_check_refuses_to_run_model_py_unless_asked(cnn, cnn_src, workdir):
    planted = workdir / "planted_src"
    shutil.copytree(cnn_src, planted)
    marker = workdir / "model_py_ran"
    code = (planted / "model.py").read_text()
    (planted / "model.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + code)
    refused = run_cli("check", str(cnn), str(planted))
    assert refused.returncode == 2, refused.stderr
    assert "refused: model.py is Python code" in refused.stderr and TRUST_ENV in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not marker.exists()  # detecting, sniffing and refusing the folder ran none of its code
    trusted = run_cli("check", str(cnn), str(planted), env={TRUST_ENV: "1"})
    assert trusted.returncode == 0, trusted.stderr + trusted.stdout
    assert marker.exists()  # with the opt-in, the folder's code is what ran
    assert not (planted / "__pycache__").exists()  # compiled from the checked bytes; no .pyc read or written


def test_convert_check_runs_the_code_it_just_wrote(cnn, workdir):
    result = run_cli("convert", str(cnn), "-o", str(workdir / "checked_src"), "--to", "torch-source", "--check")
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout + result.stderr


def test_force_replaces_only_a_torch_source_folder(cnn, cnn_src, workdir):
    mine = workdir / "my_folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused = run_cli("convert", str(cnn), "-o", str(mine), "--to", "torch-source", "--force")
    assert refused.returncode == 2 and (mine / "notes.txt").read_text() == "keep me"
    existing = workdir / "replace_src"
    shutil.copytree(cnn_src, existing)
    assert run_cli("convert", str(cnn), "-o", str(existing), "--to", "torch-source").returncode == 2
    forced = run_cli("convert", str(cnn), "-o", str(existing), "--to", "torch-source", "--force")
    assert forced.returncode == 0, forced.stderr


def test_sniff_refuses_links_and_bad_headers_without_running_code(cnn, cnn_src, workdir):
    from interop_torch.onnx_import.source import sniff

    assert sniff(cnn_src) is None
    linked = workdir / "linked_src"
    shutil.copytree(cnn_src, linked)
    (linked / "weights.safetensors").unlink()
    (linked / "weights.safetensors").symlink_to(cnn_src / "weights.safetensors")
    assert "symbolic link" in sniff(linked)
    broken = workdir / "broken_src"
    shutil.copytree(cnn_src, broken)
    (broken / "weights.safetensors").write_bytes((10**9).to_bytes(8, "little") + b"{}")
    assert "header" in sniff(broken)
    result = run_cli("check", str(cnn), str(broken), env={TRUST_ENV: "1"})
    assert result.returncode == 2 and "header" in result.stderr


def test_edited_model_loads_and_trains(cnn_src, workdir):
    import torch

    from interop_torch.onnx_import import load_torch_source

    edited = workdir / "edited_src"
    shutil.copytree(cnn_src, edited)
    code = (edited / "model.py").read_text()
    code = code.replace("        self.head = nn.Linear(8, 4)", "        self.head = nn.Linear(8, 4)\n"
                        "        self.head_dropout = nn.Dropout(0.5)")
    code = code.replace("logits = self.head(", "logits = self.head(self.head_dropout(")
    code = code.replace("self.head(self.head_dropout(flat)", "self.head(self.head_dropout(flat))")
    (edited / "model.py").write_text(code)
    module = load_torch_source(edited)
    assert isinstance(module.head_dropout, torch.nn.Dropout)
    before, after = sgd_step(module, [torch.randn(4, 3, 16, 16)])
    assert after < before
    with pytest.raises(ModelLoadError, match="do not fit"):
        (edited / "model.py").write_text(code.replace("nn.Linear(8, 4)", "nn.Linear(8, 3)"))
        load_torch_source(edited)
    assert load_torch_source(edited, strict=False) is not None  # a swapped head keeps its own initialisation


def test_unsupported_ops_are_listed_together_before_anything_is_written(workdir):
    nodes = [
        helper.make_node("RoiAlign", ["x", "rois", "idx"], ["a"], name="roi1"),
        helper.make_node("RoiAlign", ["x", "rois", "idx"], ["b"], name="roi2"),
        helper.make_node("Add", ["a", "b"], ["c"]),
        helper.make_node("MyOp", ["c"], ["y"], domain="com.example", name="custom"),
    ]
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8]),
        helper.make_tensor_value_info("rois", TensorProto.FLOAT, [2, 4]),
        helper.make_tensor_value_info("idx", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = save(model, workdir / "unsupported.onnx")
    from interop_torch.onnx_import import import_onnx

    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(model)
    assert "RoiAlign x2 (roi1, roi2" in error.value.message and "com.example.MyOp x1" in error.value.message
    for target in (["-o", str(workdir / "unsupported.pt2")], ["-o", str(workdir / "unsupported_src"), "--to",
                                                                 "torch-source"]):
        result = run_cli("convert", str(path), *target)
        assert result.returncode == 3, result.stderr
        assert "RoiAlign x2" in result.stderr and len(result.stderr.strip().splitlines()) == 2  # error + hint
        assert not Path(target[1]).exists()


def test_graph_without_dropout_says_so():
    from interop_torch.onnx_import import import_onnx

    imported = import_onnx(small_cnn(dropout=False))
    assert any("holds no Dropout" in note for note in imported.notes)
    assert "nn.Dropout" not in imported.source


def test_trainable_all_also_trains_input_normalisation(cnn, workdir):
    from interop_torch.onnx_import import import_onnx

    assert import_onnx(small_cnn(), trainable="all").trainable_count == WEIGHTS + 3  # pixel_mean joins
    result = run_cli("convert", str(cnn), "-o", str(workdir / "all_src"), "--to", "torch-source", "-O", "trainable=all")
    assert result.returncode == 0, result.stderr
    assert json.loads((workdir / "all_src" / "torch-source.json").read_text())["weight_count"] == WEIGHTS + 3
    refused = run_cli("convert", str(cnn), "-o", str(workdir / "bad_src"), "--to", "torch-source", "-O", "trainable=x")
    assert refused.returncode == 2 and "trainable" in refused.stderr


def test_a_failing_model_py_is_bad_input(cnn_src, workdir):
    from interop_torch.onnx_import import load_torch_source

    broken = workdir / "import_error_src"
    shutil.copytree(cnn_src, broken)
    (broken / "model.py").write_text("import module_that_is_not_there\n" + (broken / "model.py").read_text())
    with pytest.raises(ModelLoadError, match="running model.py failed: ModuleNotFoundError"):
        load_torch_source(broken)
    (broken / "model.py").write_text("def broken(:\n")
    with pytest.raises(ModelLoadError, match="does not compile"):
        load_torch_source(broken)
