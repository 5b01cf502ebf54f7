"""The on-disk layout of an interop MXNet model, and its cheap recognition.

A model is a directory (conventionally ``*.mxnet``) holding what Gluon's
``HybridBlock.export`` writes -- ``model-symbol.json`` and ``model-0000.params`` --
plus ``interop-io.json`` naming the inputs with dtype and shape, which MXNet's
files do not record and the ONNX exporter needs. Standard library only: this is
imported by the host (sniffing) and inside the MXNet environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SYMBOL_FILE = "model-symbol.json"
PARAMS_FILE = "model-0000.params"
IO_FILE = "interop-io.json"


def sniff_mxnet(path: Path) -> str | None:
    """None when ``path`` looks like an MXNet model directory, else why not."""
    symbol = path / SYMBOL_FILE
    if not symbol.is_file():
        return f"it has no {SYMBOL_FILE}"
    with open(symbol, "rb") as handle:
        head = handle.read(256).lstrip()
    if not head.startswith(b"{") or b'"nodes"' not in head:
        return f"{SYMBOL_FILE} is not an MXNet symbol (no JSON object with 'nodes')"
    if not (path / PARAMS_FILE).is_file():
        return f"it has no {PARAMS_FILE}"
    if not (path / IO_FILE).is_file():
        return f"it has no {IO_FILE} (input names, dtypes and shapes)"
    return None


def read_io(path: Path) -> dict[str, Any]:
    """``{"inputs": [{"name", "dtype", "shape"}], "outputs": [...]}``; shape None = dynamic."""
    return json.loads((path / IO_FILE).read_text())


def write_io(path: Path, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
    (path / IO_FILE).write_text(json.dumps({"inputs": inputs, "outputs": outputs}, indent=2))
