"""Kernel of the iOS18 ``scaled_dot_product_attention`` op."""

from __future__ import annotations

import numpy as np

from .activation import softmax
from .linear import parallel_matmul
from .table import kernel


@kernel("scaled_dot_product_attention")
def scaled_dot_product_attention(ctx, query, key, value, attn_mask=None):
    scores = parallel_matmul(query, np.swapaxes(key, -1, -2)) / np.sqrt(np.shape(query)[-1])
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        # A boolean mask keeps True positions; a float mask is added to the scores.
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + mask
    return parallel_matmul(softmax(ctx, scores, axis=-1), value)
