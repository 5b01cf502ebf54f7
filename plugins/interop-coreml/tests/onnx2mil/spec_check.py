"""Convert a helper-built ONNX graph, run it in the interpreter, and hold the result
against onnxruntime and onnx's ReferenceEvaluator (shape, dtype and values)."""

from __future__ import annotations

import itertools
import pathlib
import warnings

import numpy as np
import onnx

from .conftest import interpret, ort_run, save

_counter = itertools.count()
# ONNX int64 is int32 in Core ML, and a bool output is int32 (Core ML has no bool outputs;
# both documented); every other dtype must be ONNX's own.
_SAME_KIND = {np.dtype(np.int64): np.dtype(np.int32), np.dtype(np.bool_): np.dtype(np.int32)}


def reference_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = ReferenceEvaluator(model)
        return dict(zip([o.name for o in model.graph.output], session.run(None, feeds)))


def _compare(got: np.ndarray, expected: np.ndarray, who: str, name: str, rtol: float, atol: float) -> None:
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"{name}: shape {got.shape}, {who} says {expected.shape}"
    assert got.dtype in (expected.dtype, _SAME_KIND.get(expected.dtype)), (
        f"{name}: dtype {got.dtype}, {who} says {expected.dtype}")
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                               err_msg=f"{name} vs {who}")


def check_graph(model: onnx.ModelProto, feeds_list: list[dict[str, np.ndarray]], tmp_path: pathlib.Path,
                rtol: float = 1e-5, atol: float = 1e-6, reference: bool = True,
                onnxruntime: bool = True) -> list[dict[str, np.ndarray]]:
    """Assert the converted program agrees with onnxruntime and with the reference evaluator
    on every feed (either can be left out where it deviates from the spec or lacks the
    case); returns the program's outputs."""
    assert reference or onnxruntime
    path = save(model, tmp_path / f"spec{next(_counter)}.mlpackage")
    results = []
    for feeds in feeds_list:
        ours = interpret(path, feeds)
        runtimes = [("onnxruntime", ort_run(model, feeds))] if onnxruntime else []
        if reference:
            runtimes.append(("the reference evaluator", reference_run(model, feeds)))
        for who, expected in runtimes:
            for name, value in expected.items():
                _compare(np.asarray(ours[name]), value, who, name, rtol, atol)
        results.append(ours)
    return results
