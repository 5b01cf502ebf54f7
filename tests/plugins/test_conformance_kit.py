"""The conformance kit catches what a plugin gets wrong, naming the declaration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interop.testing.conformance import assert_plugin_conforms, check_plugin

# A plugin with two faults: its declaration imports onnxruntime, and its converter
# writes an ONNX model computing 3x where its own runtime computes 2x.
FAULTY = '''
import onnxruntime  # a heavy import at discovery time: the kit must notice
import json
from pathlib import Path
import numpy as np
from interop.plugin_api import Converter, Format, Plugin, Runtime, TensorSpec

plugin = Plugin(
    name="faulty", api_version=1,
    formats=(Format(name="faulty", extensions=(".faulty",), sniff="faulty_plugin:sniff"),),
    converters=(Converter(source="faulty", target="onnx", impl="faulty_plugin:to_onnx"),),
    runtimes=(Runtime(name="faulty", formats=("faulty",), load="faulty_plugin:load"),),
)

def sniff(path):
    return None if Path(path).read_bytes().startswith(b"{") else "not JSON"

class Session:
    engine = "faulty"
    inputs = [TensorSpec("x", "float32", (None, 2))]
    outputs = [TensorSpec("y", "float32", (None, 2))]
    versions = {}
    def run(self, feeds):
        return {"y": feeds["x"] * 2}

def load(path):
    return Session()

def to_onnx(src, dst, options):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    three = numpy_helper.from_array(np.array(3.0, np.float32), "three")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "three"], ["y"])], "faulty",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], initializer=[three])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(dst))
'''


@pytest.fixture
def faulty_installed(tmp_path: Path, fake_install: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = fake_install(tmp_path / "site", "interop-faulty", {"faulty": "faulty_plugin:plugin"},
                        {"faulty_plugin": FAULTY})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # for the kit's fresh-interpreter probe
    sample = tmp_path / "sample.faulty"
    sample.write_text(json.dumps({"any": "thing"}))
    return sample


def test_kit_names_each_broken_declaration(tmp_path: Path, faulty_installed: Path) -> None:
    report = check_plugin("faulty", sample_models={"faulty": faulty_installed}, tmp_path=tmp_path / "kit")
    failures = dict(report.failures)
    assert set(failures) == {"plugin faulty: declaration imports no heavy framework",
                             "converter faulty -> onnx"}
    assert "imported onnxruntime" in failures["plugin faulty: declaration imports no heavy framework"]
    assert "onnxruntime on onnx does not compute what faulty on faulty computes" in failures["converter faulty -> onnx"]
    assert "beyond atol 1e-05" in failures["converter faulty -> onnx"]  # interop check's own fp32 tolerance
    assert "runtime faulty on faulty" in report.passed
    assert "format faulty" in report.passed
    with pytest.raises(AssertionError, match=r"FAIL converter faulty -> onnx: AssertionError: onnxruntime on onnx does not .* output y: "):
        assert_plugin_conforms("faulty", sample_models={"faulty": faulty_installed},
                               tmp_path=tmp_path / "kit2")


def test_kit_reports_a_missing_sample_instead_of_guessing(tmp_path: Path, faulty_installed: Path) -> None:
    report = check_plugin("faulty", tmp_path=tmp_path / "kit")
    skipped = dict(report.skipped)
    assert "pass sample_models={'faulty': path}" in skipped["runtime faulty on faulty"]
    assert "format faulty" in skipped  # nothing that needs a sample passes without one
    assert "converter faulty -> onnx" not in report.passed


def test_kit_refuses_an_unknown_plugin(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="no installed plugin named 'nope'"):
        check_plugin("nope", tmp_path=tmp_path)


def test_kit_checks_a_plugin_object_that_is_not_installed(tmp_path: Path) -> None:
    """A Plugin object under development: checked against the installed ones, samples trained."""
    from interop.plugin_api import Plugin, Runtime

    draft = Plugin(name="draft", api_version=1, runtimes=(
        Runtime(name="draft-numpy", formats=("numpy-mlp",), load="interop_numpy_mlp.runtime:load"),))
    report = check_plugin(draft, tmp_path=tmp_path)
    assert report.passed == ["runtime draft-numpy on numpy-mlp"]  # sample from the numpy-mlp trainer
    assert [what for what, _ in report.skipped] == ["plugin draft: declaration imports no heavy framework"]
    assert (tmp_path / "trained-numpy-mlp.npmlp" / "mlp.json").is_file()
