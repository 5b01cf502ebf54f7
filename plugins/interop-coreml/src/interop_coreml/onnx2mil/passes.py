"""coremltools graph passes, with the unsound rewrites guarded.

``ct.convert`` runs coremltools' default MIL pipeline and then its ML Program
backend pipeline. A few of those passes rewrite a pattern without checking
every condition the rewrite needs, and the model then computes another
function (docs/coreml.md, "coremltools passes interop disables", has a minimal
case for each). :func:`pass_pipeline` is the default pipeline with each such
pass swapped for a subclass that first checks the match is safe and otherwise
leaves the ops alone, plus :class:`keep_pow2_sqrt`, which stops the backend's
``fuse_pow2_sqrt`` (not configurable from ``ct.convert``) from deleting
``sqrt``/``pow(2)`` pairs.

The guarded fusions that fold constants into a conv/linear op's weights also release
the constants they made dead at once (:func:`_release_orphaned_consts`) instead of
leaving them to ``dead_code_elimination`` later in the pipeline, so a network whose
every conv is followed by a batch norm never holds its weights twice.
"""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.passes.defs.cleanup import const_elimination
from coremltools.converters.mil.mil.passes.defs.optimize_conv import (
    fuse_conv_batchnorm, fuse_conv_bias, fuse_conv_scale,
)
from coremltools.converters.mil.mil.passes.defs.optimize_elementwise_binary import (
    fuse_elementwise_to_batchnorm, select_optimization,
)
from coremltools.converters.mil.mil.passes.defs.optimize_linear import fuse_linear_bias, fuse_matmul_weight_bias
from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import merge_consecutive_relus, reduce_transposes
from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
from coremltools.converters.mil.mil.passes.helper import block_context_manager
from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY, register_pass

NAMESPACE = "interop"


def _same_shape(a, b) -> bool:
    """Static shapes equal: the elementwise op did not broadcast its result larger."""
    return a.shape == b.shape and a.dtype == b.dtype


def _const_operand(op, produced):
    """(constant Var, its position) of a binary op whose other operand is ``produced``."""
    if op.x is produced and op.y.val is not None:
        return op.y, "y"
    if op.y is produced and op.x.val is not None:
        return op.x, "x"
    return None, None


def _finite(var) -> bool:
    return bool(np.all(np.isfinite(np.asarray(var.val, dtype=np.float64))))


def _fusable(producer, consumer, *, const_side: tuple[str, ...] = ("x", "y"), nonzero: bool = False) -> bool:
    """``consumer(producer's output, const)`` may be folded into ``producer``'s weights."""
    return _elementwise_on(producer.outputs[0], consumer, const_side=const_side, nonzero=nonzero)


def _elementwise_on(produced, consumer, *, const_side=("x", "y"), nonzero=False) -> bool:
    """``consumer`` combines ``produced`` with a finite constant without broadcasting it larger."""
    const, side = _const_operand(consumer, produced)
    if const is None or side not in const_side:
        return False
    if not types.is_float(produced.dtype) or not _same_shape(consumer.outputs[0], produced):
        return False
    if not _finite(const):
        return False
    return not (nonzero and np.any(np.asarray(const.val) == 0))


def _const_ops(*ops) -> list:
    """The ``const`` ops feeding ``ops``, each once."""
    found: dict[int, object] = {}
    for op in ops:
        for value in op.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else (value,):
                if var.op is not None and var.op.op_type == "const":
                    found.setdefault(id(var.op), var.op)
    return list(found.values())


def _release_orphaned_consts(const_ops) -> None:
    """Remove the consts a fusion left without consumers and drop their values now.

    coremltools' fusions write the folded weights into new consts and leave the old ones to
    ``dead_code_elimination``, which runs after all of them: until then a network whose every
    conv is followed by a batch norm holds its weights twice (ResNet-50: twice its 98 MiB).
    Removing the op is not enough to free the array: the removed op is still referenced by
    the fused-away ops and by its own output Var (reference cycles, which the driver's
    ``gc.freeze()`` keeps until the conversion ends), and the pass iterates over a list of
    the block's ops. So the value is dropped from the removed op's output Var and from its
    ``val`` input; nothing reads a removed op.
    """
    by_block: dict[int, tuple] = {}
    for op in const_ops:
        block = op.enclosing_block
        if block is None or any(var.child_ops or var.consuming_blocks or var in block.outputs
                                for var in op.outputs):
            continue
        by_block.setdefault(id(block), (block, []))[1].append(op)
    for block, ops in by_block.values():
        block.remove_ops(ops)
        for op in ops:
            for var in (*op.outputs, *op.internal_inputs.values()):
                var._sym_val = None


