"""PyTorch as an interop runtime: run a torch.export program eagerly on the CPU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from interop.plugin_api import IntermediateSpec, TensorSpec
from interop_torch.loading import load_program


def _dtype_name(dtype) -> str:  # type: ignore[no-untyped-def]
    return str(dtype).replace("torch.", "")


def _max_shape(shape, ranges) -> tuple[int | None, ...] | None:  # type: ignore[no-untyped-def]
    """The largest size each dimension accepts: a Dim's declared max (the module refuses larger)."""
    import torch

    bounds: list[int | None] = []
    bounded = False
    for size in shape:
        if not isinstance(size, torch.SymInt):
            bounds.append(int(size))
            continue
        value = ranges.get(size.node.expr)  # a derived dim (4 * h) has no entry: bounded by its parts
        try:
            upper = int(value.upper) if value is not None else None
        except (TypeError, ValueError, OverflowError, AttributeError):  # torch's int_oo: unbounded
            upper = None
        bounded = bounded or upper is not None
        bounds.append(upper)
    return tuple(bounds) if bounded else None


class TorchSession:
    def __init__(self, path: Path):
        loaded = load_program(path)  # first: an archive it refuses never costs importing torch

        import torch

        self._module = loaded.program.module()
        placeholders = {n.name: n for n in loaded.program.graph.nodes if n.op == "placeholder"}
        self.inputs = []
        for graph_name, name in zip(loaded.program.graph_signature.user_inputs, loaded.input_names):
            fake = placeholders[graph_name].meta["val"]
            shape = tuple(int(s) if not isinstance(s, torch.SymInt) else str(s) for s in fake.shape)
            self.inputs.append(TensorSpec(name, _dtype_name(fake.dtype), shape,
                                          _max_shape(fake.shape, loaded.program.range_constraints)))
        outputs = [n for n in loaded.program.graph.nodes if n.op == "output"][0].args[0]
        self.outputs = []
        for node, name in zip(outputs, loaded.output_names):
            fake = node.meta.get("val") if hasattr(node, "meta") else None
            if fake is not None:
                shape = tuple(int(s) if not isinstance(s, torch.SymInt) else str(s) for s in fake.shape)
                self.outputs.append(TensorSpec(name, _dtype_name(fake.dtype), shape))
            else:
                self.outputs.append(TensorSpec(name, "float32", ()))
        self.engine = "torch (eager CPU)"
        self.versions = {"torch": torch.__version__}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_module(self._module, self.inputs, self.outputs, feeds)

    # ------------------------------------------------ plugin API 1.1: intermediate values

    def intermediates(self) -> list[IntermediateSpec]:
        """Every tensor an operation of the exported graph computes, named as the graph names it.

        torch.onnx keeps these names for the ONNX values it exports, except where its own
        decompositions and fusions (BatchNorm into Conv) rename a value; ``scope`` (the
        innermost ``nn.Module`` path) pairs the last value of each module then.
        """
        import torch

        graph = self._module.graph
        shown = self._placeholder_names()
        specs = []
        for node in graph.nodes:
            if node.op != "call_function" or not isinstance(node.meta.get("val"), torch.Tensor):
                continue
            inputs = tuple(
                shown.get(arg.name, arg.name) for arg in node.all_input_nodes
                if arg.op == "call_function" or arg.name in shown
            )
            stack = node.meta.get("nn_module_stack") or {}
            scope = list(stack.values())[-1][0] if stack else None
            specs.append(IntermediateSpec(name=node.name, op_type=str(node.target), op_name=node.name,
                                          inputs=inputs, scope=scope))
        return specs

    def run_intermediates(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named graph values for ``feeds``, captured as the graph runs node by node."""
        import torch
        import torch.fx

        wanted = set(names)
        captured: dict[str, np.ndarray] = {}

        class Capture(torch.fx.Interpreter):
            def run_node(self, node):  # type: ignore[no-untyped-def]
                result = super().run_node(node)
                if node.name in wanted and isinstance(result, torch.Tensor):
                    captured[node.name] = result.detach().numpy().copy()
                return result

        args = [torch.from_numpy(np.asarray(feeds[s.name], order="C")) for s in self.inputs]
        with torch.no_grad():
            Capture(self._module).run(*args)
        return {name: captured[name] for name in names if name in captured}

    def input_index_ranges(self) -> dict[str, tuple[int, int]]:
        """Integer inputs looked up in an embedding table (aten.embedding): their valid rows."""
        import torch

        shown = self._placeholder_names()
        origin = {name: shown_name for name, shown_name in shown.items()}
        passthrough = {"aten.to", "aten._to_copy", "aten.view", "aten.reshape", "aten.unsqueeze", "aten.squeeze",
                       "aten.flatten", "aten.clone", "aten.contiguous"}
        ranges: dict[str, tuple[int, int]] = {}
        for node in self._module.graph.nodes:
            if node.op != "call_function" or not node.args:
                continue
            target = str(node.target).rsplit(".", 1)[0] if str(node.target).count(".") >= 2 else str(node.target)
            first = node.args[0]
            if target in passthrough and getattr(first, "name", None) in origin:
                origin[node.name] = origin[first.name]
            elif target == "aten.embedding" and len(node.args) >= 2 and getattr(node.args[1], "name", None) in origin:
                weight = node.args[0].meta.get("val") if hasattr(node.args[0], "meta") else None
                if weight is None and getattr(node.args[0], "op", None) == "get_attr":
                    weight = self._module
                    for part in str(node.args[0].target).split("."):
                        weight = getattr(weight, part, None)
                if isinstance(weight, torch.Tensor) and weight.ndim >= 1 and weight.shape[0] > 0:
                    ranges[origin[node.args[1].name]] = (0, int(weight.shape[0]) - 1)
        return ranges

    def _placeholder_names(self) -> dict[str, str]:
        """Graph placeholder name -> the session's input name (user inputs only)."""
        placeholders = [n.name for n in self._module.graph.nodes if n.op == "placeholder"]
        return dict(zip(placeholders[-len(self.inputs):] if self.inputs else [], [s.name for s in self.inputs]))


def run_module(module, inputs: list[TensorSpec], outputs: list[TensorSpec],  # type: ignore[no-untyped-def]
               feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call ``module`` on the feeds in ``inputs`` order, without gradients; outputs by name."""
    import torch

    args = [torch.from_numpy(np.asarray(feeds[s.name], order="C")) for s in inputs]
    with torch.no_grad():
        result = module(*args)
    # The outputs in the exported graph's order: a tuple, a list, a dict (by its keys' order) or nested
    # containers of tensors, flattened as torch.export flattens them.
    leaves = torch.utils._pytree.tree_leaves(result)
    return {s.name: r.detach().numpy() for s, r in zip(outputs, leaves)}


def load(path: Path) -> TorchSession:
    return TorchSession(path)
