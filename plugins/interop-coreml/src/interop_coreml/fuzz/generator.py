"""Seeded random valid ONNX graphs for differential fuzzing.

A graph grows node by node. Every tensor the builder made is in a pool with its
dtype and (static) shape; an op generator picks operands from the pool (or makes
new constants or graph inputs of a shape that broadcasts against them), chooses
attributes from the op's domain and adds the node. Each node is accepted only if
strict ONNX shape inference accepts it, which also tells the builder the
output's shape, so an op generator may be a little optimistic and is simply
retried when it asks for something invalid. At the end some inputs may get a
symbolic batch dimension, and the whole model must pass ``onnx.checker`` with
``full_check=True``.

:data:`OPS` maps each op type to its generator (and the opsets it exists in);
adding an op is one entry. :data:`NOT_GENERATED` lists the ops the coverage
table verifies that are not generated, with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_OPSET, MAX_OPSET = 13, 21
#: The share of float16 graphs (float16 inputs, initializers and float tensors throughout).
HALF_SHARE = 0.25
#: In a float16 graph, the share of float inputs and outputs that are float32, cast at the edge.
FLOAT32_IO_SHARE = 0.25

_ELEM = {"float": TensorProto.FLOAT, "int64": TensorProto.INT64, "int32": TensorProto.INT32, "bool": TensorProto.BOOL}
_NP = {"float": np.float32, "int64": np.int64, "int32": np.int32, "bool": np.bool_}
_FROM_ELEM = {v: k for k, v in _ELEM.items()}


class Reject(Exception):
    """The op generator cannot make a valid node from the current pool; try another op."""


@dataclass
class Tensor:
    name: str
    dtype: str  # one of _ELEM
    shape: tuple[int, ...] | None  # None when data-dependent (NonZero)
    const: np.ndarray | None = None  # value when the tensor is an initializer
    dims: tuple | None = None  # the inferred dims (symbolic names allowed) when ``shape`` is None

    @property
    def rank(self) -> int:
        return len(self.shape) if self.shape is not None else -1


@dataclass
class FuzzCase:
    """One generated graph and what was chosen to make it."""

    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    seed: int
    opset: int
    input_style: str
    dynamic: dict | None = None
    op_types: list[str] = field(default_factory=list)
    half: bool = False  # float16 graph
    #: tensors whose length ONNX shape inference gets wrong, {name: {axis: the spec's length}} (Builder.spec_shapes)
    spec_shapes: dict = field(default_factory=dict)


class Builder:
    """The graph under construction: nodes, initializers, graph inputs and the tensor pool.

    The dtype tag ``"float"`` is the graph's float type, float32 or float16 (``half``): every
    float input, initializer and float tensor of a graph has that one type, except where the
    spec fixes float32 (Resize's scales).
    """

    def __init__(self, rng: np.random.Generator, opset: int, input_style: str, half: bool = False,
                 extra: np.random.Generator | None = None):
        self.rng = rng
        #: the choices added after the seed-0 campaign draw from here, so older seeds keep their graphs
        self.extra = extra if extra is not None else np.random.default_rng(0)
        self.opset = opset
        self.input_style = input_style
        self.half = half
        self.float_np = np.float16 if half else np.float32
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.inputs: dict[str, Tensor] = {}
        self.feeds: dict[str, np.ndarray] = {}
        self.pool: list[Tensor] = []
        self.counter = 0
        #: tensors whose length on some axes ONNX shape inference gets wrong, with the spec's {axis: length}:
        #: the output of a ceil_mode pool whose last window starts past the input (see ``pool_output_size``)
        self.spec_shapes: dict[str, dict[int, int]] = {}

    # ------------------------------------------------------------------ dtypes

    def elem(self, dtype: str) -> int:
        """The ONNX element type of a dtype tag ("float32": a float32 input or output of a float16 graph)."""
        if dtype == "float32":
            return TensorProto.FLOAT
        return TensorProto.FLOAT16 if dtype == "float" and self.half else _ELEM[dtype]

    def np_type(self, dtype: str) -> type:
        return self.float_np if dtype == "float" else _NP[dtype]

    def tag(self, elem: int) -> str | None:
        """The dtype tag of an ONNX element type in this graph (None: a type the pool does not hold)."""
        if elem == (TensorProto.FLOAT16 if self.half else TensorProto.FLOAT):
            return "float"
        if elem == TensorProto.FLOAT:  # in a float16 graph: only its float32 inputs and outputs
            return "float32"
        if elem == TensorProto.FLOAT16:
            return None
        return _FROM_ELEM.get(elem)

    # ------------------------------------------------------------------ names and values

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix[:3].lower()}{self.counter}"

    def values(self, shape: tuple[int, ...], dtype: str = "float") -> np.ndarray:
        rng = self.rng
        # np.asarray: a rank-0 draw is a numpy scalar, which onnxruntime does not take as a feed.
        if dtype == "bool":
            return np.asarray(rng.random(shape) < 0.5)
        if dtype in ("int64", "int32"):
            return np.asarray(rng.integers(-5, 6, size=shape), dtype=_NP[dtype])
        if self.input_style == "uniform":
            data = rng.uniform(-1, 1, size=shape)
        elif self.input_style == "wide":
            data = rng.uniform(-6, 6, size=shape)
        elif self.input_style == "grid":
            data = rng.integers(-4, 5, size=shape) / 2.0  # ties and exact halves
        else:
            data = rng.standard_normal(shape)
        return np.asarray(data, dtype=self.float_np)

    def const(self, array: np.ndarray, prefix: str = "w", exact: bool = False) -> Tensor:
        """An initializer; a float32 ``array`` becomes the graph's float type unless ``exact``."""
        name = self.fresh(prefix)
        array = np.asarray(array)
        if array.dtype == np.float32 and not exact:
            array = array.astype(self.float_np)
        self.inits[name] = array
        dtype = self.tag(onnx.helper.np_dtype_to_tensor_dtype(array.dtype))
        return Tensor(name, dtype or str(array.dtype), tuple(array.shape), array)

    def ints(self, values, prefix: str = "c") -> str:
        return self.const(np.asarray(values, dtype=np.int64), prefix).name

    def new_input(self, shape: tuple[int, ...], dtype: str = "float", prefix: str = "in") -> Tensor:
        if dtype == "float" and self.half and self.extra.random() < FLOAT32_IO_SHARE:
            # float32 in, float16 inside, as mixed-precision exports are
            name = self.fresh(prefix)
            self.inputs[name] = Tensor(name, "float32", tuple(shape))
            self.feeds[name] = self.values(tuple(shape)).astype(np.float32)
            return self.add("Cast", [name], to=TensorProto.FLOAT16)[0]
        name = self.fresh(prefix)
        tensor = Tensor(name, dtype, tuple(shape))
        self.inputs[name] = tensor
        self.feeds[name] = self.values(tuple(shape), dtype)
        self.pool.append(tensor)
        return tensor

    def operand(self, shape: tuple[int, ...], dtype: str = "float", const_ok: bool = True) -> Tensor:
        """A tensor of exactly ``shape``: from the pool, a new input, or a constant."""
        same = [t for t in self.pool if t.dtype == dtype and t.shape == tuple(shape)]
        roll = self.rng.random()
        if same and roll < 0.4:
            return same[self.rng.integers(len(same))]
        if roll < 0.7 or not const_ok:
            return self.new_input(shape, dtype)
        return self.const(self.values(tuple(shape), dtype))

    # ------------------------------------------------------------------ choosing operands

    def pick(self, dtype: str | tuple[str, ...] = "float", min_rank: int = 0, max_rank: int = 5,
             when: Callable[[Tensor], bool] | None = None) -> Tensor:
        dtypes = (dtype,) if isinstance(dtype, str) else dtype
        choices = [t for t in self.pool if t.dtype in dtypes and t.shape is not None
                   and min_rank <= t.rank <= max_rank and 0 not in t.shape and (when is None or when(t))]
        if not choices:
            if "float" not in dtypes or min_rank > 4 or when is not None:
                raise Reject(f"no {dtypes} tensor of rank {min_rank}..{max_rank}")
            rank = int(self.rng.integers(max(min_rank, 1), min(max_rank, 4) + 1))
            return self.new_input(self.random_shape(rank))
        # Prefer recent tensors, so graphs grow deep instead of wide.
        weights = np.arange(1, len(choices) + 1, dtype=np.float64) ** 2
        return choices[int(self.rng.choice(len(choices), p=weights / weights.sum()))]

    def random_shape(self, rank: int, low: int = 1, high: int = 6) -> tuple[int, ...]:
        return tuple(int(d) for d in self.rng.integers(low, high + 1, size=rank))

    def broadcast_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A shape that broadcasts with ``shape`` (either side may be the broader one)."""
        rng = self.rng
        keep = int(rng.integers(0, len(shape) + 1))
        out = []
        for dim in shape[len(shape) - keep:]:
            roll = rng.random()
            out.append(1 if roll < 0.3 else (int(rng.integers(2, 5)) if dim == 1 and roll < 0.45 else dim))
        if len(shape) < 5 and rng.random() < 0.15:
            out = [int(rng.integers(1, 4))] + out
        return tuple(out)

    def other(self, like: Tensor, dtype: str | None = None) -> Tensor:
        """A second operand that broadcasts against ``like``."""
        dtype = dtype or like.dtype
        candidates = [t for t in self.pool if t is not like and t.dtype == dtype and t.shape is not None
                      and _broadcastable(t.shape, like.shape)]
        if candidates and self.rng.random() < 0.35:
            return candidates[int(self.rng.integers(len(candidates)))]
        return self.operand(self.broadcast_shape(like.shape), dtype)

    # ------------------------------------------------------------------ domains

    def domain(self, x: Tensor, kind: str | None) -> Tensor:
        """Map ``x`` into an op's input domain with one or two cheap nodes.

        "small" also keeps periodic functions away from large arguments, where float32
        rounding of the argument alone changes the result (ill-conditioned, not a bug).
        """
        if kind is None:
            return x
        if kind == "unit":  # (-0.9, 0.9)
            return self.add("Mul", [self.add("Tanh", [x])[0], self.const(np.float32(0.9))])[0]
        if kind == "small":  # (-3, 3)
            return self.add("Mul", [self.add("Tanh", [x])[0], self.const(np.float32(3.0))])[0]
        offset = {"positive": 0.1, "ge1": 1.0, "nonzero": 0.5}[kind]
        magnitude = self.add("Abs", [x])[0]
        positive = self.add("Add", [magnitude, self.const(np.float32(offset))])[0]
        if kind == "nonzero" and self.rng.random() < 0.5:
            positive = self.add("Neg", [positive])[0]
        return positive

    # ------------------------------------------------------------------ adding nodes

    def add(self, op_type: str, inputs: list[Tensor | str | None], n_out: int = 1,
            same_shape_as: Tensor | None = None, **attrs) -> list[Tensor]:
        """Add one node; ``same_shape_as`` is the output's shape when inference cannot tell (function ops)."""
        names = ["" if t is None else (t if isinstance(t, str) else t.name) for t in inputs]
        while names and names[-1] == "":
            names.pop()
        outputs = [self.fresh(op_type) for _ in range(n_out)]
        node = helper.make_node(op_type, names, outputs, name=f"n{self.counter}",
                                **{k: v for k, v in attrs.items() if v is not None})
        self.nodes.append(node)
        try:
            inferred = self._infer(outputs, same_shape_as)
        except Exception as error:  # noqa: BLE001 - shape inference says the node is invalid
            self.nodes.pop()
            raise Reject(f"{op_type}: {str(error).splitlines()[0][:200]}") from None
        made = []
        for name in outputs:
            dtype, shape, dims = inferred[name]
            if dtype not in (*_ELEM, "float32") or dims is None or any(isinstance(d, int) and d <= 0 for d in dims):
                # Unknown ranks and empty tensors help nobody; a negative dim is an inference bug
                # (onnx aborts the process on a later Slice of it).
                self.nodes.pop()
                raise Reject(f"{op_type} makes an unsupported dtype, an unknown rank or an empty tensor")
            made.append(Tensor(name, dtype, shape, dims=dims))
        self.pool.extend(made)
        return made

    def model(self, outputs: list[Tensor] | None = None) -> onnx.ModelProto:
        graph_outputs = [helper.make_tensor_value_info(t.name, self.elem(t.dtype), t.shape if t.shape is not None
                                                       else t.dims) for t in outputs or []]
        graph = helper.make_graph(
            list(self.nodes), "fuzz",
            [helper.make_tensor_value_info(t.name, self.elem(t.dtype), t.shape) for t in self.inputs.values()],
            graph_outputs,
            initializer=[numpy_helper.from_array(a, n) for n, a in self.inits.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="interop-fuzz")
        model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
        return model

    def spec_shaped(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """``model`` with each tensor of :attr:`spec_shapes` cropped to its spec lengths, for shape inference only.

        The producer's output is renamed and a Slice to the spec lengths takes its name, so ONNX
        shape inference gives every later tensor the shape the spec (and onnxruntime) gives it.
        """
        if not self.spec_shapes:
            return model
        shaped = onnx.ModelProto()
        shaped.CopyFrom(model)
        nodes = []
        for node in shaped.graph.node:
            nodes.append(node)
            for i, name in enumerate(node.output):
                if name in self.spec_shapes:
                    lengths = self.spec_shapes[name]
                    node.output[i] = f"{name}__inferred"
                    bounds = [f"{name}__{part}" for part in ("starts", "ends", "axes")]
                    shaped.graph.initializer.extend(
                        numpy_helper.from_array(np.asarray(values, np.int64), bound) for bound, values in
                        zip(bounds, ([0] * len(lengths), list(lengths.values()), list(lengths))))
                    nodes.append(helper.make_node("Slice", [node.output[i], *bounds], [name]))
        del shaped.graph.node[:]
        shaped.graph.node.extend(nodes)
        return shaped

    def _infer(self, names: list[str], same_shape_as: Tensor | None = None) -> dict[str, tuple]:
        # The graph as written must pass strict inference (onnx's checker and onnxruntime's loader
        # run it); where inference gets a pool's size wrong, the shapes come from the spec-shaped copy,
        # which must pass too (a later node must fit the real shape).
        model = self.model()
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        if self.spec_shapes:
            inferred = onnx.shape_inference.infer_shapes(self.spec_shaped(model), check_type=True,
                                                         strict_mode=True, data_prop=True)
        found = {}
        for value in inferred.graph.value_info:
            if value.name in names:
                tensor_type = value.type.tensor_type
                dims = tensor_type.shape.dim
                has_shape = tensor_type.HasField("shape")
                shape = tuple(d.dim_value for d in dims) if has_shape and all(
                    d.HasField("dim_value") for d in dims) else None
                named = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or f"u{i}")
                              for i, d in enumerate(dims)) if has_shape else None
                found[value.name] = (self.tag(tensor_type.elem_type), shape, named)
        for name in names:
            if same_shape_as is not None and (name not in found or found[name][2] is None):
                found[name] = (same_shape_as.dtype, same_shape_as.shape, same_shape_as.shape)
        missing = [n for n in names if n not in found]
        if missing:
            raise ValueError(f"no inferred type for {missing}")
        return found


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


# ====================================================================== op generators


@dataclass(frozen=True)
class OpGen:
    """How to generate one op: ``build(builder)`` adds it (and the constants it needs)."""

    build: Callable[[Builder], None]
    min_opset: int = MIN_OPSET
    max_opset: int = MAX_OPSET


OPS: dict[str, OpGen] = {}


def _register(op_type: str, build: Callable[[Builder], None], min_opset: int = MIN_OPSET) -> None:
    OPS[op_type] = OpGen(build, min_opset)


def unary(op_type: str, domain: str | None = None, dtypes: tuple[str, ...] = ("float",),
          **attr_choices: Callable[[np.random.Generator], object]) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.pick(dtypes)
        if x.dtype == "float":
            x = b.domain(x, domain)
        b.add(op_type, [x], same_shape_as=x if op_type != "IsNaN" else None,
              **{k: f(b.rng) for k, f in attr_choices.items()})
    return build


def _uniform(low: float, high: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(np.float32(rng.uniform(low, high)))


def _choice(*values) -> Callable[[np.random.Generator], object]:
    return lambda rng: values[int(rng.integers(len(values)))]


def binary(op_type: str, dtypes: tuple[str, ...] = ("float",), rhs_domain: str | None = None,
           lhs_domain: str | None = None, **attrs) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.pick(dtypes)
        y = b.other(x)
        if x.dtype == "float":
            x, y = b.domain(x, lhs_domain), b.domain(y, rhs_domain)
        if b.rng.random() < 0.5:
            x, y = (y, x) if rhs_domain is None and lhs_domain is None else (x, y)
        b.add(op_type, [x, y], **attrs)
    return build


def variadic(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.pick("float")
        operands = [x] + [b.other(x) for _ in range(int(b.rng.integers(0, 3)))]
        b.add(op_type, operands)
    return build


def compare(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.pick(("float", "int64", "int32"))
        y = b.other(x)
        if x.dtype == "float" and b.rng.random() < 0.3:  # ties are where comparisons differ
            x, y = b.add("Round", [x])[0], b.add("Round", [y])[0]
        b.add(op_type, [x, y])
    return build


def _bool(b: Builder) -> Tensor:
    found = [t for t in b.pool if t.dtype == "bool" and t.shape is not None and 0 not in t.shape]
    if found and b.rng.random() < 0.7:
        return found[int(b.rng.integers(len(found)))]
    x = b.pick("float")
    return b.add("Greater", [x, b.other(x)])[0]


def logical(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = _bool(b)
        if op_type == "Not":
            b.add("Not", [x])
            return
        y = b.other(x)
        b.add(op_type, [x, y])
    return build


def _axis(b: Builder, rank: int, allow_end: bool = False) -> int:
    top = rank + (1 if allow_end else 0)
    axis = int(b.rng.integers(0, max(top, 1)))
    return axis - top if b.rng.random() < 0.3 and top else axis


def _where(b: Builder) -> None:
    cond = _bool(b)
    x = b.other(cond, "float") if b.rng.random() < 0.7 else b.pick("float")
    y = b.other(x)
    b.add("Where", [cond, x, y])


def _softmax_like(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.pick("float", min_rank=1)
        b.add(op_type, [x], axis=_axis(b, x.rank))
    return build


def _argminmax(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.pick("float", min_rank=1)
        if b.rng.random() < 0.3:
            x = b.add("Round", [x])[0]  # ties: first vs last index
        b.add(op_type, [x], axis=_axis(b, x.rank), keepdims=int(b.rng.integers(2)),
              select_last_index=int(b.rng.random() < 0.3))
    return build


def _reduce(op_type: str, domain: str | None = None, axes_input_since: int = 18) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = b.domain(b.pick("float", min_rank=1), domain)
        rng = b.rng
        count = int(rng.integers(0, x.rank + 1))
        axes = sorted(int(a) for a in rng.choice(x.rank, size=count, replace=False))
        axes = [a - x.rank if rng.random() < 0.3 else a for a in axes]
        keepdims = int(rng.integers(2))
        if b.opset >= axes_input_since:
            noop = int(rng.random() < 0.25)
            axes_in = None if not axes and rng.random() < 0.5 else b.ints(axes, "ax")
            b.add(op_type, [x, axes_in], keepdims=keepdims, noop_with_empty_axes=noop)
        else:
            b.add(op_type, [x], keepdims=keepdims, axes=axes or None)
    return build


def _to_integer(b: Builder, x: Tensor) -> Tensor:
    """The operand of a float → integer cast.

    Mostly clipped to ±100: ONNX's int64 holds whole numbers past 2³¹ that Core ML's int32
    stand-in cannot (docs/coreml.md, "Integers wider than 32 bits"), so values between 2³¹ and
    2⁶³ are left out. One cast in ten is of the values times 1e30 (float16: times infinity)
    instead: NaN, ±Inf and numbers past int64's range, where the spec leaves the result
    undefined (the oracle's ``undefined-float-to-int-cast`` rule; zeros stay zeros in float32).
    """
    if b.extra.random() < 0.1:
        huge = b.add("Mul", [x, b.const(np.float32(np.inf if b.half else 1e30))])[0]
        b.pool.remove(huge)  # for the cast alone: Inf and 1e30 elsewhere make noise (inf · 0 in a Resize)
        return huge
    return b.add("Clip", [x, b.const(np.float32(-100)), b.const(np.float32(100))])[0]


def _cast(b: Builder) -> None:
    x = b.pick(("float", "int64", "int32", "bool"))
    target = str(b.rng.choice(["float", "int64", "int32", "bool"]))
    if x.dtype == "float" and target in ("int64", "int32"):
        x = _to_integer(b, x)
    b.add("Cast", [x], to=b.elem(target))


def _castlike(b: Builder) -> None:
    x = b.pick(("float", "int64", "bool"))
    target = str(b.rng.choice(["float", "int64", "bool"]))
    if x.dtype == "float" and target == "int64":
        x = _to_integer(b, x)
    like = b.const(b.values((int(b.rng.integers(1, 3)),), target))
    b.add("CastLike", [x, like])


def _clip(b: Builder) -> None:
    x = b.pick("float")
    lo = b.const(np.float32(b.rng.uniform(-1, 0))) if b.rng.random() < 0.7 else None
    hi = b.const(np.float32(b.rng.uniform(0, 1))) if b.rng.random() < 0.7 else None
    b.add("Clip", [x, "" if lo is None else lo, hi])


def _cumsum(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    axis = np.asarray(_axis(b, x.rank), dtype=str(b.rng.choice(["int64", "int32"])))
    if b.rng.random() < 0.3:
        axis = axis.reshape(1)
    b.add("CumSum", [x, b.const(axis, "ax")], exclusive=int(b.rng.integers(2)), reverse=int(b.rng.integers(2)))


def _topk(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    axis = _axis(b, x.rank)
    k = int(b.rng.integers(1, x.shape[axis] + 1))
    b.add("TopK", [x, b.ints([k], "k")], n_out=2, axis=axis, largest=int(b.rng.integers(2)), sorted=1)


def _shape(b: Builder) -> None:
    x = b.pick(("float", "int64", "bool"))
    attrs = {}
    if b.opset >= 15 and b.rng.random() < 0.5:
        attrs = {"start": int(b.rng.integers(-x.rank - 1, x.rank + 1)),
                 "end": int(b.rng.integers(-x.rank - 1, x.rank + 2))}
    b.add("Shape", [x], **attrs)


def _size(b: Builder) -> None:
    b.add("Size", [b.pick(("float", "int64", "bool"))])


def _factor(b: Builder, total: int, rank: int) -> list[int]:
    dims = []
    for _ in range(rank - 1):
        divisors = [d for d in range(1, total + 1) if total % d == 0]
        d = divisors[int(b.rng.integers(len(divisors)))]
        dims.append(d)
        total //= d
    return dims + [total]


def _reshape(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1)
    shape = _factor(b, int(np.prod(x.shape)), int(b.rng.integers(1, 5)))
    if b.rng.random() < 0.4:
        shape[int(b.rng.integers(len(shape)))] = -1
    for i in range(min(len(shape), x.rank)):
        if shape[i] == x.shape[i] and b.rng.random() < 0.3:
            shape[i] = 0  # copy the input's dim
    b.add("Reshape", [x, b.ints(shape, "sh")])


def _flatten(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1)
    b.add("Flatten", [x], axis=_axis(b, x.rank, allow_end=True))


def _squeeze(b: Builder) -> None:
    try:
        x = b.pick(("float", "int64"), min_rank=1, when=lambda t: 1 in t.shape)
    except Reject:
        shape = list(b.random_shape(int(b.rng.integers(1, 5))))
        shape[int(b.rng.integers(len(shape)))] = 1
        x = b.new_input(tuple(shape))
    ones = [i for i, d in enumerate(x.shape) if d == 1]
    axes = sorted(int(a) for a in b.rng.choice(ones, size=int(b.rng.integers(1, len(ones) + 1)), replace=False))
    axes_in = None if b.rng.random() < 0.2 else b.ints([a - x.rank if b.rng.random() < 0.3 else a for a in axes])
    b.add("Squeeze", [x, axes_in])


def _unsqueeze(b: Builder) -> None:
    x = b.pick(("float", "int64"), max_rank=4)
    count = int(b.rng.integers(1, min(3, 5 - x.rank) + 1))
    out_rank = x.rank + count
    axes = sorted(int(a) for a in b.rng.choice(out_rank, size=count, replace=False))
    b.add("Unsqueeze", [x, b.ints([a - out_rank if b.rng.random() < 0.3 else a for a in axes])])


def _transpose(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1)
    perm = [int(p) for p in b.rng.permutation(x.rank)]
    b.add("Transpose", [x], perm=perm if b.rng.random() < 0.9 else None)


def _concat(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1)
    axis = _axis(b, x.rank)
    operands = [x]
    for _ in range(int(b.rng.integers(1, 3))):
        shape = list(x.shape)
        shape[axis] = int(b.rng.integers(1, 5))
        operands.append(b.operand(tuple(shape), x.dtype))
    order = b.rng.permutation(len(operands))
    b.add("Concat", [operands[i] for i in order], axis=axis)


def _split(b: Builder) -> None:
    x = b.pick("float", min_rank=1, when=lambda t: max(t.shape) >= 2)
    axis = int(b.rng.choice([i for i, d in enumerate(x.shape) if d >= 2]))
    dim = x.shape[axis]
    if b.opset >= 18 and b.rng.random() < 0.5:
        n = int(b.rng.integers(2, dim + 1))
        b.add("Split", [x], n_out=n, axis=axis, num_outputs=n)
        return
    cuts = sorted(int(c) for c in b.rng.choice(np.arange(1, dim), size=int(b.rng.integers(1, min(dim - 1, 3) + 1)),
                                               replace=False))
    parts = [hi - lo for lo, hi in zip([0, *cuts], [*cuts, dim])]
    b.add("Split", [x, b.ints(parts, "sp")], n_out=len(parts), axis=axis)


def _slice(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1)
    rng = b.rng
    axes = sorted(int(a) for a in rng.choice(x.rank, size=int(rng.integers(1, x.rank + 1)), replace=False))
    starts, ends, steps = [], [], []
    for a in axes:
        d = x.shape[a]
        step = int(rng.choice([1, 1, 2, -1, -2]))
        start = int(rng.integers(-d - 2, d + 2))
        end = int(rng.integers(-d - 2, d + 2))
        if rng.random() < 0.15:
            end = int(np.iinfo(np.int64).max if step > 0 else np.iinfo(np.int64).min)
        starts.append(start)
        ends.append(end)
        steps.append(step)
    inputs = [x, b.ints(starts, "st"), b.ints(ends, "en"), b.ints([a - x.rank if rng.random() < 0.3 else a
                                                                 for a in axes], "ax")]
    if rng.random() < 0.8 or any(s != 1 for s in steps):
        inputs.append(b.ints(steps, "sp"))
    out = b.add("Slice", inputs)[0]
    if out.shape is not None and 0 in out.shape:
        b.pool.remove(out)
        b.nodes.pop()
        raise Reject("empty slice")


def _gather(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1)
    axis = _axis(b, x.rank)
    d = x.shape[axis]
    shape = b.random_shape(int(b.rng.integers(0, 3)), high=4)
    b.add("Gather", [x, b.const(b.rng.integers(-d, d, size=shape).astype(np.int64), "idx")], axis=axis)


def _gather_elements(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    axis = _axis(b, x.rank)
    shape = tuple(int(b.rng.integers(1, d + 1)) if i != axis else int(b.rng.integers(1, 5))
                  for i, d in enumerate(x.shape))
    d = x.shape[axis]
    b.add("GatherElements", [x, b.const(b.rng.integers(-d, d, size=shape).astype(np.int64), "idx")], axis=axis)


def _gather_nd(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    k = int(b.rng.integers(1, x.rank + 1))
    lead = b.random_shape(int(b.rng.integers(0, 3)), high=3)
    idx = np.stack([b.rng.integers(-x.shape[i], x.shape[i], size=lead) for i in range(k)], axis=-1)
    b.add("GatherND", [x, b.const(idx.astype(np.int64), "idx")])


def _scatter_elements(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    rng = b.rng
    axis = int(rng.integers(x.rank))
    d = x.shape[axis]
    shape = [int(rng.integers(1, s + 1)) for s in x.shape]
    # Distinct indices along the axis: duplicates without a reduction are undefined.
    idx = np.empty(shape, dtype=np.int64)
    moved = np.moveaxis(idx, axis, -1)
    for pos in np.ndindex(moved.shape[:-1]):
        moved[pos] = rng.permutation(d)[: moved.shape[-1]]
    if rng.random() < 0.3:
        idx = idx - d * (rng.random(idx.shape) < 0.5)
    reduction = str(rng.choice(["none", "add", "mul", "max", "min"])) if b.opset >= 18 else "none"
    b.add("ScatterElements", [x, b.const(idx, "idx"), b.operand(tuple(shape))], axis=axis,
          reduction=None if reduction == "none" else reduction)


def _scatter_nd(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    rng = b.rng
    k = int(rng.integers(1, x.rank + 1))
    cells = list(np.ndindex(*x.shape[:k]))
    n = int(rng.integers(1, min(len(cells), 4) + 1))
    rows = np.asarray([cells[i] for i in rng.choice(len(cells), size=n, replace=False)], dtype=np.int64)
    updates = b.operand((n, *x.shape[k:]))
    b.add("ScatterND", [x, b.const(rows.reshape(n, k), "idx"), updates])


def _expand(b: Builder) -> None:
    x = b.pick(("float", "int64"), max_rank=4)
    target = list(b.broadcast_shape(x.shape))
    b.add("Expand", [x, b.ints(target, "sh")])


def _tile(b: Builder) -> None:
    x = b.pick(("float", "int64"), min_rank=1, when=lambda t: int(np.prod(t.shape)) <= 64)
    b.add("Tile", [x, b.ints([int(r) for r in b.rng.integers(1, 4, size=x.rank)], "rep")])


def _pad(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    rng = b.rng
    mode = str(rng.choice(["constant", "reflect", "edge"]))
    pads = []
    for side in range(2):
        for d in x.shape:
            limit = d - 1 if mode == "reflect" else 3
            pads.append(int(rng.integers(0, max(limit, 0) + 1)))
    if mode == "constant" and rng.random() < 0.2:
        i = int(rng.integers(len(pads)))
        pads[i] = -min(1, x.shape[i % x.rank] - 1)
    inputs: list = [x, b.ints(pads, "pad")]
    if mode == "constant" and rng.random() < 0.5:
        inputs.append(b.const(np.float32(rng.uniform(-2, 2))))
    b.add("Pad", inputs, mode=mode)


def _depth_space(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        bs = int(b.rng.integers(1, 3)) + (1 if b.rng.random() < 0.5 else 0)
        depth = op_type == "DepthToSpace"
        fits = ((lambda t: t.shape[1] % (bs * bs) == 0) if depth
                else (lambda t: t.shape[2] % bs == 0 and t.shape[3] % bs == 0))
        try:
            x = b.pick("float", 4, 4, when=fits)
        except Reject:
            n, c, h, w = b.random_shape(4, high=3)
            x = b.new_input((n, c * bs * bs, h, w) if depth else (n, c, h * bs, w * bs))
        if depth:
            b.add(op_type, [x], blocksize=bs, mode=str(b.rng.choice(["DCR", "CRD"])))
        else:
            b.add(op_type, [x], blocksize=bs)
    return build


def _trilu(b: Builder) -> None:
    x = b.pick("float", min_rank=2)
    k = None
    if b.rng.random() < 0.7:
        k = b.const(np.asarray(int(b.rng.integers(-3, 4)), dtype=np.int64), "k")
    b.add("Trilu", [x, k], upper=int(b.rng.integers(2)))


def _eyelike(b: Builder) -> None:
    x = b.pick("float", 2, 2)
    b.add("EyeLike", [x], k=int(b.rng.integers(-2, 3)), dtype=_choice(None, b.elem("float"))(b.rng))


def _constant_of_shape(b: Builder) -> None:
    shape = b.random_shape(int(b.rng.integers(1, 4)))
    value = numpy_helper.from_array(np.asarray([b.rng.uniform(-2, 2)], dtype=b.float_np), "value")
    b.add("ConstantOfShape", [b.ints(shape, "sh")], value=value if b.rng.random() < 0.8 else None)


def _range(b: Builder) -> None:
    dtype = str(b.rng.choice(["float", "int64"]))
    start = float(b.rng.integers(-5, 5))
    delta = float(b.rng.choice([1, 2, -1, 0.5]) if dtype == "float" else b.rng.choice([1, 2, -1, 3]))
    limit = start + delta * int(b.rng.integers(1, 8))
    np_type = b.np_type(dtype)
    b.add("Range", [b.const(np.asarray(start, np_type)), b.const(np.asarray(limit, np_type)),
                    b.const(np.asarray(delta, np_type))])


def _onehot(b: Builder) -> None:
    depth = int(b.rng.integers(2, 6))
    shape = b.random_shape(int(b.rng.integers(1, 3)), high=4)
    indices = b.const(b.rng.integers(-depth, depth, size=shape).astype(np.int64), "idx")
    values = b.const(np.asarray([b.rng.uniform(-1, 0), b.rng.uniform(0, 2)], dtype=np.float32))
    b.add("OneHot", [indices, b.ints(depth, "dep"), values], axis=_axis(b, len(shape) + 1))


def _constant(b: Builder) -> None:
    value = b.values(b.random_shape(int(b.rng.integers(0, 3))))
    b.add("Constant", [], value=numpy_helper.from_array(value, "value"))


def _dropout(b: Builder) -> None:
    x = b.pick("float")
    ratio = b.const(np.float32(b.rng.uniform(0, 0.9))) if b.rng.random() < 0.5 else None
    b.add("Dropout", [x, ratio], n_out=int(b.rng.integers(1, 3)))


def _nonzero(b: Builder) -> None:
    x = b.add("Round", [b.pick("float", min_rank=1)])[0]
    b.add("NonZero", [x])


def _spatial(b: Builder, min_rank: int = 3, max_rank: int = 4) -> Tensor:
    return b.pick("float", min_rank, max_rank)


def _conv(b: Builder) -> None:
    x = _spatial(b)
    rng = b.rng
    c = x.shape[1]
    groups = [g for g in range(1, c + 1) if c % g == 0]
    group = int(rng.choice(groups)) if rng.random() < 0.3 else 1
    m = group * int(rng.integers(1, 4))
    spatial = x.shape[2:]
    kernel = [int(rng.integers(1, min(d, 3) + 1)) if rng.random() < 0.9 else int(rng.integers(1, 4)) for d in spatial]
    attrs = {"strides": [int(s) for s in rng.integers(1, 3, size=len(spatial))] if rng.random() < 0.5 else None,
             "dilations": [int(s) for s in rng.integers(1, 3, size=len(spatial))] if rng.random() < 0.3 else None,
             "group": group}
    if rng.random() < 0.2:
        attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    elif rng.random() < 0.6:
        attrs["pads"] = [int(p) for p in rng.integers(0, 2, size=2 * len(spatial))]
    weight = b.const((rng.standard_normal((m, c // group, *kernel)) * 0.5).astype(np.float32))
    bias = b.const(rng.standard_normal(m).astype(np.float32)) if rng.random() < 0.6 else None
    b.add("Conv", [x, weight, bias], kernel_shape=kernel if rng.random() < 0.5 else None, **attrs)
    strides, dilations = attrs["strides"] or [1] * len(spatial), attrs["dilations"] or [1] * len(spatial)
    if min(pool_output_size(size, kernel[i], strides[i], dilations[i], attrs.get("pads"), i,
                            attrs.get("auto_pad", "NOTSET"), 0) for i, size in enumerate(spatial)) <= 0:
        # a dilated window longer than the padded input: the spec's floor gives no output, ONNX
        # shape inference (truncating toward zero) one, and no engine runs it (fuzz seed 9 trial 4553)
        raise Reject("empty Conv output")


def _conv_transpose(b: Builder) -> None:
    x = _spatial(b)
    rng = b.rng
    c = x.shape[1]
    group = int(rng.choice([g for g in range(1, c + 1) if c % g == 0])) if rng.random() < 0.3 else 1
    m = int(rng.integers(1, 4))
    spatial = x.shape[2:]
    kernel = [int(k) for k in rng.integers(1, 4, size=len(spatial))]
    strides = [int(s) for s in rng.integers(1, 3, size=len(spatial))]
    attrs = {"strides": strides, "group": group}
    if rng.random() < 0.4:
        attrs["output_padding"] = [int(rng.integers(0, s)) for s in strides]
    if rng.random() < 0.2:
        attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    elif rng.random() < 0.5:
        attrs["pads"] = [int(rng.integers(0, k)) for k in kernel * 2]
    weight = b.const((rng.standard_normal((c, m, *kernel)) * 0.5).astype(np.float32))
    bias = b.const(rng.standard_normal(m * group).astype(np.float32)) if rng.random() < 0.5 else None
    b.add("ConvTranspose", [x, weight, bias], **attrs)


def _pool(op_type: str) -> Callable[[Builder], None]:
    def build(b: Builder) -> None:
        x = _spatial(b, 3, 5 if b.rng.random() < 0.2 else 4)
        rng = b.rng
        spatial = x.shape[2:]
        kernel = [int(rng.integers(1, min(d, 3) + 1)) if rng.random() < 0.9 else int(rng.integers(1, 5))
                  for d in spatial]
        strides = [int(s) for s in rng.integers(1, 3, size=len(spatial))] if rng.random() < 0.6 else None
        attrs: dict = {"kernel_shape": kernel, "ceil_mode": int(rng.random() < 0.4), "strides": strides}
        if rng.random() < 0.2:
            attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        elif rng.random() < 0.5:
            attrs["pads"] = [int(rng.integers(0, k)) for k in kernel * 2]
        if op_type == "AveragePool":
            attrs["count_include_pad"] = int(rng.integers(2))
        elif rng.random() < 0.2:
            attrs["dilations"] = [int(s) for s in rng.integers(1, 3, size=len(spatial))]
        out = b.add(op_type, [x], **attrs)[0]
        spec = None
        if out.shape is not None:
            spec = (*x.shape[:2], *(pool_output_size(size, kernel[i], (strides or [1] * len(spatial))[i],
                                                     (attrs.get("dilations") or [1] * len(spatial))[i],
                                                     attrs.get("pads"), i, attrs.get("auto_pad", "NOTSET"),
                                                     attrs["ceil_mode"])
                                    for i, size in enumerate(spatial)))
        if spec is None or min(spec) <= 0:
            b.pool.remove(out)
            b.nodes.pop()
            raise Reject("empty pool output")
        if spec != out.shape:  # ONNX shape inference keeps a ceil_mode window the spec drops
            b.spec_shapes[out.name] = {axis: n for axis, (n, m) in enumerate(zip(spec, out.shape)) if n != m}
            out.shape = out.dims = spec
    return build


def pool_output_size(size: int, k: int, s: int, d: int, pads: list[int] | None, axis: int, auto_pad: str,
                     ceil_mode: int) -> int:
    """A pooled (or, with ``ceil_mode`` 0, convolved) axis's length per the spec, which onnxruntime follows.

    SAME: ceil(size / stride). Explicit pads (VALID: none): floor, or in ceil_mode ceil, of
    (size + pads - dilated kernel) / stride, plus 1; in ceil_mode a last window that would start
    in the end padding (or past the input) is dropped. ONNX shape inference keeps that window.
    """
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return -(-size // s)
    begin, end = (pads[axis], pads[axis + len(pads) // 2]) if pads and auto_pad == "NOTSET" else (0, 0)
    span = size + begin + end - ((k - 1) * d + 1)
    if span < 0:
        return 0
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    return out - 1 if (out - 1) * s >= size + begin else out


def _global_pool(op_type: str) -> Callable[[Builder], None]:
    return lambda b: b.add(op_type, [_spatial(b, 3, 5)]) and None


def _per_channel(b: Builder, c: int, positive: bool = False) -> Tensor:
    values = b.rng.uniform(0.5, 1.5, c) if positive else b.rng.standard_normal(c)
    return b.const(values.astype(np.float32))


def _batchnorm(b: Builder) -> None:
    x = b.pick("float", 2, 5)
    c = x.shape[1]
    b.add("BatchNormalization", [x, _per_channel(b, c), _per_channel(b, c), _per_channel(b, c),
                                 _per_channel(b, c, positive=True)], epsilon=_uniform(1e-5, 1e-2)(b.rng))


def _instancenorm(b: Builder) -> None:
    x = b.pick("float", 3, 5)
    c = x.shape[1]
    b.add("InstanceNormalization", [x, _per_channel(b, c), _per_channel(b, c)], epsilon=_uniform(1e-5, 1e-2)(b.rng))


def _layernorm(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    axis = _axis(b, x.rank)
    norm_shape = x.shape[axis:]
    scale = b.const(b.rng.uniform(0.5, 1.5, norm_shape).astype(np.float32))
    bias = b.const(b.rng.standard_normal(norm_shape).astype(np.float32)) if b.rng.random() < 0.7 else None
    b.add("LayerNormalization", [x, scale, bias], axis=axis, epsilon=_uniform(1e-5, 1e-2)(b.rng))


def _groupnorm(b: Builder) -> None:
    x = b.pick("float", 3, 5)
    c = x.shape[1]
    groups = int(b.rng.choice([g for g in range(1, c + 1) if c % g == 0]))
    n = c if b.opset >= 21 else groups
    b.add("GroupNormalization", [x, _per_channel(b, n, True), _per_channel(b, n)], num_groups=groups, same_shape_as=x,
          epsilon=_uniform(1e-5, 1e-2)(b.rng))


def _lrn(b: Builder) -> None:
    x = b.pick("float", 4, 4)
    b.add("LRN", [x], size=int(b.rng.choice([1, 3, 5])), alpha=_uniform(1e-4, 1e-2)(b.rng),
          beta=_uniform(0.5, 0.9)(b.rng), bias=_uniform(1, 2)(b.rng))


def _lpnorm(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    b.add("LpNormalization", [x], axis=_axis(b, x.rank), p=int(b.rng.choice([1, 2])))


def _mvn(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    axes = sorted(int(a) for a in b.rng.choice(x.rank, size=int(b.rng.integers(1, x.rank + 1)), replace=False))
    b.add("MeanVarianceNormalization", [x], axes=axes if b.rng.random() < 0.8 or x.rank != 4 else None)


def _gemm(b: Builder) -> None:
    rng = b.rng
    a = b.pick("float", 2, 2)
    trans_a = int(rng.integers(2))
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n = int(rng.integers(1, 6))
    trans_b = int(rng.integers(2))
    weight = b.const(rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32))
    c = None
    if rng.random() < 0.7:
        c = b.operand([(n,), (m, n), (1, n), (m, 1), (1, 1), ()][int(rng.integers(6))])
    b.add("Gemm", [a, weight, c], transA=trans_a, transB=trans_b,
          alpha=_uniform(0.5, 2)(rng) if rng.random() < 0.3 else None,
          beta=_uniform(0.5, 2)(rng) if rng.random() < 0.3 else None)


def _matmul(b: Builder) -> None:
    rng = b.rng
    a = b.pick("float", min_rank=1)
    k = a.shape[-1]
    roll = rng.random()
    if roll < 0.25:
        shape: tuple[int, ...] = (k,)
    elif roll < 0.7 or a.rank < 3:
        shape = (k, int(rng.integers(1, 6)))
    else:
        batch = b.broadcast_shape(a.shape[:-2])
        shape = (*batch, k, int(rng.integers(1, 6)))
    other = b.operand(shape)
    b.add("MatMul", [a, other])


def _einsum(b: Builder) -> None:
    """Einsum of one or two operands: letters kept, summed, transposed, contracted, batched or outer,
    now and then a diagonal (a letter twice in an operand) or a leading ``...``; output rank <= 4."""
    rng = b.rng
    x = b.pick("float", 1, 4)
    letters = [chr(ord("a") + i) for i in range(x.rank)]
    if x.rank >= 2 and x.shape[0] == x.shape[1] and rng.random() < 0.2:
        letters[1] = letters[0]  # the diagonal
    sizes = dict(zip(letters, x.shape))
    if x.rank >= 2 and rng.random() < 0.15:  # '...' over the leading dims, one operand
        lead = int(rng.integers(1, x.rank))
        kept = list(dict.fromkeys(letters[lead:]))
        out = [c for c in kept if rng.random() < 0.7]
        rng.shuffle(out)
        b.add("Einsum", [x], equation=f"...{''.join(letters[lead:])}->...{''.join(out)}")
        return
    operands, terms = [x], ["".join(letters)]
    if rng.random() < 0.7:
        distinct = list(dict.fromkeys(letters))
        shared = [c for c in distinct if rng.random() < 0.5] or distinct[-1:]
        extra = [chr(ord("e") + i) for i in range(int(rng.integers(0, 3)))]
        sizes.update({c: int(rng.integers(1, 5)) for c in extra})
        other = (shared + extra)[:4]
        rng.shuffle(other)
        operands.append(b.operand(tuple(sizes[c] for c in other)))
        terms.append("".join(other))
    every = list(dict.fromkeys("".join(terms)))
    out = [c for c in every if rng.random() < 0.6][:4]
    rng.shuffle(out)
    b.add("Einsum", operands, equation=",".join(terms) + "->" + "".join(out))


def _resize(b: Builder) -> None:
    rng = b.rng
    x = b.pick("float", 3, 4)
    mode = str(rng.choice(["nearest", "linear", "cubic"]))
    ctm = str(rng.choice(["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"]))
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if mode == "nearest":
        attrs["nearest_mode"] = str(rng.choice(["round_prefer_floor", "floor", "ceil", "round_prefer_ceil"]))
    if rng.random() < 0.5:
        scales = [1.0] * 2 + [float(rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])) for _ in x.shape[2:]]
        scales = np.asarray(scales[: x.rank], dtype=np.float32)
        b.add("Resize", [x, "", b.const(scales, exact=True)], **attrs)  # scales are float32 by the spec
    else:
        sizes = list(x.shape[:2]) + [int(rng.integers(1, 2 * d + 3)) for d in x.shape[2:]]
        if rng.random() < 0.1:
            sizes[1] = int(rng.integers(1, 5))  # sizes may change channels too
        b.add("Resize", [x, "", "", b.ints(sizes, "sz")], **attrs)


def _prelu(b: Builder) -> None:
    x = b.pick("float", min_rank=1)
    shape = tuple(1 if b.rng.random() < 0.5 else d for d in x.shape[len(x.shape) - int(b.rng.integers(0, x.rank + 1)):])
    b.add("PRelu", [x, b.const((b.rng.standard_normal(shape) * 0.3).astype(np.float32))])


def _mod(b: Builder) -> None:
    x = b.pick(("float", "int64", "int32"))
    if x.dtype == "float":
        b.add("Mod", [x, b.domain(b.other(x), "nonzero")], fmod=1)
        return
    divisor = b.const(_nonzero_ints(b, b.broadcast_shape(x.shape), x.dtype))
    b.add("Mod", [x, divisor], fmod=int(b.rng.integers(2)))


def _reverse_sequence(b: Builder) -> None:
    x = b.pick("float", 2, 5)
    time_axis = int(b.rng.integers(2))
    batch_axis = 1 - time_axis
    lengths = b.rng.integers(1, x.shape[time_axis] + 1, size=x.shape[batch_axis])
    b.add("ReverseSequence", [x, b.ints(lengths, "len")], batch_axis=batch_axis, time_axis=time_axis)


_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def _sequence_lens(b: Builder, batch: int, seq: int) -> Tensor:
    """A recurrent op's constant sequence_lens: the full length, or (half of them) 1..seq per batch entry.

    Past its length a batch entry's Y is zeros and Y_h/Y_c are the states at its last step (the first
    step of the reversed direction is at length - 1). Drawn from ``extra``: older seeds keep their graphs.
    """
    lengths = np.full(batch, seq, np.int32)
    if b.extra.random() < 0.5:
        lengths = b.extra.integers(1, seq + 1, size=batch).astype(np.int32)
    return b.const(lengths, "len")


def _recurrent(op_type: str) -> Callable[[Builder], None]:
    """RNN/GRU/LSTM over a rank-3 tensor: random hidden size, direction, layout (opset >= 14),
    optional bias, initial states, peepholes, clip, GRU's linear_before_reset, RNN's Relu."""
    def build(b: Builder) -> None:
        rng = b.rng
        x = b.pick("float", 3, 3)
        layout = int(b.opset >= 14 and rng.random() < 0.3)
        seq, batch, size = (x.shape[1], x.shape[0], x.shape[2]) if layout else x.shape
        hidden = int(rng.integers(1, 5))
        direction = str(rng.choice(["forward", "reverse", "bidirectional"]))
        dirs = 2 if direction == "bidirectional" else 1
        gates = _GATES[op_type]

        def weights(*shape: int) -> Tensor:
            return b.const((rng.standard_normal(shape) * 0.5).astype(np.float32))

        state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
        inputs: list = [x, weights(dirs, gates * hidden, size), weights(dirs, gates * hidden, hidden),
                        weights(dirs, 2 * gates * hidden) if rng.random() < 0.7 else None,
                        _sequence_lens(b, batch, seq) if rng.random() < 0.2 else None,
                        b.operand(state) if rng.random() < 0.5 else None]
        attrs: dict = {"hidden_size": hidden, "direction": direction}
        if layout:
            attrs["layout"] = 1
        if rng.random() < 0.2:
            attrs["clip"] = float(np.float32(rng.uniform(0.5, 3)))
        if op_type == "LSTM":
            inputs += [b.operand(state) if rng.random() < 0.5 else None,
                       weights(dirs, 3 * hidden) if rng.random() < 0.3 else None]
        elif op_type == "GRU":
            attrs["linear_before_reset"] = int(rng.integers(2))
        elif rng.random() < 0.3:
            attrs["activations"] = ["Relu"] * dirs
        b.add(op_type, inputs, n_out=3 if op_type == "LSTM" else 2, **attrs)
    return build


def _nonzero_ints(b: Builder, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    values = b.rng.integers(1, 5, size=shape) * np.where(b.rng.random(shape) < 0.5, -1, 1)
    return np.asarray(values, dtype=b.np_type(dtype))


def _gelu(b: Builder) -> None:
    x = b.pick("float")
    b.add("Gelu", [x], same_shape_as=x, approximate=str(b.rng.choice(["none", "tanh"])))


_UNARY = {
    "Abs": None, "Acos": "unit", "Acosh": "ge1", "Asin": "unit", "Asinh": None, "Atan": None, "Atanh": "unit",
    "Ceil": None, "Cos": "small", "Cosh": "small", "Erf": None, "Exp": "small", "Floor": None, "Log": "positive",
    "Neg": None, "Reciprocal": "nonzero", "Relu": None, "Round": None, "Sigmoid": None, "Sign": None, "Sin": "small",
    "Sinh": "small", "Softplus": None, "Softsign": None, "Sqrt": "positive", "Tan": "unit", "Tanh": None,
    "IsNaN": None, "Identity": None, "HardSwish": None,
}
for _op, _domain in _UNARY.items():
    _register(_op, unary(_op, _domain))
_register("Mish", unary("Mish"), min_opset=18)
_register("Gelu", _gelu, min_opset=20)
_register("Celu", unary("Celu", alpha=_uniform(0.2, 2)))
_register("Elu", unary("Elu", alpha=_uniform(0.2, 2)))
_register("HardSigmoid", unary("HardSigmoid", alpha=_uniform(0.1, 0.5), beta=_uniform(0.2, 0.8)))
_register("LeakyRelu", unary("LeakyRelu", alpha=_uniform(0.01, 0.5)))
_register("Selu", unary("Selu", alpha=_uniform(1, 2), gamma=_uniform(1, 1.5)))
_register("Shrink", unary("Shrink", bias=_uniform(0, 1), lambd=_uniform(0, 1)))
_register("ThresholdedRelu", unary("ThresholdedRelu", alpha=_uniform(0, 1)))
for _op in ("Add", "Sub", "Mul"):
    _register(_op, binary(_op, ("float", "int64", "int32")))
_register("Div", binary("Div", rhs_domain="nonzero"))
_register("Pow", binary("Pow", lhs_domain="positive", rhs_domain="small"))
for _op in ("Max", "Min", "Mean", "Sum"):
    _register(_op, variadic(_op))
for _op in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"):
    _register(_op, compare(_op))
for _op in ("And", "Or", "Xor", "Not"):
    _register(_op, logical(_op))
_register("Where", _where)
_register("Mod", _mod)
_register("PRelu", _prelu)
for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    _register(_op, _softmax_like(_op))
_register("ArgMax", _argminmax("ArgMax"))
_register("ArgMin", _argminmax("ArgMin"))
for _op, _domain in {"ReduceMax": None, "ReduceMean": None, "ReduceMin": None, "ReduceProd": None,
                     "ReduceSumSquare": None, "ReduceLogSum": "positive", "ReduceLogSumExp": None,
                     "ReduceL1": None, "ReduceL2": None}.items():
    _register(_op, _reduce(_op, _domain))
_register("ReduceSum", _reduce("ReduceSum", axes_input_since=13))
_register("Cast", _cast)
_register("CastLike", _castlike, min_opset=15)
_register("Clip", _clip)
_register("CumSum", _cumsum)
_register("TopK", _topk)
_register("Shape", _shape)
_register("Size", _size)
_register("Reshape", _reshape)
_register("Flatten", _flatten)
_register("Squeeze", _squeeze)
_register("Unsqueeze", _unsqueeze)
_register("Transpose", _transpose)
_register("Concat", _concat)
_register("Split", _split)
_register("Slice", _slice)
_register("Gather", _gather)
_register("GatherElements", _gather_elements)
_register("GatherND", _gather_nd)
_register("ScatterElements", _scatter_elements)
_register("ScatterND", _scatter_nd)
_register("Expand", _expand)
_register("Tile", _tile)
_register("Pad", _pad)
_register("DepthToSpace", _depth_space("DepthToSpace"))
_register("SpaceToDepth", _depth_space("SpaceToDepth"))
_register("Trilu", _trilu, min_opset=14)
_register("EyeLike", _eyelike)
_register("ConstantOfShape", _constant_of_shape)
_register("Range", _range)
_register("OneHot", _onehot)
_register("Constant", _constant)
_register("Dropout", _dropout)
_register("NonZero", _nonzero)
_register("Conv", _conv)
_register("ConvTranspose", _conv_transpose)
_register("MaxPool", _pool("MaxPool"))
_register("AveragePool", _pool("AveragePool"))
_register("GlobalAveragePool", _global_pool("GlobalAveragePool"))
_register("GlobalMaxPool", _global_pool("GlobalMaxPool"))
_register("BatchNormalization", _batchnorm)
_register("InstanceNormalization", _instancenorm)
_register("LayerNormalization", _layernorm, min_opset=17)
_register("GroupNormalization", _groupnorm, min_opset=21)  # the opset-18 version is deprecated
_register("LRN", _lrn)
_register("LpNormalization", _lpnorm)
_register("MeanVarianceNormalization", _mvn)
_register("Gemm", _gemm)
_register("MatMul", _matmul)
_register("Einsum", _einsum)
_register("Resize", _resize)
for _op in _GATES:
    _register(_op, _recurrent(_op))
_register("ReverseSequence", _reverse_sequence)

#: Ops the coverage table verifies that the generator does not make, and why.
NOT_GENERATED = {
    "Upsample": "deprecated since opset 10: not valid ONNX at opsets 13-21 (Resize covers it)",
    "Swish": "exists only from opset 24, above the fuzzed range 13-21",
    "Loop": "its body is a subgraph: the generator grows flat graphs, and the oracle's cuts, node-by-node runs "
            "and rewrites take none (tests/onnx2mil/test_control_flow.py checks Loop against onnxruntime)",
}

#: Ops that float16 graphs cannot hold (strict type inference rejects them), and why.
FLOAT32_ONLY = {
    "Celu": "the spec allows tensor(float) only",
    "MeanVarianceNormalization": "its function body adds a float32 epsilon, which strict inference rejects beside float16",
}


# ====================================================================== whole graphs


@functools.lru_cache(maxsize=None)
def op_exists(op_type: str, opset: int) -> bool:
    """True when ``op_type`` is defined (and not deprecated) at ``opset`` of the default domain."""
    try:
        return not onnx.defs.get_schema(op_type, opset).deprecated
    except onnx.defs.SchemaError:
        return False


def usable_ops(opset: int, ops: list[str] | None = None) -> list[str]:
    return sorted(op for op in (ops or OPS)
                  if OPS[op].min_opset <= opset <= OPS[op].max_opset and op_exists(op, opset))


def _pick_op(b: Builder, ops: list[str]) -> str:
    return ops[int(b.rng.integers(len(ops)))]



def generate(seed: int, ops: list[str] | None = None, max_nodes: int = 8, half: bool | None = None) -> FuzzCase:
    """The graph for ``seed`` (deterministic), over ``ops`` (default: every op in :data:`OPS`).

    ``half`` makes a float16 (True) or float32 (False) graph; by default the seed decides
    (:data:`HALF_SHARE` of them are float16). That choice and the others added since draw from
    a second stream, so a seed's float32 graph is the one it was before float16 graphs existed.
    """
    rng = np.random.default_rng(seed)
    extra = np.random.default_rng([seed, 16])
    half = bool(extra.random() < HALF_SHARE) if half is None else half
    opset = int(rng.integers(MIN_OPSET, MAX_OPSET + 1))
    style = str(rng.choice(["normal", "uniform", "wide", "grid"]))
    usable = usable_ops(opset, ops)
    if not usable:  # every requested op needs a newer opset: use the newest
        opset = MAX_OPSET
        usable = usable_ops(opset, ops)
    b = Builder(rng, opset, style, half, extra)
    for _ in range(int(rng.integers(1, 3))):
        b.new_input(b.random_shape(int(rng.integers(1, 5))))
    target = int(rng.integers(1, max_nodes + 1))
    main_ops: list[str] = []
    attempts = 0
    while len(main_ops) < target and attempts < target * 8:
        attempts += 1
        op = _pick_op(b, usable)
        mark = (len(b.nodes), len(b.pool), dict(b.inits), dict(b.inputs), dict(b.feeds))
        try:
            OPS[op].build(b)
            main_ops.append(op)
        except Reject:
            # Roll back everything the failed attempt added (adapters, constants, inputs).
            del b.nodes[mark[0]:]
            del b.pool[mark[1]:]
            b.inits, b.inputs, b.feeds = mark[2], mark[3], mark[4]
    if not b.nodes:
        b.add("Identity", [next(iter(b.inputs.values()))])
        main_ops.append("Identity")
    outputs = _choose_outputs(b)
    if half:
        outputs = [_as_float32(b, t) if t.dtype == "float" and extra.random() < FLOAT32_IO_SHARE else t
                   for t in outputs]
    model = b.model(outputs)
    dynamic = None
    if rng.random() < 0.3:
        model, dynamic = _make_dynamic(model, b, rng)
    if dynamic is None:
        model = _with_inferred_outputs(model, b)
    onnx.checker.check_model(model, full_check=True)
    _prune_unused(model, b.feeds)
    return FuzzCase(model, {n: b.feeds[n] for n in (i.name for i in model.graph.input)}, seed, opset, style,
                    dynamic, main_ops, half, b.spec_shapes)


def _as_float32(b: Builder, t: Tensor) -> Tensor:
    """A float16 graph's output ``t`` cast to float32 (``t`` itself where inference cannot type the cast)."""
    try:
        return b.add("Cast", [t], to=TensorProto.FLOAT)[0]
    except Reject:
        return t


def _choose_outputs(b: Builder) -> list[Tensor]:
    produced = {name for node in b.nodes for name in node.output}
    consumed = {name for node in b.nodes for name in node.input}
    made = [t for t in b.pool if t.name in produced]
    leaves = [t for t in made if t.name not in consumed]
    outputs = leaves[-3:] or made[-1:]
    extra = [t for t in made if t not in outputs]
    if extra and b.rng.random() < 0.3:
        outputs.append(extra[int(b.rng.integers(len(extra)))])
    return outputs


def _make_dynamic(model: onnx.ModelProto, b: Builder, rng: np.random.Generator):
    """Give some inputs a symbolic first (or another) dimension; keep the model if it stays valid."""
    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    inputs = [i for i in candidate.graph.input if i.type.tensor_type.shape.dim]
    if not inputs:
        return model, None
    chosen = [i for i in inputs if rng.random() < 0.7] or inputs[:1]
    axis = 0 if rng.random() < 0.8 else None
    picked = []
    for value in chosen:
        dims = value.type.tensor_type.shape.dim
        picked.append(dims[axis if axis is not None else int(rng.integers(len(dims)))])
    # One symbol per size: a dim_param promises that every dim carrying it has the same length.
    sizes = [dim.dim_value for dim in picked]
    batch = max(set(sizes), key=sizes.count)
    for dim in picked:
        size = dim.dim_value
        dim.dim_param = "N" if size == batch else f"n{size}"
    for value in candidate.graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        candidate = _with_inferred_outputs(candidate, b)
    except Exception:  # noqa: BLE001 - this graph needs its static shapes
        return model, None
    if not all(v.type.tensor_type.HasField("shape") for v in candidate.graph.output):
        return model, None
    return candidate, {"inputs": [v.name for v in chosen], "extra_axis": axis is None}


def _with_inferred_outputs(model: onnx.ModelProto, b: Builder) -> onnx.ModelProto:
    """Declare outputs with the shapes strict inference gives (symbolic where inputs are).

    A dim that inference gets wrong (downstream of a ceil_mode pool of ``b.spec_shapes``) is declared
    unknown: the declared shape then neither contradicts inference nor the real output.
    """
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    for value in bare.graph.output:  # a declared spec shape would contradict inference
        value.type.tensor_type.ClearField("shape")
    known = {}
    for shaped in (bare, b.spec_shaped(bare)) if b.spec_shapes else (bare,):
        inferred = onnx.shape_inference.infer_shapes(shaped, check_type=True, strict_mode=True, data_prop=True)
        known[shaped is bare] = {v.name: v.type.tensor_type for v in [*inferred.graph.value_info, *inferred.graph.output]
                                 if v.type.tensor_type.HasField("shape")}
    for value in model.graph.output:
        if value.name in known[True]:
            value.type.tensor_type.CopyFrom(known[True][value.name])
            spec = known.get(False, known[True]).get(value.name)
            for i, dim in enumerate(value.type.tensor_type.shape.dim):
                if spec is None or spec.shape.dim[i] != dim:
                    dim.Clear()
    return model


def _prune_unused(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """Drop initializers and inputs no node reads (rolled-back attempts leave none, but outputs may)."""
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep_inits)
    keep_inputs = [i for i in graph.input if i.name in used]
    if keep_inputs:
        del graph.input[:]
        graph.input.extend(keep_inputs)


def describe(model: onnx.ModelProto) -> list[str]:
    """The graph in words, one line per input, initializer, node and output (info.json's ``min_graph``)."""
    lines = []
    for value in model.graph.input:
        lines.append(f"input {value.name} {_type_words(value)}")
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        shown = array.tolist() if array.size <= 8 else f"<{array.size} values>"
        lines.append(f"init {init.name} {array.dtype} {list(array.shape)} = {shown}")
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else ("<tensor>" if isinstance(v, onnx.TensorProto) else v))
                 for k, v in attrs.items()}
        lines.append(f"{node.op_type}({', '.join(node.input)}) -> {', '.join(node.output)} {attrs if attrs else ''}"
                     .rstrip())
    for value in model.graph.output:
        lines.append(f"output {value.name} {_type_words(value)}")
    return lines


def _type_words(value: onnx.ValueInfoProto) -> str:
    tensor_type = value.type.tensor_type
    elem = TensorProto.DataType.Name(tensor_type.elem_type)
    if not tensor_type.HasField("shape"):
        return f"{elem} ?"
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim]
    return f"{elem} {dims}"