def _releasing(transform, *ops) -> bool:
    """Run a fusion's ``_try_to_transform``; if it fused, release the consts it orphaned."""
    consts = _const_ops(*ops)
    if not transform():
        return False
    _release_orphaned_consts(consts)
    return True


def _register(cls):
    name = f"{NAMESPACE}::{cls.__name__}"
    if name not in PASS_REGISTRY:
        register_pass(namespace=NAMESPACE)(cls)
    return cls


def _misplaces_grouped_deconv_channels(conv_op, *per_channel) -> bool:
    """True for a grouped conv_transpose whose fusion would scale the wrong output channels.

    coremltools regroups a conv_transpose weight [Cin, Cout/groups, ...] as [Cout, Cin/groups, ...]
    by transpose + reshape, which orders the output channels j * groups + g instead of
    g * Cout/groups + j: with groups > 1 and Cout/groups > 1, channel-varying factors land on
    other channels. A factor equal on every channel is safe.
    """
    if conv_op.op_type != "conv_transpose" or conv_op.weight.val is None:
        return False
    groups = int(conv_op.groups.val) if conv_op.groups is not None and conv_op.groups.val is not None else 1
    if groups == 1 or conv_op.weight.val.shape[1] == 1:
        return False
    return any(np.ptp(np.asarray(values, dtype=np.float64)) != 0 for values in per_channel if np.size(values) > 1)


@_register
class guarded_fuse_conv_scale(fuse_conv_scale):
    """fuse_conv_scale, but not for ``const / conv(x)``, broadcasting scales, non-finite/zero scales,
    or per-channel scales on a grouped conv_transpose."""

    def _try_to_transform(self, conv_op, scale_op):
        divides = scale_op.op_type == "real_div"
        if not _fusable(conv_op, scale_op, const_side=("y",) if divides else ("x", "y"), nonzero=divides):
            return False
        if _misplaces_grouped_deconv_channels(conv_op, _const_operand(scale_op, conv_op.outputs[0])[0].val):
            return False
        return _releasing(lambda: fuse_conv_scale._try_to_transform(conv_op, scale_op), conv_op, scale_op)


def _fold_batchnorm_float32(conv_op, bn_op) -> bool | None:
    """``conv`` + ``batch_norm`` folded as coremltools' ``fuse_conv_batchnorm`` folds them, with whole-array
    operations; None where this is not a float32 ``conv`` (coremltools' own code does those).

    coremltools multiplies the weight channel by channel into a list, stacks the list and casts the stack:
    three new copies of the weight at once, 0.29x ResNet-50's weights for its largest layer. Here the new
    weight is one array. Every element goes through the same float32 operations in the same order
    (``scale = gamma / sqrt(variance + epsilon)``, ``weight * scale``, ``scale * (bias - mean) + beta``), each
    correctly rounded, so the results are the same bits (tests/onnx2mil/test_weight_release.py).
    """
    weight = conv_op.weight.val
    if conv_op.op_type != "conv" or weight is None or not 3 <= np.ndim(weight) <= 5:
        return None
    channels = weight.shape[0]
    bias = np.zeros(channels, np.float32) if conv_op.bias is None else conv_op.bias.val
    gamma, beta, mean, variance, epsilon = (getattr(bn_op, name).val
                                            for name in ("gamma", "beta", "mean", "variance", "epsilon"))
    vectors = (bias, gamma, beta, mean, variance)
    if any(v is None or np.shape(v) != (channels,) for v in vectors) or np.shape(epsilon) != ():
        return None
    if any(np.asarray(v).dtype != np.float32 for v in (weight, epsilon, *vectors)):
        return None
    scale = gamma / np.sqrt(variance + epsilon)
    new_weight = mb.const(val=weight * scale.reshape((channels,) + (1,) * (weight.ndim - 1)), before_op=conv_op)
    new_bias = mb.const(val=scale * (bias - mean) + beta, before_op=conv_op)
    # (coremltools then copies the old weight's metadata to both with Block._copy_metadata, a no-op in 9.0)
    inputs = {name: var for name, var in conv_op.inputs.items() if name not in ("weight", "bias")}
    fused = mb.conv(weight=new_weight, bias=new_bias, name=bn_op.outputs[0].name, before_op=conv_op, **inputs)
    if bn_op.enclosing_block.try_replace_uses_of_var_after_op(anchor_op=bn_op, old_var=bn_op.outputs[0],
                                                              new_var=fused):
        bn_op.enclosing_block.remove_ops([conv_op, bn_op])
        return True
    return False


