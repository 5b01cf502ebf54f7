"""Einsum: any equation, as diagonals, sums, transposes and batched matrix products.

MIL's ``einsum`` takes two rank-3/4 operands in a few layouts only (not even torch's
``bhid,bhjd->bhij`` attention scores), so the equation is decomposed the way numpy's
``einsum`` defines it:

1. Labels: ``...`` stands for the dims an operand has beyond its letters, right-aligned
   across operands (they broadcast); without ``->`` the output is the ellipsis dims, then
   the letters used once, in alphabetical order.
2. A letter repeated in one operand (``ii``) takes the diagonal: the operand times an
   identity mask over the two axes, summed over the second.
3. A letter that no other operand and not the output uses is summed away at once.
4. Operands are contracted left to right, two at a time: letters both have and something
   later needs (another operand or the output) are batch dims, letters both have and
   nothing later needs are contracted, the rest are kept. Each side is transposed to
   ``[batch, kept, contracted]``, its kept and contracted groups flattened to one dim
   each, and one ``matmul`` (``transpose_y``) gives ``[batch, M, N]``, which is reshaped
   back to ``[batch, kept of the left, kept of the right]``.
5. The result is transposed to the output's order.

Dims may be dynamic: group sizes are then read with ``shape`` at run time. Integer
operands and steps that would need more than rank 5 (Core ML's limit) are refused.
"""

from __future__ import annotations

from collections import Counter

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.high_rank import MAX_RANK
from interop_coreml.onnx2mil.ops._common import ConversionContext, as_var, attr, cast_to, mb, mil_dtype_name, np
from interop_coreml.onnx2mil.op_converters import register


