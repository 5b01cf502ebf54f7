"""``interop reduce``: cut an ONNX model down to the smallest part whose conversion still fails.

The oracle is `interop check` itself, as in ``polygraphy debug reduce``: a part of the
model (a set of its nodes) *fails* when its conversion to the target format fails the
check against the ONNX part, or when the conversion crashes with the same exit code as
the whole model's. A part's inputs are the values the whole model computes there (run
on the given or generated inputs, in one batch), so every part sees real data.

1. Bisection over the topological order: the smallest end, then the largest start,
   that still fail, repeated until neither moves.
2. Dropping branches: each remaining node is removed in turn (its output becomes an
   input of the part, fed the value the whole model computes) and stays removed
   while the part still fails, until no single node can go.

The result is the smallest failing model and its inputs: the file a bug report needs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.errors import remove_folder_at_sudden_exit, remove_sudden_exit_cleanup
from interop.plugin_api import ConversionError, InteropError, UnsupportedModelError, supports_intermediates

#: Samples fed (in one batch) when no inputs are given.
DEFAULT_SAMPLES = 8


@dataclass
class Outcome:
    """How a part of the model fared: ``kind`` is "passes", "mismatch" or "crash"."""

    kind: str
    exit_code: int
    message: str

    def same_failure(self, other: "Outcome") -> bool:
        return self.kind == other.kind != "passes" and self.exit_code == other.exit_code


@dataclass
class ReduceResult:
    """The smallest failing part found (``model``/``inputs``), or why there was nothing to reduce."""

    outcome: Outcome
    original_nodes: int
    kept: list[str] = field(default_factory=list)
    model: Any = None
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.outcome.kind, "exit_code": self.outcome.exit_code, "message": self.outcome.message,
                "original_nodes": self.original_nodes, "nodes": len(self.kept), "kept": list(self.kept),
                "inputs": {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in self.inputs.items()},
                "evaluations": self.evaluations, "seconds": round(self.seconds, 3)}


# --------------------------------------------------------------------------- graph surgery


def _fold_constants(model: Any) -> None:
    """Constant nodes become initializers, so they are never counted or cut as nodes."""
    from onnx import AttributeProto, helper, numpy_helper

    kept = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.output) == 1 and len(node.attribute) == 1:
            attribute = node.attribute[0]
            value = helper.get_attribute_value(attribute)
            if attribute.type == AttributeProto.TENSOR:
                array = numpy_helper.to_array(value)
            elif attribute.name in ("value_float", "value_int", "value_floats", "value_ints"):
                dtype = np.float32 if "float" in attribute.name else np.int64
                array = np.array(value, dtype=dtype)
            else:
                kept.append(node)
                continue
            model.graph.initializer.append(numpy_helper.from_array(array, node.output[0]))
            continue
        kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _subgraph_names(graph: Any) -> set[str]:
    """Names a nested graph reads from the enclosing scope (used but not defined inside it)."""
    from onnx import AttributeProto

    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(name for name in node.input if name)
        defined.update(node.output)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.type == AttributeProto.GRAPH else
                        list(attribute.graphs) if attribute.type == AttributeProto.GRAPHS else []):
                used |= _subgraph_names(sub)
    return used - defined


def node_inputs(node: Any) -> set[str]:
    """Every value a node reads, including those its nested graphs (If, Loop, Scan) read from outside."""
    from onnx import AttributeProto

    names = {name for name in node.input if name}
    for attribute in node.attribute:
        for sub in ([attribute.g] if attribute.type == AttributeProto.GRAPH else
                    list(attribute.graphs) if attribute.type == AttributeProto.GRAPHS else []):
            names |= _subgraph_names(sub)
    return names


class _Part:
    """A set of the model's nodes as a model of its own: inputs, outputs, initializers."""

    def __init__(self, model: Any, indices: Sequence[int], original_outputs: set[str]):
        nodes = [model.graph.node[i] for i in sorted(indices)]
        chosen = set(indices)
        produced = {name for node in nodes for name in node.output if name}
        read_inside = set().union(*(node_inputs(node) for node in nodes)) if nodes else set()
        read_outside = set().union(*(node_inputs(node) for i, node in enumerate(model.graph.node)
                                     if i not in chosen)) if len(chosen) < len(model.graph.node) else set()
        initializers = {init.name for init in model.graph.initializer}
        self.nodes = nodes
        self.inputs = sorted(read_inside - produced - initializers)
        self.outputs = [name for node in nodes for name in node.output if name and (
            name in original_outputs or name in read_outside or name not in read_inside)]
        self.initializers = [init for init in model.graph.initializer if init.name in read_inside]