@_register
class guarded_fuse_conv_batchnorm(fuse_conv_batchnorm):
    """fuse_conv_batchnorm, but not into a grouped conv_transpose with per-channel statistics; a float32
    conv's new weight is computed without coremltools' temporary copies (:func:`_fold_batchnorm_float32`)."""

    def _try_to_transform(self, conv_op, bn_op):
        params = [getattr(bn_op, name).val for name in ("gamma", "beta", "mean", "variance")]
        if any(p is None for p in params) or _misplaces_grouped_deconv_channels(conv_op, *params):
            return False

        def transform() -> bool:
            folded = _fold_batchnorm_float32(conv_op, bn_op)
            return fuse_conv_batchnorm._try_to_transform(conv_op, bn_op) if folded is None else folded

        return _releasing(transform, conv_op, bn_op)


@_register
class guarded_fuse_conv_bias(fuse_conv_bias):
    """fuse_conv_bias, but not where adding the constant broadcasts the result to a larger shape."""

    def _try_to_transform(self, conv_op, add_op):
        if not _fusable(conv_op, add_op, const_side=("y",) if add_op.op_type == "sub" else ("x", "y")):
            return False
        return _releasing(lambda: fuse_conv_bias._try_to_transform(conv_op, add_op), conv_op, add_op)

    def _try_to_transform_transpose_pattern(self, conv_op, block):
        children = list(conv_op.outputs[0].child_ops)
        if len(children) != 1 or children[0].op_type != "transpose":
            return False
        transpose = children[0]
        grand = list(transpose.outputs[0].child_ops)
        if len(grand) != 1 or grand[0].op_type not in ("add", "sub") or not _fusable(transpose, grand[0]):
            return False
        return _releasing(lambda: fuse_conv_bias._try_to_transform_transpose_pattern(conv_op, block),
                          conv_op, transpose, grand[0])


@_register
class guarded_fuse_linear_bias(fuse_linear_bias):
    """fuse_linear_bias, but not for rank-0 or broadcasting constants (IndexError / wrong shape upstream)."""

    @staticmethod
    def _try_to_transform(linear_op, add_or_sub_op, block):
        if not _fusable(linear_op, add_or_sub_op):
            return False
        const, _ = _const_operand(add_or_sub_op, linear_op.outputs[0])
        if np.ndim(const.val) == 0 or linear_op.outputs[0].rank == 0:
            return False
        return _releasing(lambda: fuse_linear_bias._try_to_transform(linear_op, add_or_sub_op, block),
                          linear_op, add_or_sub_op)


@_register
class guarded_fuse_matmul_weight_bias(fuse_matmul_weight_bias):
    """fuse_matmul_weight_bias, but not where the added constant broadcasts the product larger."""

    def _try_to_transform(self, matmul_op, add_op, block):
        if not _fusable(matmul_op, add_op, const_side=("y",) if add_op.op_type == "sub" else ("x", "y")):
            return False
        transform = super()._try_to_transform
        return _releasing(lambda: transform(matmul_op, add_op, block), matmul_op, add_op)


