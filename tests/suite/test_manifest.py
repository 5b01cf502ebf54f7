"""The suite manifest: validation errors point at the line, entries expand from globs and targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from interop.plugin_api import InteropError
from interop.plugin_registry import get_registry
from interop.suite import manifest as manifest_module
from interop.suite.tomllines import key_lines


def _load(folder: Path, text: str, name: str = "interop.toml", resolve: bool = True):
    (folder / name).write_text(text)
    loaded = manifest_module.load(folder / name)
    if resolve:
        manifest_module.plan_entries(loaded, get_registry())
    return loaded


@pytest.fixture
def models(tmp_path: Path, npmlp: Path) -> Path:
    shutil.copytree(npmlp, tmp_path / "iris.npmlp")
    (tmp_path / "zoo").mkdir()
    for name in ("a", "b"):
        shutil.copytree(npmlp, tmp_path / "zoo" / f"{name}.npmlp")
    return tmp_path


def test_entries_per_model_and_target_with_globs_and_golden(models: Path):
    loaded = _load(models, """
to = ["onnx"]
seed = 3
timeout = 30

[targets.onnx]
opset = 17

[[models]]
path = "iris.npmlp"
dataset = "iris"
golden = "golden/{stem}.npz"
tolerances = { logits = [1e-4, 1e-3] }

