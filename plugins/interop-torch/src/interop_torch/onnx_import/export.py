"""ONNX -> .pt2: the imported module, exported by torch.export in eval mode and saved like any .pt2.

The saved program is an inference program, as a .pt2 normally is: ``interop check`` and
``interop convert`` run it with BatchNorm's running statistics and without Dropout, exactly
as the ONNX graph computes. Its weights are ``requires_grad=True`` parameters named after the
layers (``extra/interop_onnx_import.json`` maps each to its ONNX initializer), but a program's
``module()`` cannot switch to train mode (torch 2.13: "Calling train() is not supported yet").
To train with train-mode semantics (batch statistics that update the running ones), use the
module :func:`interop_torch.onnx_import.import_onnx` returns (what ``interop train --init``
uses) or a ``torch-source`` folder; see docs/training-elsewhere.md.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop.plugin_api import ConversionError, TensorSpec

#: Extra file of the .pt2 archive holding where every parameter came from and the import's notes.
IMPORT_FILE = "interop_onnx_import.json"
#: Sizes tried for dynamic dims while tracing (the first dim, then the others); the program stays dynamic.
_EXAMPLE_SIZES = ((2, 64), (2, 224), (3, 17))


def print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _example_inputs(inputs: list[TensorSpec], first: int, other: int) -> tuple[list[Any], list[dict[int, Any]]]:
    import numpy as np
    import torch

    args, dynamic = [], []
    for spec in inputs:
        shape, dims = [], {}
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            else:
                shape.append(first if axis == 0 else other)
                dims[axis] = torch.export.Dim.AUTO
        args.append(torch.zeros(shape, dtype=torch.from_numpy(np.zeros(0, dtype=spec.dtype)).dtype))
        dynamic.append(dims)
    return args, dynamic


def export_program(module: Any, inputs: list[TensorSpec]) -> tuple[Any, list[str]]:
    """torch.export the module in eval mode, dims the ONNX graph leaves open kept dynamic where the code allows."""
    import torch

    module.eval()
    notes: list[str] = []
    last_error: Exception | None = None
    logging.getLogger("torch.export").setLevel(logging.ERROR)
    logging.getLogger("torch._export").setLevel(logging.ERROR)
    for first, other in _EXAMPLE_SIZES:
        args, dynamic = _example_inputs(inputs, first, other)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(module, tuple(args), dynamic_shapes=tuple(dynamic), strict=False)
            break
        except Exception as error:  # noqa: BLE001 - try the next example sizes, then report the last failure
            last_error = error
    else:
        text = str(last_error).strip().splitlines()[0][:300] if last_error else "unknown error"
        raise ConversionError(
            f"torch.export cannot trace the imported module: {type(last_error).__name__}: {text}",
            hint="the torch-source format keeps the module as code (interop convert MODEL.onnx -o DIR --to torch-source)",
        )
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    for spec, graph_name in zip(inputs, program.graph_signature.user_inputs):
        fake = placeholders[graph_name].meta["val"]
        for axis, dim in enumerate(spec.shape):
            if not (isinstance(dim, int) and dim > 0) and not isinstance(fake.shape[axis], torch.SymInt):
                notes.append(f"input {spec.name!r} dim {axis} ({dim or 'unnamed'}) is fixed to {int(fake.shape[axis])} "
                             "in the .pt2: the graph's ops need that size")
    return program, notes


def onnx_to_torch(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    """Converter onnx -> torch: write ``dst`` (.pt2) from the ONNX file ``src``."""
    from interop_torch.loading import save_program
    from interop_torch.onnx_import import load_onnx
    from interop_torch.onnx_import.build import instantiate, plan_import

    model = load_onnx(src)
    plan = plan_import(model, trainable=str(options.get("trainable") or "auto"))
    module = instantiate(plan)
    program, notes = export_program(module, plan.inputs)
    record = {"source": Path(src).name, "producer": plan.producer, "opset": plan.opset,
              "weight_count": plan.weight_count, "parameters": plan.parameter_sources(), "notes": plan.notes + notes}
    save_program(program, dst, [s.name for s in plan.inputs], [s.name for s in plan.outputs],
                 extra={IMPORT_FILE: json.dumps(record, indent=1)})
    print_notes(plan.notes + notes)