@_register
class guarded_fuse_elementwise_to_batchnorm(fuse_elementwise_to_batchnorm):
    """fuse_elementwise_to_batchnorm, but only when the constants run along the input's own channels,
    only in float32 (the pass makes the batch_norm's mean and variance float32 whatever the input's
    type, which MIL rejects beside a float16 input), and exact: coremltools' batch_norm keeps the
    default epsilon 1e-5 beside its variance of 1, so every fused x * gamma + beta was scaled by
    1 / sqrt(1 + 1e-5), 5e-6 too small (fuzz seed 78 trial 16859: InstanceNormalization's scale
    and bias, then a ReduceProd of 15 values, 3e-4 off). This one writes epsilon 0."""

    @staticmethod
    def _try_to_transform(mul_op, add_op, block):
        x = mul_op.x if mul_op.x.val is None else mul_op.y
        if x.dtype != types.fp32:
            return False
        if not (_elementwise_on(x, mul_op) and _elementwise_on(mul_op.outputs[0], add_op)):
            return False
        gamma, beta = _const_operand(mul_op, x)[0], _const_operand(add_op, mul_op.outputs[0])[0]
        channels = x.shape[1] if x.rank == 4 else None
        per_channel = ((1, channels, 1, 1), (channels, 1, 1))  # along axis 1 of the rank-4 input
        if channels is None or np.shape(gamma.val) not in per_channel or np.shape(beta.val) not in per_channel:
            return False

        def fuse() -> bool:
            fused = mb.batch_norm(
                x=x, mean=np.zeros(channels, np.float32), variance=np.ones(channels, np.float32),
                gamma=np.asarray(gamma.val, np.float32).reshape(channels),
                beta=np.asarray(beta.val, np.float32).reshape(channels),
                epsilon=np.float32(0), name=add_op.outputs[0].name, before_op=mul_op)
            add_op.enclosing_block.replace_uses_of_var_after_op(anchor_op=add_op, old_var=add_op.outputs[0],
                                                                new_var=fused)
            block.remove_ops([mul_op, add_op])
            return True

        return _releasing(fuse, mul_op, add_op)


@_register
class guarded_select_optimization(select_optimization):
    """select_optimization without its two unsound cases.

    A constant all-true (all-false) ``cond`` larger than both branches still broadcasts the
    result, which the pass ignores (it compares the branch with ``broadcast(a, b)`` only).
    And ``select(cond, inf_const, x)`` rewritten as ``x + where(cond, inf, 0)`` is NaN
    wherever x is ±inf or NaN under a true ``cond``.
    """

    @staticmethod
    def try_to_transform_const_scalar_cond(select_op, cond_val):
        if np.shape(cond_val) != () and tuple(select_op.outputs[0].shape) != tuple(
            np.broadcast_shapes(np.shape(cond_val), _static(select_op.a.shape), _static(select_op.b.shape))
            if _all_static(select_op.a.shape, select_op.b.shape) else ()
        ):
            return None
        return select_optimization.try_to_transform_const_scalar_cond(select_op, cond_val)

    @staticmethod
    def try_to_transform_inf_const_selection(select_op, cond_val, a_val, b_val):
        return None


@_register
class guarded_merge_consecutive_relus(merge_consecutive_relus):
    """merge_consecutive_relus, but not when the first relu's output is itself a model output.

    The pass replaces the second relu's output by the first one's; when both are outputs the
    program is left with the same variable twice and one named output disappears.
    """

    def _match_and_replace_pattern(self, block, relu_op):
        if relu_op.op_type == "relu" and any(relu_op.outputs[0] is out for out in block.outputs):
            return False
        return super()._match_and_replace_pattern(block, relu_op)


@_register
class guarded_reduce_transposes(reduce_transposes):
    """reduce_transposes, then each function output its own variable again under its own name.

    When one output is ``r`` and another ``transpose(transpose(r))``, the pass replaces the
    second by ``r``: the program returns one variable twice, named after the second, and the
    output ``r`` disappears (fuzz seed 31, ``Relu+Transpose``). The two hold the same values, so
    each repeat (or renamed output) becomes an identity of it named as the output was.
    """

    def apply(self, prog):
        names = {key: [var.name for var in function.outputs] for key, function in prog.functions.items()}
        super().apply(prog)
        for key, function in prog.functions.items():
            _restore_output_names(function, names[key])