# --------------------------------------------------------------------------- the reducer


class Reducer:
    """Evaluates parts of one ONNX model (cached) and shrinks the failing part."""

    def __init__(
        self, path: Path, target: str, feeds: Mapping[str, np.ndarray], *, check_options: Mapping[str, Any],
        registry: Any = None, progress: Callable[[str], None] | None = None,
    ):
        import onnx

        from interop.builtin_plugins import runtime_hint
        from interop.checker.models import open_model, parse_model_arg
        from interop.plugin_registry import get_registry

        self.registry = registry or get_registry()
        self.path = Path(path)
        self.target = target
        self.check_options = dict(check_options)
        self.progress = progress or (lambda message: None)
        self.model = onnx.load(str(path))
        _fold_constants(self.model)
        self.original_outputs = {value.name for value in self.model.graph.output}
        self.feeds = {name: np.asarray(value) for name, value in feeds.items()}
        session = open_model(parse_model_arg(str(path), self.registry), {}, self.registry).session
        if not supports_intermediates(session):
            raise UnsupportedModelError(
                f"reduce needs the values inside {path}, and its runtime ({session.engine}) cannot return them",
                hint=runtime_hint("onnx") or "install a runtime of onnx models that exposes intermediate values")
        self.session = session
        self._values: dict[str, np.ndarray] = {}
        self._cache: dict[frozenset[int], Outcome] = {}
        self.evaluations = 0
        self.work = Path(tempfile.mkdtemp(prefix="interop-reduce-"))
        self._sudden_cleanup = remove_folder_at_sudden_exit(self.work)

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        remove_sudden_exit_cleanup(self._sudden_cleanup)

    # ---------------------------------------------------------------- values
    def values(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The whole model's values of ``names`` on the inputs (computed once, kept)."""
        missing = [n for n in names if n not in self._values and n not in self.feeds]
        for start in range(0, len(missing), 48):
            self._values.update(self.session.run_intermediates(self.feeds, missing[start:start + 48]))
        return {name: self.feeds[name] if name in self.feeds else self._values[name] for name in names}

    def part_model(self, indices: Sequence[int]) -> tuple[Any, dict[str, np.ndarray]]:
        """The part as an ONNX model with exact shapes, and the values its inputs take."""
        import onnx
        from onnx import helper

        part = _Part(self.model, indices, self.original_outputs)
        values = self.values([*part.inputs, *part.outputs])

        def info(name: str) -> Any:
            array = values[name]
            return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))

        graph = helper.make_graph(list(part.nodes), f"{self.model.graph.name or 'model'}_part",
                                  [info(n) for n in part.inputs], [info(n) for n in part.outputs],
                                  initializer=list(part.initializers))
        model = helper.make_model(graph, opset_imports=list(self.model.opset_import))
        model.ir_version = self.model.ir_version
        for function in self.model.functions:
            model.functions.append(function)
        onnx.checker.check_model(model)
        return model, {name: values[name] for name in part.inputs}

    # ---------------------------------------------------------------- the oracle
    def evaluate(self, indices: Sequence[int]) -> Outcome:
        """Convert the part and check it against itself in ONNX; cached per set of nodes."""
        key = frozenset(indices)
        if key not in self._cache:
            self._cache[key] = self._evaluate(sorted(key))
            self.evaluations += 1
        return self._cache[key]

    def _evaluate(self, indices: list[int]) -> Outcome:
        import onnx

        import interop

        folder = self.work / f"part-{self.evaluations}"
        folder.mkdir()
        try:
            model, inputs = self.part_model(indices)
        except Exception as exc:  # noqa: BLE001 - a cut onnx itself rejects is not a candidate
            return Outcome("invalid", 2, f"not a valid model: {type(exc).__name__}: {exc}")
        source = folder / "part.onnx"
        onnx.save(model, str(source))
        converted = folder / f"part{target_extension(self.target, self.registry)}"
        try:
            interop.convert(source, converted, self.target, registry=self.registry, force=True)
        except InteropError as exc:
            return Outcome("crash", exc.exit_code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a converter's own exception is a crash (exit 4)
            return Outcome("crash", ConversionError.exit_code, f"{type(exc).__name__}: {exc}")
        try:
            report = interop.check(source, [converted], inputs=inputs, registry=self.registry,
                                   **self.check_options)
        except InteropError as exc:
            return Outcome("crash", exc.exit_code, exc.message)
        if report.passed:
            return Outcome("passes", 0, "the converted part passes the check")
        pair, output = report.failures[0]
        message = pair.problems[0] if output is None else f"{output.name}: {output.message}"
        return Outcome("mismatch", 1, message)

    # ---------------------------------------------------------------- shrinking
    def reduce(self) -> ReduceResult:
        started = time.perf_counter()
        count = len(self.model.graph.node)
        everything = list(range(count))
        self.progress(f"checking the whole model ({count} nodes) converted to {self.target}")
        original = self.evaluate(everything)
        if original.kind in ("passes", "invalid"):
            return ReduceResult(original, count, evaluations=self.evaluations,
                                seconds=time.perf_counter() - started)
        self.progress(f"the whole model fails ({original.kind}: {original.message[:120]})")
        start, end = 0, count
        while True:
            before = (start, end)
            low, high = start + 1, end  # the smallest end that still fails
            while low < high:
                middle = (low + high) // 2
                if self.evaluate(range(start, middle)).same_failure(original):
                    high = middle
                else:
                    low = middle + 1
            end = high
            low, high = start, end - 1  # the largest start that still fails
            while low < high:
                middle = (low + high + 1) // 2
                if self.evaluate(range(middle, end)).same_failure(original):
                    low = middle
                else:
                    high = middle - 1
            start = low
            self.progress(f"bisection: nodes {start}..{end - 1} ({end - start} of {count}) still fail")
            if (start, end) == before:
                break
        kept = list(range(start, end))
        changed = True
        while changed and len(kept) > 1:
            changed = False
            for index in reversed(list(kept)):
                trial = [i for i in kept if i != index]
                if trial and self.evaluate(trial).same_failure(original):
                    kept = trial
                    changed = True
            self.progress(f"dropping branches: {len(kept)} node(s) still fail")
        model, inputs = self.part_model(kept)
        final = self.evaluate(kept)
        return ReduceResult(final, count, [_describe(self.model.graph.node[i]) for i in kept], model, inputs,
                            self.evaluations, time.perf_counter() - started)


def _describe(node: Any) -> str:
    return f"{node.op_type} {node.name or node.output[0]!r}"


def target_extension(fmt: str, registry: Any) -> str:
    """The file suffix of format ``fmt`` (``.onnx``, from its declaration); an unknown format is exit 2."""
    provided = registry.formats.get(fmt)
    if provided is None:
        known = ", ".join(sorted(registry.formats)) or "none"
        raise InteropError(f"unknown format {fmt!r}", hint=f"installed formats: {known}")
    item = provided.item
    suffixes = (*item.extensions, *item.directory_suffixes)
    return suffixes[0] if suffixes else ""


def reduce_model(
    path: str | Path, target: str, *, inputs: str | Path | Mapping[str, np.ndarray] | None = None,
    seed: int = 0, samples: int | None = None, value_range: Any = None, input_shapes: Any = None,
    check_options: Mapping[str, Any] | None = None, registry: Any = None,
    progress: Callable[[str], None] | None = None,
) -> ReduceResult:
    """Shrink the ONNX model at ``path`` to the smallest part whose conversion to ``target`` still fails.

    ``inputs`` (an .npz path or arrays named like the model's inputs) or seeded random
    inputs (``seed``, ``samples``, ``value_range``, ``input_shapes``, as `interop check`)
    are fed in one batch. ``check_options`` go to :func:`interop.check` (tolerances,
    error statistics, ...). The result's ``outcome.kind`` is "passes" when the whole
    model's conversion passes (nothing to reduce).
    """
    from interop.checker.inputs import load_npz
    from interop.checker.models import open_model, parse_model_arg
    from interop.checker.runner import build_inputs, make_options
    from interop.formats import detect_format
    from interop.plugin_registry import get_registry

    registry = registry or get_registry()
    path = Path(path)
    fmt = detect_format(path, registry)
    if fmt != "onnx":
        raise InteropError(f"{path} is a {fmt} model; reduce cuts ONNX models",
                           hint=f"convert it first: interop convert {path} -o model.onnx")
    target_extension(target, registry)
    options = make_options(inputs=inputs, seed=seed, samples=samples or DEFAULT_SAMPLES, value_range=value_range,
                           input_shapes=input_shapes, batch_sizes=[samples or DEFAULT_SAMPLES],
                           project_config=False)
    session = open_model(parse_model_arg(str(path), registry), {}, registry).session
    if isinstance(inputs, (str, Path)):
        options.inputs = load_npz(Path(inputs))
    input_set = build_inputs(list(session.inputs), options)
    feeds = {name: value for name, value in input_set.arrays.items()}
    reducer = Reducer(path, target, feeds, check_options={"project_config": False, **(check_options or {})},
                      registry=registry, progress=progress)
    try:
        return reducer.reduce()
    finally:
        reducer.close()
