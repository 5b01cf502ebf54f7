"""ONNX <-> Core ML work imports neither TensorFlow nor PyTorch, even through coremltools.

Each probe runs in a fresh interpreter (what a user's command starts from) and reports
which heavy modules ended up in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import numpy as np  # noqa: E402

FRAMEWORKS = ("tensorflow", "keras", "torch", "transformers", "tf2onnx")


def _probe(code: str, timeout: float = 240) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line prefixed with RESULT:."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT:")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr
    return json.loads(lines[-1][len("RESULT:"):])


_CLI = """
import json, runpy, sys
sys.argv = ["interop", *{args!r}]
try:
    runpy.run_module("interop", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("RESULT:" + json.dumps({{"exit": code, "loaded": [m for m in {heavy!r} if m in sys.modules],
                               "coremltools": "coremltools" in sys.modules}}))
"""


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory) -> str:
    """The reference MLP's shape (2 -> Dense 64 ReLU -> Dense 3) with random weights."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
        for name, shape in (("w1", (2, 64)), ("b1", (64,)), ("w2", (64, 3)), ("b2", (3,)))
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=weights,
    )
    path = tmp_path_factory.mktemp("light") / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.mark.slow
def test_onnx_to_coreml_convert_and_check_import_no_framework(mlp_onnx):
    package = mlp_onnx.replace(".onnx", ".mlpackage")
    converted = _probe(_CLI.format(args=["convert", mlp_onnx, "-o", package], heavy=FRAMEWORKS))
    assert converted == {"exit": 0, "loaded": [], "coremltools": True}

    checked = _probe(_CLI.format(args=["check", mlp_onnx, package, "--quiet"], heavy=FRAMEWORKS))
    assert checked == {"exit": 0, "loaded": [], "coremltools": True}


@pytest.mark.slow
def test_frameworks_import_normally_after_coremltools():
    """A Keras or PyTorch model later in the same process still gets its real framework."""
    result = _probe("""
        import importlib.util, json, sys
        from interop_coreml.coremltools_import import import_coremltools
        ct = import_coremltools()
        kept_out = [m for m in ("torch", "tensorflow") if m in sys.modules]
        import coremltools._deps as deps
        import torch
        from coremltools.converters.mil import Builder as mb
        from coremltools.converters.mil.mil import types

        @mb.program(input_specs=[mb.TensorSpec(shape=(2,), dtype=types.fp32)])
        def prog(x):
            return mb.relu(x=x)

        print("RESULT:" + json.dumps({
            "kept_out": kept_out,
            "coremltools_saw_torch": deps._HAS_TORCH,
            "torch_works": float(torch.ones(3).sum()),
            "torch_spec": importlib.util.find_spec("torch") is not None,
            "blocked_left": [m for m, v in sys.modules.items() if v is None and m.split(".")[0] in ("torch", "tensorflow")],
            "mil_ops": [op.op_type for op in prog.functions["main"].operations],
        }))
    """)
    assert result == {
        "kept_out": [],
        "coremltools_saw_torch": False,
        "torch_works": 3.0,
        "torch_spec": True,
        "blocked_left": [],
        "mil_ops": ["relu"],
    }


@pytest.mark.slow
def test_a_framework_imported_first_is_seen_by_coremltools():
    """torch loaded before coremltools: coremltools uses it as usual; TensorFlow stays out."""
    result = _probe("""
        import json, sys
        import torch
        from interop_coreml.coremltools_import import import_coremltools
        import_coremltools()
        import coremltools._deps as deps
        print("RESULT:" + json.dumps({"torch": deps._HAS_TORCH, "tensorflow": "tensorflow" in sys.modules}))
    """)
    assert result == {"torch": True, "tensorflow": False}