def _restore_output_names(function, names: list[str]) -> None:
    outputs, seen, changed = list(function.outputs), set(), False
    for i, (var, name) in enumerate(zip(outputs, names)):
        if id(var) in seen or var.name != name:
            with function:
                outputs[i] = mb.identity(x=var, name=name)
            changed = True
        seen.add(id(outputs[i]))
    if changed:
        function.set_outputs(outputs)


def _all_static(*shapes) -> bool:
    return all(isinstance(d, (int, np.integer)) for shape in shapes for d in shape)


def _static(shape) -> tuple:
    return tuple(int(d) for d in shape)


@_register
class keep_pow2_sqrt(AbstractGraphPass):
    """Write ``pow(v, 2)`` next to a ``sqrt`` as ``v * v``.

    The ML Program backend's ``fuse_pow2_sqrt`` replaces ``pow(sqrt(x), 2)`` and
    ``sqrt(pow(x, 2))`` by ``x``: the first is NaN for x < 0, the second |x|.
    ``v * v`` equals ``pow(v, 2)`` bit for bit and is not matched.
    """

    def apply(self, prog):
        for function in prog.functions.values():
            self._block(function)

    @block_context_manager
    def _block(self, block):
        for op in list(block.operations):
            for inner in op.blocks:
                self._block(inner)
            if op.op_type != "pow" or op.y.val is None or not np.all(np.asarray(op.y.val) == 2):
                continue
            near_sqrt = (op.x.op is not None and op.x.op.op_type == "sqrt") or any(
                child.op_type == "sqrt" for child in op.outputs[0].child_ops
            )
            if not near_sqrt:
                continue
            square = mb.mul(x=op.x, y=op.x, before_op=op)
            if square.shape != op.outputs[0].shape:  # the exponent broadcast the result larger
                square = mb.mul(x=square, y=np.ones(op.y.val.shape, dtype=np.asarray(op.y.val).dtype), before_op=op)
            square = mb.identity(x=square, name=op.outputs[0].name, before_op=op)
            if block.try_replace_uses_of_var_after_op(anchor_op=op, old_var=op.outputs[0], new_var=square):
                block.remove_ops([op])


@_register
class typed_const_elimination(const_elimination):
    """const_elimination that folds a rank-0 float16 value into a float16 const.

    MIL's elementwise ops infer the value of a rank-0 input as a Python float, and the pass
    makes a const of it, which MIL types float32: beside the float16 var it replaces, the
    program is rejected ("doesn't have compatible subtype"), as for Round(ReduceSum(EyeLike(x)))
    of a float16 x. The value is given its var's type first.
    """

    def _const_elimination_block(self, block):
        for op in block.operations:
            for output in op.outputs:
                if output.dtype == types.fp16 and output.rank == 0 and isinstance(output.val, float):
                    output._sym_val.val = np.float16(output.val)
        super()._const_elimination_block(block)


_GUARDED = {
    "common::const_elimination": typed_const_elimination,
    "common::fuse_conv_scale": guarded_fuse_conv_scale,
    "common::fuse_conv_batchnorm": guarded_fuse_conv_batchnorm,
    "common::fuse_conv_bias": guarded_fuse_conv_bias,
    "common::fuse_linear_bias": guarded_fuse_linear_bias,
    "common::fuse_matmul_weight_bias": guarded_fuse_matmul_weight_bias,
    "common::fuse_elementwise_to_batchnorm": guarded_fuse_elementwise_to_batchnorm,
    "common::select_optimization": guarded_select_optimization,
    "common::merge_consecutive_relus": guarded_merge_consecutive_relus,
    "common::reduce_transposes": guarded_reduce_transposes,
}


def pass_pipeline() -> PassPipeline:
    """coremltools' default pipeline with the unsound passes guarded; a fresh object per call."""
    names = [f"{NAMESPACE}::{_GUARDED[name].__name__}" if name in _GUARDED else name
             for name in PassPipeline.DEFAULT.passes]
    names.append(f"{NAMESPACE}::keep_pow2_sqrt")
    return PassPipeline(pass_names=names, pipeline_name="interop_default")