[[models]]
path = "zoo/*.npmlp"
timeout = 5
[models.targets.onnx]
atol = 0.5
""", resolve=False)
    manifest_module.plan_entries(loaded, get_registry(), update_golden=True)
    ids = [e.id for e in loaded.entries]
    assert ids == ["iris.npmlp[onnx]", "iris.npmlp[golden]", "zoo/a.npmlp[onnx]", "zoo/b.npmlp[onnx]"]
    first, golden, zoo_a = loaded.entries[0], loaded.entries[1], loaded.entries[2]
    assert first.target.options == {"opset": 17} and first.route == ["numpy-mlp", "onnx"]
    assert first.check == {"dataset": "iris", "seed": 3, "tolerances": {"logits": [1e-4, 1e-3]}}
    assert first.timeout == 30 and zoo_a.timeout == 5
    assert golden.target is None and golden.golden == models / "golden" / "iris.npz"
    assert zoo_a.target.tolerance == {"atol": 0.5} and zoo_a.target.options == {"opset": 17}
    assert first.line == 9 and zoo_a.line == 15


def test_pyproject_table(models: Path):
    loaded = _load(models, '[project]\nname = "x"\n\n[tool.interop.suite]\nto = "onnx"\n\n'
                           '[[tool.interop.suite.models]]\npath = "iris.npmlp"\n', name="pyproject.toml")
    assert [e.id for e in loaded.entries] == ["iris.npmlp[onnx]"]
    assert loaded.pyproject == (models / "pyproject.toml").resolve()
    assert manifest_module.find_manifest(models / "zoo") == models / "pyproject.toml"
    assert manifest_module.load(models).path == models / "pyproject.toml"
    (models / "interop.toml").write_text('[[models]]\npath = "iris.npmlp"\nto = ["onnx"]\n')
    assert manifest_module.find_manifest(models / "zoo") == models / "interop.toml"


BAD = [
    # (manifest text, line, words in the message, exit code)
    ('to = ["onnx"]\n\n[[models]]\npath = "iris.npmlp"\nsede = 1\n', 5, ["models[0]: unknown key sede"], 2),
    ('to = ["onnx"]\nseed = -1\n[[models]]\npath = "iris.npmlp"\n', 2, ["seed must be a non-negative integer"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\n[[models]]\npath = "zoo/a.npmlp"\n'
     'batch_sizes = [1, 0]\n', 6, ["models[1].batch_sizes", "positive"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "missing.onnx"\n', 3, ["missing.onnx does not exist"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "nothing/*.onnx"\n', 3, ["matches no file"], 2),
    ('to = 3\n[[models]]\npath = "iris.npmlp"\n', 1, ["to must be a target name"], 2),
    ('[[models]]\npath = "iris.npmlp"\n', 1, ["nothing to do"], 2),
    ('to = ["onnx"]\n[[models]]\nname = "x"\n', 2, ["no path"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\n\n[models.targets.onnx]\nopset = "17"\n', 6,
     ["option opset expects int"], 2),
    ('to = ["onnx"]\n[targets.onnx]\nopset = 17\nprecision = "fp16"\n[[models]]\npath = "iris.npmlp"\n', 4,
     ["option precision is not declared", "numpy-mlp -> onnx"], 2),
    ('to = ["onnx", "tflite"]\n[[models]]\npath = "iris.npmlp"\n', 1, ["unknown target format 'tflite'"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\nto = ["mxnet"]\n', 4, ["no converter route"], 3),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\ngolden = "g/{name}.npz"\n', 4,
     ["golden file", "does not exist"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\n[[models]]\npath = "iris.npmlp"\n', 5,
     ["listed twice (first at line 2)"], 2),
    ('to = ["onnx"]\nrange = {x = [1, 0]}\n[[models]]\npath = "iris.npmlp"\n', 2,
     ["range.x", "LOW must be smaller"], 2),
    ('to = ["onnx"]\ntolerances.logits = [1e-3, "x"]\n[[models]]\npath = "iris.npmlp"\n', 2,
     ["tolerances.logits[1] must be a number"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\ninputs = "in.npz"\n', 4, ["inputs file in.npz does not exist"], 2),
    ('models = "iris.npmlp"\n', 1, ["models must be an array of tables"], 2),
    ('to = ["coreml"]\n[targets.coreml]\nprecision = "fp16"\nmax_dynamic_dim = 0\n[[models]]\npath = "iris.npmlp"\n',
     4, ["max_dynamic_dim"], 2),
    ('to = ["onnx"]\n[targets.onnx]\nruntime = "onnxrt"\n[[models]]\npath = "iris.npmlp"\n', 3,
     ["unknown runtime 'onnxrt'", "iris.npmlp[onnx]"], 2),
    ('to = ["onnx"]\n[[models]]\npath = "iris.npmlp"\nruntimes = { onnx = "numpy-mlp" }\n', 4,
     ["runtime numpy-mlp does not run onnx models"], 2),
    ('to = ["onnx"]\ngolden = "g.npz"\n[[models]]\npath = "zoo/*.npmlp"\n', 2,
     ["models zoo/a.npmlp and zoo/b.npmlp would share the golden file"], 2),
    ('to = ["onnx"]\n[targets.onnx]\nerror_stat = { logits = "worst" }\n[[models]]\npath = "iris.npmlp"\n', 3,
     ["targets.onnx.error_stat.logits must be one of"], 2),
]


@pytest.mark.parametrize(("text", "line", "words", "code"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_manifest_points_at_the_line(models: Path, text: str, line: int, words: list[str], code: int):
    with pytest.raises(InteropError) as info:
        _load(models, text)
    message = info.value.message
    assert message.startswith(f"{models / 'interop.toml'}:{line}: "), message
    for word in words:
        assert word in message, message
    assert info.value.exit_code == code


def test_line_inside_pyproject(models: Path):
    with pytest.raises(InteropError) as info:
        _load(models, '[project]\nname = "x"\n[tool.interop.suite]\nto = ["onnx"]\n'
                      '[[tool.interop.suite.models]]\npath = "iris.npmlp"\ntimeout = 0\n', name="pyproject.toml")
    assert info.value.message.startswith(f"{models / 'pyproject.toml'}:7: ")
    assert "tool.interop.suite.models[0].timeout must be positive" in info.value.message


def test_toml_syntax_error_keeps_tomllib_position(models: Path):
    with pytest.raises(InteropError, match="line 2"):
        _load(models, 'to = ["onnx"]\n[[models]\n')


def test_key_lines_follow_tables_arrays_and_multiline_values():
    text = '''to = ["onnx",
  "coreml"]   # comment
doc = """
[[models]]
"""
[targets."coreml-fp16"]
format = "coreml"

[[models]]
path = 'a'

[[models]]
tolerances = { out = [1, 2] }
[models.targets.coreml]
atol = 1
list = [
  {path = "a"},
  {path = "b"}, "c",
]
'''
    lines = key_lines(text)
    assert lines[("to",)] == 1 and lines[("to", 1)] == 2 and lines[("doc",)] == 3
    assert lines[("targets", "coreml-fp16", "format")] == 7
    assert lines[("models", 0, "path")] == 10 and lines[("models", 1)] == 12
    assert lines[("models", 1, "tolerances")] == 13
    assert lines[("models", 1, "targets", "coreml", "atol")] == 15
    assert lines[("models", 1, "targets", "coreml", "list", 2)] == 18


def test_the_manifest_in_the_docs_is_valid(tmp_path: Path):
    """docs/suite.md's example manifest loads and resolves against the installed plugins."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "suite.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, flags=re.S).group(1)
    (tmp_path / "models" / "zoo").mkdir(parents=True)
    (tmp_path / "models" / "iris.keras").write_bytes(b"")
    for name in ("resnet50", "squeezenet"):
        (tmp_path / "models" / "zoo" / f"{name}.onnx").write_bytes(b"")
    loaded = _load(tmp_path, example, resolve=False)
    manifest_module.plan_entries(loaded, get_registry(), update_golden=True)
    assert [e.id for e in loaded.entries] == [
        "models/iris.keras[onnx]", "models/iris.keras[coreml]", "models/iris.keras[coreml-fp16]",
        "models/iris.keras[golden]", "models/zoo/resnet50.onnx[coreml]", "models/zoo/squeezenet.onnx[coreml]"]
    fp16 = loaded.entries[2].target
    assert fp16.format == "coreml" and fp16.options == {"precision": "fp16"}
    assert fp16.tolerance == {"atol": 1e-2, "rtol": 1e-2}
    assert loaded.entries[4].target.options == {"minimum_deployment_target": "iOS16", "max_dynamic_dim": 64}
