"""Each interpreter kernel against coremltools' own value inference of the same MIL op.

A one-op program is built on constant inputs with ``mb.program``; coremltools
computes the op's value while building it, and the interpreter evaluates the
same op with its numpy kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from interp_helpers import interpreter_and_value_inference, rng  # noqa: E402

R = rng(1)
A = R.standard_normal((2, 3, 4)).astype(np.float32)
B = R.standard_normal((2, 3, 4)).astype(np.float32)
POS = (np.abs(A) + 0.1).astype(np.float32)
UNIT = np.clip(A / 4, -0.9, 0.9).astype(np.float32)
M1 = R.standard_normal((3, 4)).astype(np.float32)
M2 = R.standard_normal((4, 5)).astype(np.float32)
IMG = R.standard_normal((1, 8, 4, 6)).astype(np.float32)
INTS = np.array([[3, -1, 4], [1, -5, 9]], dtype=np.int32)
BOOLS = A > 0

CASES = {
    # elementwise binary
    "add": lambda: mb.add(x=A, y=B),
    "sub": lambda: mb.sub(x=A, y=B),
    "mul": lambda: mb.mul(x=A, y=B),
    "real_div": lambda: mb.real_div(x=A, y=POS),
    "floor_div": lambda: mb.floor_div(x=A, y=POS),
    "mod": lambda: mb.mod(x=A, y=POS),
    "pow": lambda: mb.pow(x=POS, y=B),
    "maximum": lambda: mb.maximum(x=A, y=B),
    "minimum": lambda: mb.minimum(x=A, y=B),
    "equal": lambda: mb.equal(x=INTS, y=np.int32(1)),
    "not_equal": lambda: mb.not_equal(x=INTS, y=np.int32(1)),
    "greater": lambda: mb.greater(x=A, y=B),
    "greater_equal": lambda: mb.greater_equal(x=A, y=B),
    "less": lambda: mb.less(x=A, y=B),
    "less_equal": lambda: mb.less_equal(x=A, y=B),
    "logical_and": lambda: mb.logical_and(x=BOOLS, y=B > 0),
    "logical_or": lambda: mb.logical_or(x=BOOLS, y=B > 0),
    "logical_xor": lambda: mb.logical_xor(x=BOOLS, y=B > 0),
    "broadcast_add": lambda: mb.add(x=A, y=M1[0]),
    # elementwise unary
    "abs": lambda: mb.abs(x=A),
    "acos": lambda: mb.acos(x=UNIT),
    "asin": lambda: mb.asin(x=UNIT),
    "atan": lambda: mb.atan(x=A),
    "atanh": lambda: mb.atanh(x=UNIT),
    "ceil": lambda: mb.ceil(x=A),
    "floor": lambda: mb.floor(x=A),
    "round": lambda: mb.round(x=A * 3),
    "sign": lambda: mb.sign(x=A),
    "clip": lambda: mb.clip(x=A, alpha=np.float32(-0.5), beta=np.float32(0.5)),
    "cos": lambda: mb.cos(x=A),
    "cosh": lambda: mb.cosh(x=A),
    "sin": lambda: mb.sin(x=A),
    "sinh": lambda: mb.sinh(x=A),
    "tan": lambda: mb.tan(x=UNIT),
    "tanh": lambda: mb.tanh(x=A),
    "erf": lambda: mb.erf(x=A),
    "exp": lambda: mb.exp(x=A),
    "exp2": lambda: mb.exp2(x=A),
    "inverse": lambda: mb.inverse(x=POS),
    "log": lambda: mb.log(x=POS),
    "rsqrt": lambda: mb.rsqrt(x=POS),
    "sqrt": lambda: mb.sqrt(x=POS),
    "square": lambda: mb.square(x=A),
    "threshold": lambda: mb.threshold(x=A, alpha=np.float32(0.2)),
    "logical_not": lambda: mb.logical_not(x=BOOLS),
    "cast_fp16": lambda: mb.cast(x=A, dtype="fp16"),
    "cast_int32": lambda: mb.cast(x=A * 3, dtype="int32"),
    "cast_bool": lambda: mb.cast(x=INTS, dtype="bool"),
    # activations
    "relu": lambda: mb.relu(x=A),
    "relu6": lambda: mb.relu6(x=A * 8),
    "leaky_relu": lambda: mb.leaky_relu(x=A, alpha=np.float32(0.1)),
    "prelu": lambda: mb.prelu(x=IMG, alpha=np.linspace(0.1, 0.8, 8).astype(np.float32)),
    "elu": lambda: mb.elu(x=A, alpha=np.float32(0.7)),
    "clamped_relu": lambda: mb.clamped_relu(x=A * 4, alpha=np.float32(0.1), beta=np.float32(2.0)),
    "thresholded_relu": lambda: mb.thresholded_relu(x=A, alpha=np.float32(0.3)),
    "linear_activation": lambda: mb.linear_activation(x=A, alpha=np.float32(2.0), beta=np.float32(-1.0)),
    "scaled_tanh": lambda: mb.scaled_tanh(x=A, alpha=np.float32(1.5), beta=np.float32(0.5)),
    "sigmoid": lambda: mb.sigmoid(x=A * 5),
    "sigmoid_hard": lambda: mb.sigmoid_hard(x=A * 5, alpha=np.float32(0.2), beta=np.float32(0.5)),
    "softplus": lambda: mb.softplus(x=A * 5),
    "softplus_parametric": lambda: mb.softplus_parametric(
        x=IMG, alpha=np.linspace(0.5, 1.2, 8).astype(np.float32), beta=np.linspace(0.3, 2, 8).astype(np.float32)
    ),
    "softsign": lambda: mb.softsign(x=A),
    "gelu_exact": lambda: mb.gelu(x=A * 3, mode="EXACT"),
    "gelu_tanh": lambda: mb.gelu(x=A * 3, mode="TANH_APPROXIMATION"),
    "gelu_sigmoid": lambda: mb.gelu(x=A * 3, mode="SIGMOID_APPROXIMATION"),
    "softmax": lambda: mb.softmax(x=A * 4, axis=1),
    # linear algebra
    "linear": lambda: mb.linear(x=M1, weight=M2.T.copy(), bias=np.arange(5, dtype=np.float32)),
    "matmul": lambda: mb.matmul(x=M1, y=M2),
    "matmul_transposed": lambda: mb.matmul(x=M1.T.copy(), y=M2.T.copy(), transpose_x=True, transpose_y=True),
    "einsum": lambda: mb.einsum(values=(A, np.transpose(B, (2, 1, 0)).copy()), equation="chw,whu->chu"),
    # reductions
    **{
        name: (lambda name=name: getattr(mb, name)(x=POS, axes=[1, -1], keep_dims=keep))
        for name, keep in [
            ("reduce_sum", False),
            ("reduce_mean", True),
            ("reduce_prod", False),
            ("reduce_max", True),
            ("reduce_min", False),
            ("reduce_sum_square", False),
            ("reduce_l1_norm", True),
            ("reduce_l2_norm", False),
            ("reduce_log_sum", False),
            ("reduce_log_sum_exp", True),
        ]
    },
    "reduce_argmax": lambda: mb.reduce_argmax(x=A, axis=2, keep_dims=True),
    "reduce_argmin": lambda: mb.reduce_argmin(x=A, axis=-1),
    # shape manipulation
    "reshape": lambda: mb.reshape(x=A, shape=[4, -1]),
    "transpose": lambda: mb.transpose(x=A, perm=[2, 0, 1]),
    "expand_dims": lambda: mb.expand_dims(x=A, axes=[0, -1]),
    "squeeze": lambda: mb.squeeze(x=A[:, :1], axes=[1]),
    "reverse": lambda: mb.reverse(x=A, axes=[0, 2]),
    "slice_by_index": lambda: mb.slice_by_index(
        x=A, begin=[0, 2, 3], end=[2, 0, 0], stride=[1, -1, -2], begin_mask=[False, False, False],
        end_mask=[False, True, True], squeeze_mask=[False, False, False],
    ),
    "slice_by_index_squeeze": lambda: mb.slice_by_index(
        x=A, begin=[1, 0, 1], end=[2, 3, 3], squeeze_mask=[True, False, False]
    ),
    "slice_by_size": lambda: mb.slice_by_size(x=A, begin=[0, 1, -3], size=[-1, 2, 2]),
    "concat": lambda: mb.concat(values=[A, B], axis=-1),
    "split": lambda: mb.split(x=A, split_sizes=[1, 3], axis=2),
    "split_even": lambda: mb.split(x=A, num_splits=2, axis=2),
    "stack": lambda: mb.stack(values=[A, B], axis=1),
    "tile": lambda: mb.tile(x=A, reps=[1, 2, 3]),
    "pad_constant": lambda: mb.pad(x=A, pad=[1, 2, 0, 1], mode="constant", constant_val=np.float32(7.0)),
    "pad_reflect": lambda: mb.pad(x=A, pad=[1, 1, 2, 1], mode="reflect"),
    "pad_replicate": lambda: mb.pad(x=A, pad=[1, 1, 2, 1], mode="replicate"),
    "flatten2d": lambda: mb.flatten2d(x=A, axis=2),
    "identity": lambda: mb.identity(x=A),
    "shape": lambda: mb.shape(x=A),
    # tensor ops
    "fill": lambda: mb.fill(shape=np.array([2, 3], np.int32), value=np.float32(2.5)),
    "range_1d": lambda: mb.range_1d(start=np.float32(1.0), end=np.float32(4.0), step=np.float32(0.5)),
    "band_part": lambda: mb.band_part(x=R.standard_normal((4, 5)).astype(np.float32), lower=1, upper=2),
    "cumsum": lambda: mb.cumsum(x=A, axis=1),
    "non_zero": lambda: mb.non_zero(x=INTS),
    "argsort": lambda: mb.argsort(x=A, axis=-1, ascending=True),
    "topk": lambda: mb.topk(x=A, k=2, axis=-1),
    "topk_ascending": lambda: mb.topk(x=A, k=3, axis=1, ascending=True),
    "select": lambda: mb.select(cond=BOOLS, a=A, b=B),
    # gather / scatter
    "gather": lambda: mb.gather(x=A, indices=np.array([2, 0], np.int32), axis=1),
    "gather_negative": lambda: mb.gather(x=A, indices=np.array([[-1, 0]], np.int32), axis=2),
    "gather_batch_dims": lambda: mb.gather(x=A, indices=np.array([[1, 0], [2, 2]], np.int32), axis=1, batch_dims=1),
    "gather_along_axis": lambda: mb.gather_along_axis(x=A, indices=np.array(R.integers(0, 3, (2, 2, 4)), np.int32), axis=1),
    "scatter_along_axis": lambda: mb.scatter_along_axis(
        data=A, indices=np.array([[[2, 0, 1, 1]], [[0, 0, 2, 1]]], np.int32),
        updates=np.ones((2, 1, 4), np.float32), axis=1, mode="update",
    ),
    "l2_norm": lambda: mb.l2_norm(x=IMG, epsilon=np.float32(1e-6)),
    "fill_like": lambda: mb.fill_like(ref_tensor=A, value=np.float32(3.0)),
    "quantize": lambda: mb.quantize(input=A, scale=np.float32(0.1), zero_point=np.int8(2), output_dtype="int8"),
}

# Ops that exist only in later opsets.
LATER_OPSET_CASES = {
    "slice_update": (
        lambda: mb.slice_update(
            x=A, update=np.ones((2, 1, 4), np.float32), begin=np.array([0, 1, 0], np.int32),
            end=np.array([2, 2, 4], np.int32),
        ),
        "iOS18",
    ),
    "scaled_dot_product_attention": (lambda: mb.scaled_dot_product_attention(query=A, key=B, value=A), "iOS18"),
}


@pytest.mark.parametrize("case", sorted(CASES) + sorted(LATER_OPSET_CASES))
def test_kernel_matches_coremltools_value_inference(case):
    build, opset = (CASES[case], "iOS17") if case in CASES else LATER_OPSET_CASES[case]
    ours, expected = interpreter_and_value_inference(build, opset)
    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected):
        assert theirs is not None, f"coremltools has no value inference for {case}; test it elsewhere"
        theirs = np.asarray(theirs)
        assert mine.shape == theirs.shape, case
        if np.issubdtype(theirs.dtype, np.floating):
            np.testing.assert_allclose(mine.astype(np.float64), theirs.astype(np.float64), rtol=2e-6, atol=2e-6)
        else:
            np.testing.assert_array_equal(mine, theirs)