def parse_equation(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """Each operand's label per axis and the output's labels; ellipsis dims are labelled ``...0``, ``...1``."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise NodeNotConvertible(f"einsum equation {equation!r} has {len(terms)} operand(s), the node {len(ranks)}")
    for term in terms + ([rhs] if arrow else []):
        letters = term.replace("...", "", 1)
        if not all(c.isalpha() for c in letters):
            raise NodeNotConvertible(f"einsum equation {equation!r}: {term!r} is not letters with at most one '...'")
    widths = [rank - len(term.replace("...", "")) for term, rank in zip(terms, ranks) if "..." in term]
    width = max(widths, default=0)
    ellipsis = [f"...{i}" for i in range(width)]
    operands = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            before, after = term.split("...")
            count = rank - len(before) - len(after)
            if count < 0:
                raise NodeNotConvertible(f"einsum term {term!r} has more letters than its rank-{rank} operand")
            operands.append(list(before) + ellipsis[width - count:] + list(after))
        elif len(term) != rank:
            raise NodeNotConvertible(f"einsum term {term!r} has {len(term)} letters for a rank-{rank} operand")
        else:
            operands.append(list(term))
    if arrow:
        before, found, after = rhs.partition("...")
        output = list(before) + (ellipsis if found else []) + list(after)
    else:
        counts = Counter(label for labels in operands for label in labels if not label.startswith("..."))
        output = ellipsis + sorted(label for label, n in counts.items() if n == 1)
    known = {label for labels in operands for label in labels}
    missing = [label for label in output if label not in known]
    if missing or len(set(output)) != len(output):
        raise NodeNotConvertible(f"einsum equation {equation!r}: the output's letters must be distinct letters "
                                 "of the operands")
    return operands, output


def _size(x, axis: int):
    """One dim of ``x`` as an int when static, else a 1-element int32 value read at run time."""
    dim = x.shape[axis]
    if isinstance(dim, (int, np.integer)):
        return int(dim)
    return mb.gather(x=mb.shape(x=x), indices=np.array([axis], dtype=np.int32), axis=0)


def _target(groups: list[list]) -> object:
    """A reshape target: each group is a list of sizes (ints or run-time values) multiplied into one dim."""
    parts, static = [], True
    for group in groups:
        ints = int(np.prod([s for s in group if isinstance(s, int)], dtype=np.int64))
        dynamic = [s for s in group if not isinstance(s, int)]
        if not dynamic:
            parts.append(np.array([ints], dtype=np.int32))
            continue
        static = False
        value = dynamic[0] if len(dynamic) == 1 else mb.reduce_prod(x=mb.concat(values=dynamic, axis=0), axes=[0],
                                                                    keep_dims=True)
        parts.append(value if ints == 1 else mb.mul(x=value, y=np.array([ints], dtype=np.int32)))
    if static:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return mb.concat(values=parts, axis=0)


def _transposed(x, labels: list[str], order: list[str]):
    perm = [labels.index(label) for label in order]
    return x if perm == list(range(len(perm))) else mb.transpose(x=x, perm=perm)


def _reshaped(x, groups: list[list], *, same: bool):
    """``x`` reshaped to one dim per group; ``same``: the groups are ``x``'s dims as they are (nothing to do)."""
    if same:
        return x
    target = _target(groups)
    if isinstance(target, np.ndarray) and target.size == 0:
        return mb.squeeze(x=x) if x.rank else x  # every group empty: a scalar
    return mb.reshape(x=x, shape=target)


def _diagonal(x, labels: list[str], dtype: str):
    """Take the diagonal over each label repeated in ``labels`` (numpy's ``ii``)."""
    while len(set(labels)) != len(labels):
        first = next(i for i, label in enumerate(labels) if labels.index(label) != i)
        p, q = labels.index(labels[first]), first
        size = _size(x, p)
        end = np.int32(size) if isinstance(size, int) else mb.squeeze(x=size, axes=[0])
        ramp = mb.range_1d(start=np.int32(0), end=end, step=np.int32(1))
        eye = mb.cast(x=mb.equal(x=mb.expand_dims(x=ramp, axes=[1]), y=mb.expand_dims(x=ramp, axes=[0])),
                      dtype=dtype)
        others = [i for i in range(x.rank) if i not in (p, q)]
        mask = mb.expand_dims(x=eye, axes=others) if others else eye
        x = mb.reduce_sum(x=mb.mul(x=x, y=mask), axes=[q], keep_dims=False)
        labels = labels[:q] + labels[q + 1:]
    return x, labels


def _sum_unused(x, labels: list[str], needed: set[str]):
    axes = [i for i, label in enumerate(labels) if label not in needed]
    if not axes:
        return x, labels
    return mb.reduce_sum(x=x, axes=axes, keep_dims=False), [label for label in labels if label in needed]


def _check_rank(rank: int, equation: str) -> None:
    if rank > MAX_RANK:
        raise NodeNotConvertible(f"einsum equation {equation!r} needs a rank-{rank} intermediate; Core ML's limit is "
                                 f"rank {MAX_RANK}")


def _contract(a, la: list[str], b, lb: list[str], later: set[str], equation: str):
    batch = [label for label in la if label in lb and label in later]
    contracted = [label for label in la if label in lb and label not in later]
    kept_a = [label for label in la if label not in lb]
    kept_b = [label for label in lb if label not in la]
    _check_rank(len(batch) + max(len(kept_a) + len(kept_b), 2), equation)
    a = _transposed(a, la, batch + kept_a + contracted)
    b = _transposed(b, lb, batch + kept_b + contracted)
    nb = len(batch)
    a_sizes = [_size(a, i) for i in range(a.rank)]
    b_sizes = [_size(b, i) for i in range(b.rank)]
    a_kept_sizes = a_sizes[nb:nb + len(kept_a)]
    b_kept_sizes = b_sizes[nb:nb + len(kept_b)]
    single = len(contracted) == 1
    a = _reshaped(a, [[s] for s in a_sizes[:nb]] + [a_kept_sizes, a_sizes[nb + len(kept_a):]],
                  same=single and len(kept_a) == 1)
    b = _reshaped(b, [[s] for s in b_sizes[:nb]] + [b_kept_sizes, b_sizes[nb + len(kept_b):]],
                  same=single and len(kept_b) == 1)
    product = mb.matmul(x=a, y=b, transpose_y=True)
    batch_sizes = [_size(product, i) for i in range(nb)]
    result = _reshaped(product, [[s] for s in batch_sizes + a_kept_sizes + b_kept_sizes],
                       same=len(kept_a) == 1 and len(kept_b) == 1)
    return result, batch + kept_a + kept_b


@register("Einsum", since_version=12)
def convert_einsum(ctx: ConversionContext, node) -> None:
    equation = attr(node, "equation")
    values = [ctx.input(node, i) for i in range(len(node.input))]
    kinds = {mil_dtype_name(v) for v in values}
    if not kinds <= {"fp32", "fp16"}:
        raise NodeNotConvertible(f"integer einsum ({sorted(kinds)}): Core ML multiplies float tensors only")
    dtype = "fp32" if "fp32" in kinds else "fp16"
    operands = [as_var(cast_to(v, dtype)) for v in values]
    labels, output = parse_equation(equation, [x.rank for x in operands])
    try:
        # Diagonals, then letters only this operand has and nothing else needs.
        for i, x in enumerate(operands):
            _check_rank(x.rank, equation)
            x, labels[i] = _diagonal(x, labels[i], dtype)
            elsewhere = set(output).union(*(labels[j] for j in range(len(operands)) if j != i))
            operands[i], labels[i] = _sum_unused(x, labels[i], elsewhere)
        result, current = operands[0], labels[0]
        for j in range(1, len(operands)):
            later = set(output).union(*labels[j + 1:])
            result, current = _sum_unused(result, current, later | set(labels[j]))
            other, other_labels = _sum_unused(operands[j], labels[j], later | set(current))
            result, current = _contract(result, current, other, other_labels, later, equation)
        result, current = _sum_unused(result, current, set(output))
        result = _transposed(result, current, output)
    except (ValueError, TypeError, AssertionError) as error:  # MIL's type inference: shapes that do not fit
        raise NodeNotConvertible(f"einsum equation {equation!r} does not fit its operands' shapes: {error}") from None
    ctx.output(node, 0, mb.identity(x=result, name=ctx.out_name(node)))
