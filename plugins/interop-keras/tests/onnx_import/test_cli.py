"""``interop convert x.onnx -o x.keras`` from the command line: notes, refusals, nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import helper

from .helpers import make_model


def _cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "INTEROP_DEBUG"}
    return subprocess.run([sys.executable, "-m", "interop", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_unsupported_ops_are_listed_with_counts_before_anything_is_written(tmp_path):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Hardmax", ["x"], ["h1"], axis=1), helper.make_node("Hardmax", ["h1"], ["h2"], axis=1),
             helper.make_node("MeanVarianceNormalization", ["h2"], ["m"], axes=[1]),
             helper.make_node("Gemm", ["m", "w"], ["y"])]
    model = make_model(nodes, {"x": ["N", 5]}, ["y"], {"w": rng.standard_normal((5, 3)).astype(np.float32)})
    onnx.save(model, tmp_path / "m.onnx")
    done = _cli("convert", "m.onnx", "-o", "m.keras", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "MeanVarianceNormalization x1" in error[0] and "Hardmax x2" in error[0], done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_conversion_prints_its_notes(tmp_path):
    rng = np.random.default_rng(0)
    model = make_model([helper.make_node("Gemm", ["x", "w"], ["y"])], {"x": ["N", 3]}, ["y"],
                       {"w": rng.standard_normal((3, 2)).astype(np.float32)})
    onnx.save(model, tmp_path / "m.onnx")
    done = _cli("convert", "m.onnx", "-o", "m.keras", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "note: the ONNX graph has no Dropout" in done.stderr
    assert (tmp_path / "m.keras").is_file()


def test_an_import_goes_back_to_onnx_with_the_onnx_names(tmp_path):
    """ONNX names Keras cannot use ('in/put', 'out:0') survive onnx -> keras -> onnx, interop layers included."""
    import interop

    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "scale": rng.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float32), "pads": np.array([0, 0, 1, 2, 0, 0, 0, 1])}
    nodes = [helper.make_node("Conv", ["in/put", "w"], ["a"]), helper.make_node("LRN", ["a"], ["b"], size=3),
             helper.make_node("Mul", ["b", "scale"], ["c"]), helper.make_node("Pad", ["c", "pads"], ["d"]),
             helper.make_node("MaxPool", ["d"], ["out:0"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])]
    onnx.save(make_model(nodes, {"in/put": ["N", 3, 8, 8]}, ["out:0"], inits), tmp_path / "m.onnx")
    interop.convert(tmp_path / "m.onnx", tmp_path / "m.keras")
    interop.convert(tmp_path / "m.keras", tmp_path / "back.onnx")
    back = onnx.load(str(tmp_path / "back.onnx"))
    assert [i.name for i in back.graph.input] == ["in/put"] and [o.name for o in back.graph.output] == ["out:0"]
    report = interop.check(tmp_path / "m.onnx", [tmp_path / "m.keras", tmp_path / "back.onnx"], batch_sizes=(1, 3))
    assert report.passed, report.to_dict()
