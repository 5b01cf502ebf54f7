"""The conformance kit and `interop check` give the same verdict: both use check's own comparison.

A stranger's plugin converts its format to ONNX; its converter is faithful, renames
the output (the way a converter naming everything ``output_0`` would), or is off by
5e-5. The kit and `interop check` must both pass the first and both fail the others,
and `interop.testing.compare_outputs` says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from interop import distributions
from interop.plugin_registry import discover
from interop.testing import compare_outputs
from interop.testing.conformance import check_plugin

DECLARATION = '''
from interop.plugin_api import Converter, Format, Plugin, Runtime

plugin = Plugin(
    name="agree", api_version=1,
    formats=(Format(name="agree", extensions=(".agree",)),),
    converters=(Converter(source="agree", target="onnx", impl="agree_impl:to_onnx", requires=("onnx",)),),
    runtimes=(Runtime(name="agree", formats=("agree",), load="agree_impl:load", engine="agree (numpy)"),),
)
'''
IMPLEMENTATION = '''
import json, os
import numpy as np

def _weights(path):
    data = json.loads(open(path).read())
    return np.asarray(data["w"], np.float32), np.asarray(data["b"], np.float32)

class Session:
    engine = "agree (numpy)"
    versions = {}
    def __init__(self, path):
        from interop.plugin_api import TensorSpec
        self.w, self.b = _weights(path)
        self.inputs = [TensorSpec("x", "float32", (None, 2))]
        self.outputs = [TensorSpec("y", "float32", (None, 3))]
    def run(self, feeds):
        return {"y": (np.asarray(feeds["x"], np.float32) @ self.w + self.b).astype(np.float32)}

def load(path):
    return Session(path)

def to_onnx(src, dst, options):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w, b = _weights(src)
    variant = os.environ.get("AGREE_VARIANT", "faithful")
    if variant == "off":
        b = b + np.float32(5e-5)
    out = "output_0" if variant == "renamed" else "y"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], [out])], "agree",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(dst))
'''


@pytest.fixture
def plugin_site(tmp_path: Path, fake_install: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = fake_install(tmp_path / "site", "interop-agree", {"agree": "agree_decl:plugin"},
                        {"agree_decl": DECLARATION, "agree_impl": IMPLEMENTATION})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # the kit loads the declaration in a fresh interpreter too
    distributions.forget()
    yield site
    distributions.forget()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "m.agree"
    # Small weights: outputs stay below ~0.05, so 5e-5 is beyond fp32's atol 1e-5 + rtol 2e-4·|r|.
    path.write_text(json.dumps({"w": (rng.standard_normal((2, 3)) * 1e-3).tolist(), "b": [0.0, 0.01, -0.01]}))
    return path


@pytest.mark.parametrize("variant, passes", [("faithful", True), ("renamed", False), ("off", False)])
def test_kit_and_check_agree(plugin_site: Path, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             variant: str, passes: bool) -> None:
    monkeypatch.setenv("AGREE_VARIANT", variant)
    registry = discover()
    kit = check_plugin("agree", sample_models={"agree": model}, tmp_path=tmp_path / "kit", registry=registry)
    converter_failures = [why for what, why in kit.failures if what.startswith("converter agree -> onnx")]
    assert (not converter_failures) is passes, kit.summary()
    assert len(kit.failures) == (0 if passes else 1), kit.summary()

    converted = tmp_path / "m.onnx"
    interop.convert(model, converted, registry=registry)
    report = interop.check(str(model), [str(converted)], registry=registry, project_config=False)
    assert report.passed is passes, report.format_table()
    if variant == "renamed":
        assert "no output named y" in converter_failures[0]
    if variant == "off":
        assert "beyond atol 1e-05" in converter_failures[0]


def test_compare_outputs_is_checks_rule() -> None:
    reference = {"y": np.array([[0.01, 0.02, -0.03]], np.float32)}
    assert compare_outputs(reference, {"y": reference["y"] + np.float32(1e-6)}).passed
    off = compare_outputs(reference, {"y": reference["y"] + np.float32(5e-5)})
    assert not off.passed and "beyond atol 1e-05 + rtol 0.0002" in off.summary()
    renamed = compare_outputs(reference, {"output_0": reference["y"]})
    assert not renamed.passed
    assert [r.name for r in renamed.failures] == ["y", "output_0"]  # missing, and extra
    assert compare_outputs(reference, {"y": reference["y"] + np.float32(5e-5)}, precision="fp16").passed
    assert compare_outputs(reference, {"y": reference["y"] + np.float32(5e-5)}, atol=1e-4).passed
    assert not compare_outputs({}, {}).passed  # nothing compared is not a pass


def test_compare_outputs_takes_rank_0_integer_outputs() -> None:
    # An ArgMax over a vector gives a scalar index; comparing it crashed (numpy returns a scalar there).
    same = compare_outputs({"i": np.array(3, np.int64)}, {"i": np.array(3, np.int32)})
    assert same.passed, same.summary()
    assert not compare_outputs({"i": np.array(3, np.int64)}, {"i": np.array(4, np.int64)}).passed
