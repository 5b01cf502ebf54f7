"""Weight compression of a converted model (``--compress``), with coremltools.optimize.

``int8`` quantizes each weight linearly, symmetric around zero, with one scale per output
channel (``constexpr_affine_dequantize``, iOS16; ``constexpr_blockwise_shift_scale`` from
iOS18). ``palettize8`` / ``palettize4`` replace each weight by indices into a table of 256 / 16
values (``constexpr_lut_to_dense``), the table chosen by k-means over the weight's values, as
coremltools' default ``mode="kmeans"`` does. coremltools clusters with scikit-learn, which
interop does not depend on; a weight is one-dimensional data, where k-means needs no library:
:func:`kmeans_palette` runs Lloyd's iterations on the sorted values (each cluster a contiguous
run, its mean read from prefix sums), so an iteration costs a search of 2**nbits edges in the
sorted values, whatever the weight's size. Weights smaller than :data:`WEIGHT_THRESHOLD` elements
(biases, norms) stay as they are, as with coremltools' default. Compressed weights need iOS16: a lower deployment target is
raised to iOS16 by the driver.

The reference interpreter decompresses all three formats (interpreter/kernels/quantization.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The ``--compress`` values and the bits of one weight they keep.
COMPRESSIONS = {"int8": 8, "palettize8": 8, "palettize4": 4}
#: Weights with fewer elements stay uncompressed (coremltools' default threshold).
WEIGHT_THRESHOLD = 2048
#: Lloyd's iterations at most; they stop once no centroid moves (a few hundred on Gaussian weights).
#: One iteration costs O(2**nbits · log n) on the sorted values, so the bound costs little.
KMEANS_ITERATIONS = 10_000


def kmeans_palette(weight: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """(lut, indices): a 2**nbits-entry table minimising the squared error of ``weight``, and each
    element's index into it (the flattened weight's order, uint8).

    Lloyd's iterations move each entry to the mean of the values nearest to it until none moves.
    They start twice and keep the lower error: from the point density that is optimal for many
    entries (proportional to the cube root of the values' density, Panter and Dite), read from a
    histogram, and from evenly spaced values over [min, max] (coremltools' ``uniform`` table, so
    the result is never worse than it). With at most 2**nbits distinct values the table holds
    them exactly.
    """
    flat = weight.reshape(-1)
    size = 1 << nbits
    distinct = np.unique(flat)
    if distinct.size <= size:
        lut = np.zeros(size, dtype=weight.dtype)
        lut[: distinct.size] = distinct
        return lut, np.searchsorted(distinct, flat).astype(np.uint8)
    values = np.sort(flat.astype(np.float64))
    prefix = np.concatenate([[0.0], np.cumsum(values)])
    squares = np.concatenate([[0.0], np.cumsum(values * values)])

    def clusters(centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, sum, sum of squares) of the values nearest to each centroid (each a contiguous run of ``values``)."""
        cuts = np.concatenate([[0], np.searchsorted(values, (centroids[1:] + centroids[:-1]) / 2), [values.size]])
        return np.diff(cuts), prefix[cuts[1:]] - prefix[cuts[:-1]], squares[cuts[1:]] - squares[cuts[:-1]]

    def lloyd(centroids: np.ndarray) -> tuple[float, np.ndarray]:
        for _ in range(KMEANS_ITERATIONS):
            counts, sums, _ = clusters(centroids)
            moved = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
            if np.array_equal(moved, centroids):
                break
            centroids = moved
        counts, sums, sum_squares = clusters(centroids)
        # squared error per cluster: sum(x²) − 2·c·sum(x) + n·c²
        return float(np.sum(sum_squares - 2 * centroids * sums + counts * centroids ** 2)), centroids

    histogram, edges = np.histogram(values, bins=max(4 * size, 1024))
    density = np.cumsum(np.cbrt(histogram))
    companded = np.interp((np.arange(size) + 0.5) / size * density[-1], density, edges[1:])
    uniform = np.linspace(values[0], values[-1], size)
    _, centroids = min(lloyd(companded), lloyd(uniform), key=lambda result: result[0])
    boundaries = (centroids[1:] + centroids[:-1]) / 2
    indices = np.searchsorted(boundaries, flat.astype(np.float64)).astype(np.uint8)
    return centroids.astype(weight.dtype), indices


def optimization_config(compress: str) -> Any:
    """coremltools.optimize's configuration for one ``--compress`` value."""
    import coremltools.optimize.coreml as cto

    if compress == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                         weight_threshold=WEIGHT_THRESHOLD)
    else:
        nbits = COMPRESSIONS[compress]
        op = cto.OpPalettizerConfig(mode="custom", lut_function=lambda weight: kmeans_palette(weight, nbits),
                                    granularity="per_tensor", weight_threshold=WEIGHT_THRESHOLD)
    return cto.OptimizationConfig(global_config=op)


def compress_weights(mlmodel: Any, compress: str) -> Any:
    """The model with its weights compressed (a new MLModel; ``mlmodel`` is left as it was)."""
    import coremltools.optimize.coreml as cto

    config = optimization_config(compress)
    if compress == "int8":
        return cto.linear_quantize_weights(mlmodel, config)
    return cto.palettize_weights(mlmodel, config)
