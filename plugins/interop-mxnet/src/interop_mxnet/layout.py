"""The on-disk layout of an interop MXNet model, and its cheap recognition.

A model is a directory (conventionally ``*.mxnet``) holding what Gluon's
``HybridBlock.export`` writes -- ``model-symbol.json`` and ``model-0000.params`` --
plus ``interop-io.json`` naming the inputs with dtype and shape, which MXNet's
files do not record and the ONNX exporter needs. Recognition also refuses, before
MXNet reads anything, a model that could run code or read files outside it
(:func:`refusal`). Standard library and interop's plugin API only: this is imported
by the host (sniffing) and inside the MXNet environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interop.plugin_api import ModelLoadError

SYMBOL_FILE = "model-symbol.json"
PARAMS_FILE = "model-0000.params"
IO_FILE = "interop-io.json"

#: Symbol ops that call Python (custom operators, the legacy callback operators whose
#: attribute is a raw function pointer) or read files named in the graph.
REFUSED_OPS = {
    "Custom": "calls a Python custom operator",
    "_npi_Custom": "calls a Python custom operator",
    "_CustomFunction": "calls a Python custom function",
    "_Native": "calls a native callback given by address",
    "_NDArray": "calls a native callback given by address",
    "_cvimread": "reads an image file named in the graph",
    "_npi_cvimread": "reads an image file named in the graph",
}


def _outside_links(path: Path) -> Iterator[str]:
    root = path.resolve()
    for name in (SYMBOL_FILE, PARAMS_FILE, IO_FILE):
        entry = path / name
        if entry.is_symlink():
            try:
                inside = root in entry.resolve().parents
            except (OSError, RuntimeError):  # a loop of links
                inside = False
            if not inside:
                yield f"{name} is a link to a file outside the model directory"


def _symbol_ops(symbol: Any) -> Iterator[str]:
    """Op names of every node, subgraphs (control flow, cached ops) included."""
    if isinstance(symbol, list):
        for item in symbol:
            yield from _symbol_ops(item)
    elif isinstance(symbol, dict):
        op = symbol.get("op")
        if isinstance(op, str):
            yield op
        for value in symbol.values():
            if isinstance(value, (dict, list)):
                yield from _symbol_ops(value)


def refusal(path: Path) -> str | None:
    """Why interop must not let MXNet open ``path`` (code, callbacks, outside files), or None."""
    for reason in _outside_links(path):
        return reason
    try:
        symbol = json.loads((path / SYMBOL_FILE).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        return f"{SYMBOL_FILE} is not valid JSON: {exc}"
    for op in _symbol_ops(symbol.get("nodes", []) if isinstance(symbol, dict) else symbol):
        base = op[len("_backward_"):] if op.startswith("_backward_") else op
        if base in REFUSED_OPS:
            return f"its graph uses the op {op}, which {REFUSED_OPS[base]}"
    # PARAMS_FILE is read by MXNet's C++ NDArray loader, which has no pickle.
    return None


def check_safe(path: Path) -> None:
    """Raise ModelLoadError (exit 2) when :func:`refusal` finds a reason."""
    reason = refusal(path)
    if reason:
        raise ModelLoadError(f"{path}: refused: {reason}",
                             hint="interop never runs code from a model file (see docs/security.md)")


def sniff_mxnet(path: Path) -> str | None:
    """None when ``path`` looks like a safe MXNet model directory, else why not.

    A model that is well-formed but unsafe raises ModelLoadError ("refused: ...").
    """
    for reason in _outside_links(path):
        return reason
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
    check_safe(path)
    return None


def read_io(path: Path) -> dict[str, Any]:
    """``{"inputs": [{"name", "dtype", "shape"}], "outputs": [...]}``; shape None = dynamic."""
    return json.loads((path / IO_FILE).read_text())


def write_io(path: Path, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
    (path / IO_FILE).write_text(json.dumps({"inputs": inputs, "outputs": outputs}, indent=2))
