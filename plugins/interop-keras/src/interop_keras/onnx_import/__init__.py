"""ONNX -> Keras: a trainable ``keras.Model`` of native layers, saved as ``.keras``.

Public entry points:

- :func:`import_onnx` builds the model in memory and returns an
  :class:`~interop_keras.onnx_import.builder.ImportResult` (the model, the notes,
  how every Keras variable maps back to its ONNX initializer, the weight count);
- :func:`trainable_model` is what ``interop train --framework keras --init
  MODEL.onnx`` calls: a ``keras.Model`` whose weights are trainable variables;
- :func:`onnx_to_keras` is the converter interop-keras declares (onnx -> keras).

See docs/training-elsewhere.md for what is recovered and what is not.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from interop_keras.loading import quiet_tensorflow

quiet_tensorflow()

from interop_keras.onnx_import.builder import ImportResult, WeightBinding  # noqa: E402
from interop_keras.onnx_import.weights import Classification, classify, weight_count  # noqa: E402

__all__ = [
    "Classification", "ImportResult", "WeightBinding", "classify", "import_onnx", "onnx_to_keras",
    "trainable_model", "weight_count",
]


def print_notes(notes: list[str]) -> None:
    """The import's notes on stderr (interop's own messages stay on the terminal)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def import_onnx(model: Any, *, label: str | None = None) -> ImportResult:
    """Build a Keras model from ``model`` (an ``onnx.ModelProto`` or a path to an ``.onnx`` file).

    Raises UnsupportedModelError (exit 3) listing every op the importer cannot
    express, before building anything it would have to throw away.
    """
    import onnx

    from interop_keras import layers  # noqa: F401 - registers the custom layers
    from interop_keras.onnx_import.builder import Importer
    from interop_keras.onnx_import.graph import load_onnx, prepare

    if isinstance(model, onnx.ModelProto):
        proto = prepare(model, label or "the ONNX model")
    else:
        proto = load_onnx(Path(model))
        label = label or str(model)
    return Importer(proto, label or "the ONNX model").run()


def trainable_model(model: Any) -> Any:
    """A ``keras.Model`` with trainable weights from an ONNX model or file (for ``train --init``)."""
    result = import_onnx(model)
    print_notes(result.notes)
    return result.model


def onnx_to_keras(src: Path, dst: Path, options: Mapping[str, Any]) -> None:
    """The onnx -> keras converter: import ``src`` and save the model at ``dst`` (.keras or .h5)."""
    result = import_onnx(src, label=src.name)
    print_notes(result.notes)
    result.model.save(str(dst))
