"""Running ``ct.convert``'s MIL pass pipelines without coremltools' fixed per-pass costs.

``ct.convert`` applies three pipelines (the main one of :func:`~.passes.pass_pipeline`, then the
ML Program backend's) with coremltools' ``PassPipelineManager.apply_pipeline``, ~110 passes in all.
Profiling the conversion of the zoo CNNs (benchmarks/bench_onnx_to_coreml.py) shows that most of
the time is not the passes' own work but what coremltools does around each one:

- ``prog.validate()`` after every pass: a full consistency check of the program (every op's
  inputs and consumers), ~40% of the conversion;
- ``Block._propagate_nonreplaceable_vars()`` each time a pass leaves a block: for every variable,
  the set of ``constexpr_*`` (compressed-weight) variables upstream of it, which decides whether
  a pass may replace it. In a program without ``constexpr_*`` ops every such set is empty;
  computing the unions anyway costs ~20%;
- ``logger.debug(f"...{prog}")``: the whole program printed to a string before and after each
  pipeline (and by ``reduce_transposes``) even though debug logging is off.

:func:`lean_pass_manager` swaps in, for the duration of one conversion, a pipeline runner that
runs the same passes in the same order with the same options, validating the program once
before and once after each pipeline, and a ``_propagate_nonreplaceable_vars`` that empties the
sets directly when the block holds no ``constexpr_*`` op (and computes them as coremltools does
otherwise). It also skips a pass whose work needs an op type the program does not contain when
it runs (:data:`NEEDS_OP`). The produced model is byte-for-byte the one coremltools' manager
produces (tests/onnx2mil/test_pass_manager.py). With coremltools' logger at DEBUG level nothing
is swapped, so its per-pass logging and validation are there for debugging.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from coremltools.converters.mil.mil.block import Block
from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

#: Passes that only rewrite ops of the listed types; with none of them in the program the pass is skipped.
NEEDS_OP: dict[str, frozenset[str]] = {
    # Cancels transpose pairs; with no transpose it adds and removes an identity per output and
    # re-infers every op's type (and prints the block for a debug log twice).
    "common::reduce_transposes": frozenset({"transpose"}),
    # The same pass with its output guard (passes.py), which interop's pipeline runs instead.
    "interop::guarded_reduce_transposes": frozenset({"transpose"}),
}

_LOCK = threading.RLock()


def _op_types(block, found: set[str]) -> set[str]:
    for op in block.operations:
        found.add(op.op_type)
        for inner in op.blocks:
            _op_types(inner, found)
    return found


def _program_op_types(prog) -> set[str]:
    found: set[str] = set()
    for function in prog.functions.values():
        _op_types(function, found)
    return found


class _PipelineRunner:
    """``PassPipelineManager.apply_pipeline`` with one validation per pipeline; records seconds per pass."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    def __call__(self, prog, pass_pipeline) -> None:
        if pass_pipeline is None:
            raise ValueError("The pass_pipeline cannot be None.")
        pass_pipeline.validate()
        prog.validate()
        for name in pass_pipeline.passes:
            needed = NEEDS_OP.get(name)
            if needed is not None and not needed & _program_op_types(prog):
                continue
            graph_pass = PASS_REGISTRY[name]
            graph_pass.set_options(pass_pipeline.get_options(name))
            started = time.process_time()
            graph_pass(prog)
            if self.timings is not None:
                self.timings[name] = self.timings.get(name, 0.0) + time.process_time() - started
        prog.validate(check_essential_scope=True)


def _has_constexpr(block) -> bool:
    for op in block.operations:
        if op.op_type.startswith("constexpr_"):
            return True
        if any(_has_constexpr(inner) for inner in op.blocks):
            return True
    return False


def _clear_nonreplaceable(block) -> None:
    for op in block.operations:
        for inner in op.blocks:
            _clear_nonreplaceable(inner)
        for var in op.outputs or ():
            if var._nonreplaceable_vars_upstream:
                var._nonreplaceable_vars_upstream = set()


def _make_propagate(original):
    def _propagate_nonreplaceable_vars(self) -> None:
        # Only constexpr_* outputs seed the sets (Var._is_nonreplaceable_var); without one, the
        # full propagation would leave every set empty.
        if _has_constexpr(self):
            original(self)
        else:
            _clear_nonreplaceable(self)

    return _propagate_nonreplaceable_vars


@contextlib.contextmanager
def lean_pass_manager(timings: dict[str, float] | None = None) -> Iterator[None]:
    """Within the block, ``ct.convert`` runs its pipelines through :class:`_PipelineRunner`.

    ``timings``, if given, receives the CPU seconds of each pass (summed over its runs).
    Conversions in other threads wait: the swapped functions are coremltools' globals.
    """
    with _LOCK:
        if logging.getLogger("coremltools").isEnabledFor(logging.DEBUG):
            yield
            return
        saved_apply = PassPipelineManager.__dict__["apply_pipeline"]
        saved_propagate = Block.__dict__["_propagate_nonreplaceable_vars"]
        PassPipelineManager.apply_pipeline = staticmethod(_PipelineRunner(timings))
        Block._propagate_nonreplaceable_vars = _make_propagate(saved_propagate)
        try:
            yield
        finally:
            PassPipelineManager.apply_pipeline = saved_apply
            Block._propagate_nonreplaceable_vars = saved_propagate
