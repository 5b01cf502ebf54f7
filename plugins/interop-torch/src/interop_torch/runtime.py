"""PyTorch as an interop runtime: run a torch.export program eagerly on the CPU."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from interop.plugin_api import TensorSpec
from interop_torch.loading import load_program


def _dtype_name(dtype) -> str:  # type: ignore[no-untyped-def]
    return str(dtype).replace("torch.", "")


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
            self.inputs.append(TensorSpec(name, _dtype_name(fake.dtype), shape))
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
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        with torch.no_grad():
            result = self._module(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
        return {s.name: r.detach().numpy() for s, r in zip(self.outputs, result)}


def load(path: Path) -> TorchSession:
    return TorchSession(path)
