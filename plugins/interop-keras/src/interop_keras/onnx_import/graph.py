"""Reading an ONNX file for import: parse, validate, inline local functions."""

from __future__ import annotations

from pathlib import Path

import onnx

from interop.plugin_api import ModelLoadError


def load_onnx(path: Path) -> onnx.ModelProto:
    """Parse and validate ``path`` (external data beside it included) or raise ModelLoadError (exit 2).

    ``onnx.load`` refuses external data outside the model's folder (see docs/security.md).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # noqa: BLE001 - protobuf raises several kinds on garbage
        raise ModelLoadError(f"{path} is not a valid ONNX model: {type(error).__name__}: {error}") from None
    return prepare(model, str(path))


def prepare(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """Check ``model`` and inline its local functions; ``label`` names it in errors."""
    if not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{label} is not a valid ONNX model: it holds no graph")
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # noqa: BLE001
        raise ModelLoadError(f"{label} is not a valid ONNX model: {str(error).splitlines()[0]}") from None
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelLoadError(
                f"{label} declares ONNX opset {opset.version}, newer than the installed onnx "
                f"{onnx.__version__} knows ({newest})",
                hint="upgrade onnx, or export the model with an older opset",
            )
    if model.functions:
        from onnx import inliner

        model = inliner.inline_local_functions(model)
    return model
