"""A fixed-seed slice of random ONNX graphs through the torch importer, against onnxruntime.

The graphs come from the Core ML fuzzer's generator (valid graphs over many ops, random
shapes, symbolic dimensions), restricted to op types the importer has a converter for. Each
graph either imports and computes what onnxruntime computes, or is refused with
UnsupportedModelError naming the reason; anything else is an importer bug. Seeds 0-2,999
were run this way while the importer was written (docs/training-elsewhere.md).
"""

from __future__ import annotations

import numpy as np
import pytest

generator = pytest.importorskip("interop_coreml.fuzz.generator")

SEEDS = range(60)
#: onnxruntime divides 0 by 0 where the variance is 0; the spec (and the importer) adds 1e-9 first.
DEVIATING = {"MeanVarianceNormalization"}


def test_random_graphs_import_or_are_refused_cleanly():
    import onnxruntime as ort
    import torch

    from interop.plugin_api import UnsupportedModelError
    from interop_torch.onnx_import import import_onnx
    from interop_torch.onnx_import.ops import registered

    ops = sorted((set(generator.OPS) & set(registered())) - DEVIATING)
    imported = refused = 0
    problems = []
    for seed in SEEDS:
        case = generator.generate(seed, ops=ops, max_nodes=5, half=False)  # float32 graphs: fp32 tolerances
        try:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(case.model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            expected = session.run(None, case.feeds)
        except Exception:  # noqa: BLE001 - a graph onnxruntime itself cannot run proves nothing
            continue
        try:
            result = import_onnx(case.model)
        except UnsupportedModelError:
            refused += 1
            continue
        imported += 1
        with torch.no_grad():
            outputs = result.module.eval()(*[torch.from_numpy(np.asarray(case.feeds[n], order="C"))
                                             for n in result.input_names])
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        for name, got, ref in zip(result.output_names, [o.numpy() for o in outputs], expected):
            ref = np.asarray(ref)
            if got.shape != ref.shape:
                problems.append(f"seed {seed} {case.op_types}: {name} shape {got.shape}, expected {ref.shape}")
            elif ref.dtype.kind == "f":
                scale = max(1.0, float(np.nanmax(np.abs(ref)))) if ref.size and np.isfinite(ref).any() else 1.0
                if not np.allclose(got, ref, rtol=1e-4, atol=1e-5 * scale, equal_nan=True):
                    problems.append(f"seed {seed} {case.op_types}: {name} differs by "
                                    f"{float(np.nanmax(np.abs(got - ref))):.3g}")
            elif not np.array_equal(got.astype(ref.dtype), ref):
                problems.append(f"seed {seed} {case.op_types}: {name} differs")
    assert not problems, problems
    assert imported >= 50 and refused >= 1, (imported, refused)
