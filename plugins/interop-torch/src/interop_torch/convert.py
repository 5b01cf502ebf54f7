"""PyTorch (.pt2) -> ONNX with torch.onnx's torch.export-based exporter (dynamo=True)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop_torch.loading import example_inputs, load_program


def torch_to_onnx(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    loaded = load_program(src)  # first: an archive it refuses never costs importing the exporter

    import onnx
    import torch

    opset = int(options.get("opset") or 18)
    # The exporter logs a warning per missing optional op library (torchvision); not ours to show.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(
            loaded.program,
            example_inputs(loaded.program),
            dynamo=True,
            opset_version=opset,
            input_names=loaded.input_names,
            output_names=loaded.output_names,
            verbose=False,
        )
    onnx_program.save(str(dst))
    onnx.checker.check_model(str(dst))
