"""The ONNX sniff's table of known opsets (read from onnx's registry, not by walking every schema)."""

from __future__ import annotations

import onnx.defs

from interop_onnx.sniff import known_opsets


def test_known_opsets_agree_with_every_schema_onnx_has():
    walked: dict[str, int] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        walked[schema.domain] = max(walked.get(schema.domain, 0), schema.since_version)
    known = known_opsets()
    for domain, newest_schema in walked.items():
        assert known[domain] >= newest_schema, domain
    assert known[""] == onnx.defs.onnx_opset_version()
    assert known["ai.onnx.ml"] == onnx.defs.onnx_ml_opset_version()
