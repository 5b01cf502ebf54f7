"""Faults injected into saved models, for the tests of --locate and reduce: one wrong op, edited in the file.

Core ML: the ML Program inside an .mlpackage is edited in place (the protobuf
``model.mlmodel``), so the translator is not involved. ONNX: one node's inputs or
attributes are edited.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

MLMODEL = Path("Data") / "com.apple.CoreML" / "model.mlmodel"


def _main_block(spec: Any) -> Any:
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def mil_ops(package: Path, op_type: str) -> list[str]:
    """Names (first output) of the ops of ``op_type`` in the package's main function, in program order."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((package / MLMODEL).read_bytes())
    return [op.outputs[0].name for op in _main_block(spec).operations if op.type == op_type]


def edit_mil(source: Path, target: Path, output: str, edit: Callable[[Any, Any], None]) -> Path:
    """Copy ``source`` to ``target`` and apply ``edit(op, block)`` to the op whose first output is ``output``."""
    from coremltools.proto import Model_pb2

    shutil.copytree(source, target)
    spec = Model_pb2.Model()
    spec.ParseFromString((target / MLMODEL).read_bytes())
    block = _main_block(spec)
    op = next(op for op in block.operations if op.outputs and op.outputs[0].name == output)
    edit(op, block)
    (target / MLMODEL).write_bytes(spec.SerializeToString())
    return target


def swap_first_two(arguments: Any) -> None:
    first, second = (type(arguments[0])(), type(arguments[1])())
    first.CopyFrom(arguments[1])
    second.CopyFrom(arguments[0])
    arguments[0].CopyFrom(first)
    arguments[1].CopyFrom(second)


def swap_concat_values(op: Any, block: Any) -> None:
    """A concat computing its inputs in the wrong order."""
    swap_first_two(op.inputs["values"].arguments)


def set_epsilon(value: float) -> Callable[[Any, Any], None]:
    """A batch_norm with a wrong epsilon (its const input edited)."""
    def edit(op: Any, block: Any) -> None:
        binding = op.inputs["epsilon"].arguments[0]
        if binding.WhichOneof("binding") == "value":
            binding.value.immediateValue.tensor.floats.values[:] = [value]
            return
        const = next(o for o in block.operations if o.outputs and o.outputs[0].name == binding.name)
        const.attributes["val"].immediateValue.tensor.floats.values[:] = [value]
    return edit


def edit_onnx_node(source: Path, target: Path, op_type: str, index: int, edit: Callable[[Any], None]) -> str:
    """Write ``source`` with ``edit(node)`` applied to its ``index``-th ``op_type`` node; returns the node's name."""
    import onnx

    model = onnx.load(str(source))
    node = [n for n in model.graph.node if n.op_type == op_type][index]
    edit(node)
    onnx.save(model, str(target))
    return node.name


def swap_node_inputs(node: Any) -> None:
    first, second = node.input[0], node.input[1]
    node.input[0], node.input[1] = second, first
