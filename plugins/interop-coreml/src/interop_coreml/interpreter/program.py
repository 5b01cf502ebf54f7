"""An executable view of a loaded ML Program: compiled steps, feeds checking, running, capture.

Loading walks the MIL function once, resolves every op input to either a
constant (from a ``const`` op) or the name of a value computed at run time,
looks each op type up in the kernel table (failing early, naming the op and
its place, if a kernel is missing) and folds ops whose inputs are all
constants.  ``run`` then evaluates the remaining steps in program order.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from .buffers import BufferPool
from .dtypes import numpy_dtype_of, static_shape
from .errors import InputError, InterpreterError, OpExecutionError, UnsupportedOpError
from .kernels import KERNELS, OpContext
from .loading import load_saved_model
from .threads import single_threaded_blas

# Ops whose result must not be computed once at load time even if every input is constant.
_NEVER_FOLD = {"random_bernoulli", "random_categorical", "random_normal", "random_uniform", "read_state"}
# Ops whose kernels always return a newly allocated array (never a view of an input), so a
# later op may overwrite their result in place once nothing else reads it.
_FRESH_RESULT_OPS = {
    "conv", "conv_transpose", "linear", "matmul", "add", "sub", "mul", "real_div", "batch_norm",
    "relu", "max_pool", "avg_pool", "layer_norm", "instance_norm", "gelu", "sigmoid", "silu",
}
# Ops that run nested blocks; evaluated by the program itself, not by a kernel.
_CONTROL_FLOW = {"cond", "while_loop"}
# Ops whose kernels take ``fused_input`` and apply elementwise epilogues (ctx.epilogue) to their
# result block by block, and the elementwise ops they absorb (see Program._fuse).
_EPILOGUE_PRODUCERS = {"conv"}
_EPILOGUE_OPS = ("add", "relu")


@dataclass(frozen=True)
class TensorInfo:
    """Name, numpy dtype name and shape (None for flexible dims) of a program input or output."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class OpRecord:
    """One op of the program, in execution order: for listing and for locating divergences."""

    op_type: str
    op_name: str
    outputs: tuple[str, ...]
    location: str
    inputs: tuple[str, ...] = ()  # the variables it reads (constants left out)


@dataclass
class _Step:
    op_type: str
    op_name: str
    location: str
    kernel: Any
    inputs: dict[str, Any]  # param -> ("var", name) | ("const", value) | ("list", [refs])
    outputs: list[tuple[str, np.dtype | None]]
    context: OpContext
    blocks: list["_Block"]
    # Filled by _plan_memory: values last read by this step, and a context allowing in-place writes.
    dying: tuple[str, ...] = ()
    inplace_context: OpContext | None = None


@dataclass
class _Block:
    input_names: list[str]
    steps: list[_Step]
    output_refs: list[Any]


def _is_constant_var(var: Any) -> bool:
    op = getattr(var, "op", None)
    return op is not None and op.op_type == "const"


def _const_value(var: Any) -> Any:
    value = var.val
    if isinstance(value, str):
        return value
    dtype = numpy_dtype_of(var.dtype)
    array = np.asarray(value)
    if dtype is not None and array.dtype != dtype:
        array = array.astype(dtype)
    return array


def _widen(value: Any) -> Any:
    """float16 values are computed in float32 (exactly representable), then rounded back."""
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return value.astype(np.float32)
    if isinstance(value, list):
        return [_widen(v) for v in value]
    return value


def _coerce(value: Any, dtype: np.dtype | None) -> Any:
    if dtype is None or isinstance(value, (str, list)):
        return value
    array = np.asarray(value)
    if array.dtype != dtype:
        array = array.astype(dtype)
    return array


