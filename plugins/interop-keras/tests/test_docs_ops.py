"""docs/training-elsewhere.md names every ONNX op type the Keras importer converts."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "training-elsewhere.md"


def test_every_converted_op_is_documented():
    from interop_keras.onnx_import.ops import registered

    text = DOC.read_text()
    section = text[text.index("## ONNX -> Keras"):]
    words = set(re.findall(r"[A-Za-z0-9]+", section))
    ops = registered()
    assert ops and not [op for op in ops if op not in words]
