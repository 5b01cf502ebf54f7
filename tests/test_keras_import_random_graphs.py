"""A fixed-seed slice of random ONNX graphs through the Keras importer, against onnxruntime.

The graphs come from the Core ML fuzzer's generator (valid graphs over many ops,
random shapes, symbolic dimensions), restricted to op types the importer has a
converter for. Each graph either imports and computes what onnxruntime computes,
or is refused with UnsupportedModelError (exit 3) naming the reason; any other
exception is an importer bug. The seeds 0-1,499 were run this way while the
importer was written (docs/training-elsewhere.md).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("onnxruntime")
generator = pytest.importorskip("interop_coreml.fuzz.generator")

SEEDS = range(60)


def _run_keras(model, onnx_model, feeds):
    inputs = model.input
    if isinstance(inputs, dict):
        args = {k: feeds[k] for k in inputs}
    else:
        args = [feeds[i.name] for i in onnx_model.graph.input]
        args = args[0] if len(args) == 1 else args
    out = model(args, training=False)
    names = [o.name for o in onnx_model.graph.output]
    if isinstance(out, dict):
        return [np.asarray(out[n]) for n in names]
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def test_random_graphs_import_or_are_refused_cleanly():
    import onnxruntime as ort

    from interop.plugin_api import UnsupportedModelError
    from interop_keras.onnx_import import import_onnx
    from interop_keras.onnx_import.ops import registered

    ops = sorted(set(generator.OPS) & set(registered()))
    imported = refused = 0
    problems = []
    for seed in SEEDS:
        case = generator.generate(seed, ops=ops, max_nodes=5, half=False)  # float32 graphs: fp32 tolerances
        try:
            session = ort.InferenceSession(case.model.SerializeToString(), providers=["CPUExecutionProvider"])
            expected = session.run(None, case.feeds)
        except Exception:  # noqa: BLE001 - a graph onnxruntime itself cannot run proves nothing
            continue
        try:
            result = import_onnx(case.model)
        except UnsupportedModelError:
            refused += 1
            continue
        imported += 1
        actual = _run_keras(result.model, case.model, case.feeds)
        for name, got, ref in zip([o.name for o in case.model.graph.output], actual, expected):
            if got.shape != ref.shape:
                problems.append(f"seed {seed} {case.op_types}: {name} shape {got.shape}, expected {ref.shape}")
            elif ref.dtype.kind == "f":
                scale = max(1.0, float(np.nanmax(np.abs(ref)))) if ref.size else 1.0
                if not np.allclose(got, ref, rtol=1e-4, atol=1e-5 * scale, equal_nan=True):
                    problems.append(f"seed {seed} {case.op_types}: {name} differs by "
                                    f"{float(np.nanmax(np.abs(got - ref))):.3g}")
            elif not np.array_equal(got, ref):
                problems.append(f"seed {seed} {case.op_types}: {name} differs")
    assert not problems, problems
    assert imported >= 40 and refused >= 1, (imported, refused)