class Program:
    """A Core ML ML Program ready to be evaluated with numpy kernels.

    Use ``load_program(path)`` to make one from a saved file; constructing one
    directly from an in-memory MIL program is meant for testing kernels.  ``inputs``/``outputs`` describe the
    main function's interface with Core ML names; ``run(feeds, capture=[...])``
    evaluates it; ``ops`` lists every op in execution order.
    """

    def __init__(
        self,
        mil_program: Any,
        *,
        path: pathlib.Path | None = None,
        metadata: Mapping[str, str] | None = None,
        function_name: str = "main",
    ):
        self.path = path
        if function_name not in mil_program.functions:
            raise InterpreterError(
                f"{path or 'the program'} has no function {function_name!r}; "
                f"it has {sorted(mil_program.functions)}"
            )
        function = mil_program.functions[function_name]
        self.function_name = function_name
        self.opset = str(getattr(function, "opset_version", ""))
        self.metadata: dict[str, str] = dict(metadata or {})
        self.inputs = [
            TensorInfo(name, _dtype_name(var.dtype), static_shape(var.shape))
            for name, var in function.inputs.items()
        ]
        self.ops: list[OpRecord] = []
        self._constants: dict[str, Any] = {}
        self._buffers = BufferPool()
        self._params: dict[str, dict[str, Any]] = {}  # op name -> param -> reference, for constant_input
        self._block = self._compile_block(function, f"function {function_name!r}", input_names=list(function.inputs))
        self.outputs = [
            TensorInfo(var.name, _dtype_name(var.dtype), static_shape(var.shape)) for var in function.outputs
        ]
        self._input_dtypes = {
            name: numpy_dtype_of(var.dtype) for name, var in function.inputs.items()
        }
        # Flexible input dims that are one symbol (recorded as shared by the translator): each
        # symbol's (input, axis) places, so feeds that disagree on it are refused by name.
        self._symbol_places: dict[str, list[tuple[str, int]]] = {}
        for spec, var in zip(self.inputs, function.inputs.values()):
            for axis, (dim, known) in enumerate(zip(var.shape or (), spec.shape)):
                if known is None:
                    self._symbol_places.setdefault(str(dim), []).append((spec.name, axis))
        self._fold_constants(self._block)
        # The fused copy runs unless a capture asks for a value fusion leaves out.
        self._fused_block, self._absorbed = self._fuse(self._block)
        self._plan_memory(self._block)
        self._plan_memory(self._fused_block)

    # ----------------------------------------------------------------- compiling
    def _reference(self, var: Any) -> Any:
        if isinstance(var, (list, tuple)):
            return ("list", [self._reference(v) for v in var])
        if _is_constant_var(var):
            value = _const_value(var)
            self._constants[var.name] = value
            return ("const", value)
        return ("var", var.name)

    def _compile_block(self, block: Any, location: str, input_names: list[str]) -> _Block:
        steps: list[_Step] = []
        for op in block.operations:
            outputs = [(var.name, numpy_dtype_of(var.dtype)) for var in op.outputs]
            record = OpRecord(op.op_type, op.name, tuple(name for name, _ in outputs), location,
                              _variable_inputs(op))
            self.ops.append(record)
            if op.op_type == "const":
                for var in op.outputs:
                    self._constants[var.name] = _const_value(var)
                continue
            kernel_fn = None
            nested: list[_Block] = []
            if op.op_type in _CONTROL_FLOW:
                for index, nested_block in enumerate(op.blocks):
                    nested.append(
                        self._compile_block(
                            nested_block,
                            f"{location} > block {index} of {op.op_type} {op.name!r}",
                            input_names=[v.name for v in nested_block.inputs],
                        )
                    )
            else:
                kernel_fn = KERNELS.get(op.op_type)
                if kernel_fn is None:
                    raise UnsupportedOpError(op.op_type, op.name, list(record.outputs), location)
            # Params named "_..." are builder internals (control-flow callbacks), not values.
            inputs = {
                param: self._reference(var) for param, var in op.inputs.items() if not param.startswith("_")
            }
            context = OpContext(
                op_type=op.op_type,
                op_name=op.name,
                output_dtypes=[dtype for _, dtype in outputs],
                output_shapes=[static_shape(getattr(var, "shape", None)) for var in op.outputs],
                opset=self.opset,
                buffers=self._buffers,
            )
            self._params[op.name] = inputs
            steps.append(_Step(op.op_type, op.name, location, kernel_fn, inputs, outputs, context, nested))
        output_refs = [self._reference(var) for var in block.outputs]
        return _Block(input_names, steps, output_refs)

    def _fold_constants(self, block: _Block) -> None:
        """Evaluate, once, every step whose inputs are all constants (shape arithmetic, dequantization)."""
        remaining = []
        for step in block.steps:
            if step.blocks or step.op_type in _NEVER_FOLD or not _all_constant(step.inputs, self._constants):
                remaining.append(step)
                continue
            values = self._execute(step, self._constants)
            for (name, _), value in zip(step.outputs, values):
                self._constants[name] = value
        block.steps = remaining

    def _fuse(self, block: _Block) -> tuple[_Block, frozenset[str]]:
        """A copy of ``block`` where each conv absorbs the elementwise ops that alone consume its result.

        ``conv -> add(other) -> relu`` (a residual block's tail), ``conv -> relu`` and ``conv -> add``
        become one step that computes the conv and applies add/relu to each output block while it
        is in cache. Only float32 results are fused (fp16 programs round after every op) and only
        when each intermediate has no other reader. The fused step takes the place of the last op
        it absorbs, where the add's other operand exists. Returns the block and the names of the
        intermediate values it no longer computes.
        """
        readers: dict[str, list[int]] = {}
        for index, step in enumerate(block.steps):
            for ref in step.inputs.values():
                for name in _names_in(ref):
                    readers.setdefault(name, []).append(index)
        pinned = {name for ref in block.output_refs for name in _names_in(ref)}
        pinned |= {name for step in block.steps for nested in step.blocks for name in _names_read(nested)}
        float32 = np.dtype(np.float32)

        def sole_reader(name: str) -> int | None:
            found = readers.get(name, [])
            return found[0] if len(found) == 1 and name not in pinned else None

        replaced: dict[int, _Step] = {}
        removed: set[int] = set()
        absorbed: set[str] = set()
        for index, step in enumerate(block.steps):
            if step.op_type not in _EPILOGUE_PRODUCERS or len(step.outputs) != 1 or step.outputs[0][1] != float32:
                continue
            current, chain, operand, last = step.outputs[0][0], [], None, index
            while True:
                reader = sole_reader(current)
                if reader is None or reader in removed or reader in replaced:
                    break
                follower = block.steps[reader]
                if len(follower.outputs) != 1 or follower.outputs[0][1] != float32 or follower.blocks:
                    break
                if follower.op_type == "relu" and follower.inputs.get("x") == ("var", current):
                    pass
                elif follower.op_type == "add" and not chain and ("var", current) in (
                    follower.inputs.get("x"), follower.inputs.get("y")
                ):
                    x_ref, y_ref = follower.inputs["x"], follower.inputs["y"]
                    operand = y_ref if x_ref == ("var", current) else x_ref
                    if operand == ("var", current):
                        break  # conv + itself: the operand is the value being absorbed
                else:
                    break
                absorbed.add(current)
                chain.append(follower.op_type)
                removed.add(reader)
                current, last = follower.outputs[0][0], reader
            if not chain:
                continue
            removed.discard(last)
            removed.add(index)
            inputs = dict(step.inputs)
            if operand is not None:
                inputs["fused_input"] = operand
            replaced[last] = dataclasses.replace(
                step,
                inputs=inputs,
                outputs=list(block.steps[last].outputs),
                context=dataclasses.replace(step.context, epilogue=tuple(chain)),
            )
        steps = [
            replaced.get(index, dataclasses.replace(step))
            for index, step in enumerate(block.steps)
            if index not in removed or index in replaced
        ]
        return _Block(block.input_names, steps, block.output_refs), frozenset(absorbed)

    def _plan_memory(self, block: _Block) -> None:
        """Find where each top-level value is read for the last time, so run() can drop it then.

        Values produced by kernels in _FRESH_RESULT_OPS and dying at a step may also be
        overwritten by that step's kernel (ctx.overwritable), avoiding a new allocation.
        """
        keep = {name for ref in block.output_refs for name in _names_in(ref)} | set(block.input_names)
        keep |= set(self._constants)
        last_reader: dict[str, int] = {}
        reads: dict[str, int] = {}
        for index, step in enumerate(block.steps):
            if step.blocks:
                # Nested blocks may read any outer value; keep everything alive across control flow.
                keep |= {name for s in block.steps for name, _ in s.outputs}
            for ref in step.inputs.values():
                for name in _names_in(ref):
                    last_reader[name] = index
                    reads[name] = reads.get(name, 0) + 1
        producer = {name: step.op_type for step in block.steps for name, _ in step.outputs}
        for index, step in enumerate(block.steps):
            dying = tuple(
                name for name, reader in last_reader.items() if reader == index and name not in keep
            )
            step.dying = dying
            # Only a value read exactly once (here) may be overwritten: a second reader could have
            # produced a view (reshape, transpose, slice) that still shares its buffer.
            donatable = frozenset(
                param
                for param, ref in step.inputs.items()
                if ref[0] == "var"
                and ref[1] in dying
                and reads.get(ref[1]) == 1
                and producer.get(ref[1]) in _FRESH_RESULT_OPS
            )
            if donatable:
                step.inplace_context = dataclasses.replace(step.context, overwritable=donatable)

    # ----------------------------------------------------------------- running
    def _resolve(self, ref: Any, env: Mapping[str, Any]) -> Any:
        kind, payload = ref
        if kind == "const":
            return payload
        if kind == "var":
            if payload in env:
                return env[payload]
            return self._constants[payload]
        return [self._resolve(r, env) for r in payload]

    def _execute(self, step: _Step, env: Mapping[str, Any], inplace: bool = False) -> list[Any]:
        args = {param: _widen(self._resolve(ref, env)) for param, ref in step.inputs.items()}
        context = step.inplace_context if inplace and step.inplace_context is not None else step.context
        try:
            result = step.kernel(context, **args)
        except InterpreterError:
            raise
        except Exception as exc:
            raise OpExecutionError(
                f"MIL op {step.op_type} {step.op_name!r} in {step.location} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        results = list(result) if isinstance(result, tuple) else [result]
        if len(results) != len(step.outputs):
            raise OpExecutionError(
                f"kernel for {step.op_type} {step.op_name!r} returned {len(results)} values, "
                f"the program declares {len(step.outputs)}"
            )
        return [_coerce(value, dtype) for value, (_, dtype) in zip(results, step.outputs)]

    def _run_block(
        self, block: _Block, env: dict[str, Any], release: bool = False, keep: frozenset[str] = frozenset(),
        timings: list[tuple[str, str, float]] | None = None,
    ) -> list[Any]:
        """Run the steps of block; with ``release``, drop (and allow overwriting) dead values not in ``keep``."""
        for step in block.steps:
            started = time.perf_counter() if timings is not None else 0.0
            if step.blocks:
                values = self._run_control_flow(step, env)
            else:
                # A value to keep must not be overwritten by the step that reads it last.
                inplace = release and not (keep and keep.intersection(step.dying))
                values = self._execute(step, env, inplace=inplace)
            for (name, _), value in zip(step.outputs, values):
                env[name] = value
            if timings is not None:
                label = "+".join((step.op_type,) + tuple(step.context.epilogue))
                timings.append((label, step.op_name, time.perf_counter() - started))
            if release:
                for name in step.dying:
                    if name not in keep:
                        env.pop(name, None)
        return [self._resolve(ref, env) for ref in block.output_refs]

    def _run_control_flow(self, step: _Step, env: dict[str, Any]) -> list[Any]:
        if step.op_type == "cond":
            predicate = bool(np.asarray(self._resolve(step.inputs["pred"], env)).ravel()[0])
            chosen = step.blocks[0] if predicate else step.blocks[1]
            values = self._run_block(chosen, env)
        else:  # while_loop: blocks[0] computes the condition, blocks[1] the next loop variables
            loop_values = self._resolve(step.inputs["loop_vars"], env)
            if not isinstance(loop_values, list):
                loop_values = [loop_values]
            cond_block, body_block = step.blocks
            while True:
                env.update(zip(cond_block.input_names, loop_values))
                (keep_going,) = self._run_block(cond_block, env)
                if not bool(np.asarray(keep_going).ravel()[0]):
                    break
                env.update(zip(body_block.input_names, loop_values))
                loop_values = self._run_block(body_block, env)
            values = loop_values
        return [_coerce(value, dtype) for value, (_, dtype) in zip(values, step.outputs)]

    def _check_feeds(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        expected = {spec.name for spec in self.inputs}
        missing = expected - set(feeds)
        unknown = set(feeds) - expected
        if missing or unknown:
            raise InputError(
                f"feeds do not match the program inputs {sorted(expected)}: "
                f"missing {sorted(missing)}, unexpected {sorted(unknown)}"
            )
        checked = {}
        for spec in self.inputs:
            array = np.asarray(feeds[spec.name])
            if array.ndim != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, array.shape)
            ):
                raise InputError(f"input {spec.name!r} has shape {array.shape}, the program expects {spec.shape}")
            checked[spec.name] = _coerce(array, self._input_dtypes[spec.name])
        for places in self._symbol_places.values():
            (first, first_axis), *others = places
            size = checked[first].shape[first_axis]
            for name, axis in others:
                if checked[name].shape[axis] != size:
                    raise InputError(
                        f"input {name!r} has size {checked[name].shape[axis]} on axis {axis}, but that dim is the "
                        f"same as axis {first_axis} of input {first!r}, which has size {size}: feed both the same size")
        return checked

    def run(
        self, feeds: Mapping[str, np.ndarray], capture: Iterable[str] | None = None,
        timings: list[tuple[str, str, float]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Evaluate the program; returns its outputs and every variable named in ``capture``.

        ``timings``, a list, receives (op type, op name, seconds) for every top-level step, where
        a fused step's type names what it absorbed ("conv+add+relu").
        """
        env: dict[str, Any] = dict(self._check_feeds(feeds))
        capture = list(capture or ())
        # A capture of a value that fusion leaves out runs the program op by op.
        block = self._block if self._absorbed.intersection(capture) else self._fused_block
        # Dead values are dropped as usual; the captured ones are kept intact until returned.
        # NaN and Inf are values like any other (Core ML computes them; check reports them): numpy's
        # warnings about producing them would be chatter on the user's terminal.
        with single_threaded_blas(), np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            self._run_block(block, env, release=True, keep=frozenset(capture), timings=timings)
        results: dict[str, np.ndarray] = {}
        # Kernels may leave results as strided views (a conv's output is a transposed buffer);
        # callers get ordinary C-contiguous arrays.
        for ref, spec in zip(self._block.output_refs, self.outputs):
            results[spec.name] = np.ascontiguousarray(self._resolve(ref, env))
        for name in capture or ():
            if name in env:
                results[name] = np.ascontiguousarray(env[name])
            elif name in self._constants:
                results[name] = np.ascontiguousarray(self._constants[name])
            else:
                raise KeyError(f"no variable {name!r} in the program; see Program.var_names()")
        return results

    def constant_input(self, op_name: str, param: str) -> Any:
        """The value of an op's parameter when it is a constant of the program, else None."""
        ref = self._params.get(op_name, {}).get(param)
        if ref is None:
            return None
        kind, payload = ref
        if kind == "const":
            return payload
        if kind == "var" and payload in self._constants:
            return self._constants[payload]
        return None

    def var_names(self) -> list[str]:
        """Names of every variable produced by an op, in execution order (consts included)."""
        return [name for record in self.ops for name in record.outputs]


def _names_in(ref: Any) -> list[str]:
    """Names of the run-time variables a step input reference reads."""
    kind, payload = ref
    if kind == "var":
        return [payload]
    if kind == "list":
        return [name for r in payload for name in _names_in(r)]
    return []


def _names_read(block: _Block) -> set[str]:
    """Every variable name read anywhere inside ``block`` (nested blocks included)."""
    names = {name for ref in block.output_refs for name in _names_in(ref)}
    for step in block.steps:
        names.update(name for ref in step.inputs.values() for name in _names_in(ref))
        for nested in step.blocks:
            names |= _names_read(nested)
    return names


def _variable_inputs(op: Any) -> tuple[str, ...]:
    """Names of the non-constant variables an op reads (lists flattened; builder internals skipped)."""
    names: list[str] = []
    for param, var in op.inputs.items():
        if param.startswith("_"):
            continue
        for item in var if isinstance(var, (list, tuple)) else (var,):
            if hasattr(item, "name") and not _is_constant_var(item):
                names.append(item.name)
    return tuple(names)


def _all_constant(inputs: Mapping[str, Any], constants: Mapping[str, Any]) -> bool:
    def constant(ref: Any) -> bool:
        kind, payload = ref
        if kind == "const":
            return True
        if kind == "var":
            return payload in constants
        return all(constant(r) for r in payload)

    return all(constant(ref) for ref in inputs.values())


def _dtype_name(builtin_type: Any) -> str:
    dtype = numpy_dtype_of(builtin_type)
    return dtype.name if dtype is not None else str(builtin_type)


def load_program(path: str | pathlib.Path, function_name: str = "main") -> Program:
    """Load a saved ``.mlpackage`` (ML Program) for evaluation with the reference interpreter."""
    saved = load_saved_model(path)
    return Program(
        saved.program,
        path=saved.path,
        metadata=dict(saved.spec.description.metadata.userDefined),
        function_name=function_name,
    )
