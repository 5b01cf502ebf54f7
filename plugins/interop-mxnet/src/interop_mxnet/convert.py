"""MXNet -> ONNX with MXNet's own exporter (``mx.onnx.export_model``). Runs in .venv-mxnet."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError, UnsupportedModelError
from interop_mxnet.layout import PARAMS_FILE, SYMBOL_FILE, read_io, sniff_mxnet
from interop_mxnet.runtime import mxnet_error_reason

#: How mx.onnx.export_model reports an op it has no translation for.
_UNMAPPED_OP = re.compile(r"No conversion function registered for op type (\S+?)\.? yet")

#: Size given to dynamic dimensions for the exporter's shape inference.
_TRACE_DIM = 4


def mxnet_to_onnx(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    import mxnet as mx
    import numpy as np
    import onnx

    reason = sniff_mxnet(src)
    if reason:
        raise ModelLoadError(f"{src}: not an interop MXNet model: {reason}")
    try:  # a corrupt file is bad input (exit 2); only a failure of the exporter itself is exit 4
        mx.sym.load(str(src / SYMBOL_FILE))
        mx.nd.load(str(src / PARAMS_FILE))
    except Exception as exc:  # noqa: BLE001 - MXNet raises MXNetError, or ValueError for some files
        raise ModelLoadError(f"{src}: MXNet cannot load it: {mxnet_error_reason(exc)}",
                             hint="re-export the model with HybridBlock.export") from exc
    inputs = read_io(src)["inputs"]
    shapes = [tuple(_TRACE_DIM if d is None else d for d in spec["shape"]) for spec in inputs]
    dynamic = [tuple(spec["shape"]) for spec in inputs]
    dtypes = [np.dtype(spec["dtype"]).type for spec in inputs]
    try:
        mx.onnx.export_model(
            str(src / SYMBOL_FILE), str(src / PARAMS_FILE), shapes, dtypes, str(dst),
            dynamic=any(None in shape for shape in dynamic), dynamic_input_shapes=dynamic,
        )
    except AttributeError as exc:  # the exporter's way of saying it has no translation for an op
        found = _UNMAPPED_OP.search(str(exc))
        if not found:
            raise
        raise UnsupportedModelError(f"{src}: MXNet's ONNX exporter cannot convert the op {found.group(1)}",
                                    hint="replace the op in the model, or export it to ONNX another way") from exc
    model = onnx.load(str(dst))
    # The exporter lists every weight as a graph input too; a runtime would then
    # report the weights as inputs to feed, so keep only the real inputs.
    weights = {init.name for init in model.graph.initializer}
    real_inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
