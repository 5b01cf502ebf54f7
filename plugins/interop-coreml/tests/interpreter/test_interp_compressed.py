"""Compressed-weight models (coremltools' own palettization and linear quantization), saved and re-read.

The decompressed weights the interpreter computes for each constexpr op are
compared with coremltools' own ``decompress`` of the same op, and the model's
output with PyTorch's within the compression error.
"""

from __future__ import annotations

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
torch = pytest.importorskip("torch")
from coremltools.optimize import coreml as cto  # noqa: E402
from torch import nn  # noqa: E402

from interop_coreml.interpreter import load_program  # noqa: E402


def _coremltools_decompressions(path):
    """{output var name: coremltools' own decompressed value} for every constexpr op of the saved model."""
    from interop_coreml.interpreter.loading import load_saved_model

    saved = load_saved_model(path)
    results = {}
    for op in saved.program.functions["main"].operations:
        if op.op_type.startswith("constexpr_"):
            values = {name: var.val for name, var in op.inputs.items()}
            op_class = type(op)
            parameters = op_class.decompress.__code__.co_varnames[: op_class.decompress.__code__.co_argcount]
            results[op.outputs[0].name] = op_class.decompress(**{p: values.get(p) for p in parameters})
    return results


CONFIGS = {
    "palettize-iOS16": (ct.target.iOS16, cto.OpPalettizerConfig(nbits=4, mode="uniform", weight_threshold=64)),
    "palettize-grouped-iOS18": (
        ct.target.iOS18,
        cto.OpPalettizerConfig(nbits=4, mode="uniform", granularity="per_grouped_channel", group_size=8,
                               weight_threshold=64),
    ),
    "int8-iOS16": (ct.target.iOS16, cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=64)),
    "int8-iOS18": (ct.target.iOS18, cto.OpLinearQuantizerConfig(mode="linear", weight_threshold=64)),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compressed_weights_match_coremltools_decompression(tmp_path, name):
    target, op_config = CONFIGS[name]
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    example = torch.randn(3, 16)
    mlmodel = ct.convert(torch.jit.trace(model, example), inputs=[ct.TensorType(name="x", shape=example.shape)],
                         convert_to="mlprogram", compute_precision=ct.precision.FLOAT32,
                         minimum_deployment_target=target)
    config = cto.OptimizationConfig(global_config=op_config)
    if "palettize" in name:
        compressed = cto.palettize_weights(mlmodel, config)
    else:
        compressed = cto.linear_quantize_weights(mlmodel, config)
    path = tmp_path / "compressed.mlpackage"
    compressed.save(str(path))

    expected_weights = _coremltools_decompressions(path)
    assert expected_weights, "compression produced no constexpr op"
    program = load_program(path)
    outputs = program.run({"x": example.numpy()}, capture=list(expected_weights))
    for var_name, expected in expected_weights.items():
        np.testing.assert_allclose(outputs[var_name].astype(np.float32), np.asarray(expected, np.float32),
                                   rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        reference = model(example).numpy()
    (output,) = program.outputs
    assert np.abs(outputs[output.name] - reference).max() < 0.1 * np.abs(reference).max()
