"""Loading .pt2 programs with the I/O names interop stores beside them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError

#: Extra file inside the .pt2 archive holding {"inputs": [...], "outputs": [...]}.
NAMES_FILE = "interop_io_names.json"


@dataclass
class LoadedProgram:
    program: Any  # torch.export.ExportedProgram
    input_names: list[str]
    output_names: list[str]


def load_program(path: Path) -> LoadedProgram:
    """torch.export.load (which reads tensors without unpickling code) plus stored names."""
    import torch

    extra = {NAMES_FILE: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: torch.export cannot load this program: {text}") from exc
    user_inputs = list(program.graph_signature.user_inputs)
    n_out = len(program.graph_signature.user_outputs)
    names = json.loads(extra[NAMES_FILE]) if extra[NAMES_FILE] else {}
    inputs = names.get("inputs") or [str(n) for n in user_inputs]
    outputs = names.get("outputs") or [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)]
    return LoadedProgram(program, inputs, outputs)


def save_program(program: Any, dst: Path, input_names: list[str], output_names: list[str]) -> None:
    import torch

    extra = {NAMES_FILE: json.dumps({"inputs": input_names, "outputs": output_names})}
    torch.export.save(program, str(dst), extra_files=extra)


def example_inputs(program: Any) -> tuple[Any, ...]:
    """Concrete tensors matching the program's user inputs (dynamic dims at their hint)."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    tensors = []
    for name in program.graph_signature.user_inputs:
        fake = placeholders[name].meta["val"]
        shape = [int(s) if not isinstance(s, torch.SymInt) else max(2, int(s.node.hint or 2)) for s in fake.shape]
        tensors.append(torch.zeros(shape, dtype=fake.dtype))
    return tuple(tensors)
