"""``--compress int8|palettize8|palettize4``: weights compressed with coremltools.optimize, judged by ``interop check``.

A feed-forward block (Linear 64→256, GELU, Linear 256→64, LayerNorm, no residual, so that two
seeds give unrelated functions; weights above coremltools'
2,048-element threshold) is exported to ONNX, converted with each compression and checked
against the ONNX model at the compression's default tolerances; a copy of a different network
compressed the same way must fail those tolerances.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch
from torch import nn

from interop_coreml.onnx2mil.compress import kmeans_palette

from .conftest import torch_to_onnx

#: The MIL op that stores each kind of compressed weight (coremltools 9, iOS16 target).
CONSTEXPR_OP = {"int8": "constexpr_affine_dequantize", "palettize8": "constexpr_lut_to_dense",
                "palettize4": "constexpr_lut_to_dense"}


def test_kmeans_palette_is_a_lloyd_fixed_point():
    weight = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    for nbits in (4, 8):
        lut, indices = kmeans_palette(weight, nbits)
        assert lut.shape == (1 << nbits,) and lut.dtype == np.float32 and indices.dtype == np.uint8
        flat = weight.reshape(-1)
        # each value sits at its nearest entry, each entry is the mean of its values
        nearest = np.argmin(np.abs(flat[:, None] - lut[None, :]), axis=1)
        np.testing.assert_array_equal(np.abs(flat - lut[indices]), np.abs(flat - lut[nearest]))
        for entry in np.unique(indices):
            np.testing.assert_allclose(lut[entry], flat[indices == entry].mean(), rtol=1e-5, atol=1e-6)
        # better than coremltools' uniform table over [min, max]
        levels = np.linspace(flat.min(), flat.max(), 1 << nbits)
        uniform_error = np.mean((flat - levels[np.argmin(np.abs(flat[:, None] - levels), axis=1)]) ** 2)
        assert np.mean((flat - lut[indices]) ** 2) < 0.8 * uniform_error


def test_kmeans_palette_keeps_few_distinct_values_exactly():
    weight = np.array([[0.5, -1.0, 0.5], [2.0, -1.0, 0.25]], np.float32)
    lut, indices = kmeans_palette(weight, 4)
    np.testing.assert_array_equal(lut[indices].reshape(weight.shape), weight)


class FeedForward(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.up, self.down, self.norm = nn.Linear(64, 256), nn.Linear(256, 64), nn.LayerNorm(64)

    def forward(self, x):
        return self.norm(self.down(nn.functional.gelu(self.up(x))))


@pytest.fixture(scope="module")
def feed_forward(tmp_path_factory) -> dict[int, pathlib.Path]:
    folder = tmp_path_factory.mktemp("compress")
    paths = {}
    for seed in (0, 1):
        paths[seed] = folder / f"ff{seed}.onnx"
        torch_to_onnx(FeedForward(seed), torch.randn(2, 64), paths[seed])
    return paths


def _ops(package: pathlib.Path):
    """(the MIL op types of the saved program, its spec)."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    return {op.type for block in spec.mlProgram.functions["main"].block_specializations.values()
            for op in block.operations}, spec


def _weight_bytes(package: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in package.rglob("weight.bin"))


@pytest.mark.parametrize("compress", ["int8", "palettize8", "palettize4"])
def test_compressed_copy_passes_its_default_tolerance_and_a_wrong_one_fails(compress, feed_forward, tmp_path,
                                                                            run_cli):
    plain, package, wrong = tmp_path / "plain.mlpackage", tmp_path / "c.mlpackage", tmp_path / "wrong.mlpackage"
    assert run_cli("convert", feed_forward[0], "-o", plain)[0] == 0
    code, _, err = run_cli("convert", feed_forward[0], "-o", package, "--compress", compress)
    assert code == 0, err
    ops, spec = _ops(package)
    assert CONSTEXPR_OP[compress] in ops, ops
    assert spec.specificationVersion >= 7  # iOS16: the default iOS15 target was raised
    assert spec.description.metadata.userDefined["interop.weight_compression"] == compress
    bits = 8 if compress != "palettize4" else 4
    assert _weight_bytes(package) < _weight_bytes(plain) * (bits / 32 + 0.1)

    report = tmp_path / "check.json"
    code, out, err = run_cli("check", feed_forward[0], package, "--json-file", report)
    assert code == 0, out + err
    (pair,) = json.loads(report.read_text())["pairs"]
    assert pair["precision"] == compress
    assert f"weights compressed as {compress}" in out + err
    (output,) = pair["outputs"]
    assert output["max_abs"] > 1e-4  # the weights did change: not an uncompressed copy

    # The same compression of another network is caught at the same default tolerance.
    assert run_cli("convert", feed_forward[1], "-o", wrong, "--compress", compress)[0] == 0
    code, out, err = run_cli("check", feed_forward[0], wrong, "--oracle", "none")
    assert code == 1, out + err


def test_compression_with_fp16_compute_is_judged_by_the_compression(feed_forward, tmp_path, run_cli):
    package = tmp_path / "c.mlpackage"
    assert run_cli("convert", feed_forward[0], "-o", package, "--compress", "int8", "--precision", "fp16")[0] == 0
    report = tmp_path / "check.json"
    code, out, err = run_cli("check", feed_forward[0], package, "--json-file", report)
    assert code == 0, out + err
    assert json.loads(report.read_text())["pairs"][0]["precision"] == "int8"
