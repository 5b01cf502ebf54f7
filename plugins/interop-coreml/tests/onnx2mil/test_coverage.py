"""The op coverage table: every node case of every supported op, run for real.

Runs the same harness as ``scripts/op_coverage.py``; asserts the acceptance bar
(at least 80 op types verified numerically) and that the committed
``docs/coreml-op-coverage.md`` matches this run, rewriting it when it does not
so the failure message and the fix arrive together.
"""

from __future__ import annotations

import pathlib

import pytest

from interop_coreml import op_coverage as coverage
from interop_coreml.onnx2mil import op_converters

DOC = pathlib.Path(__file__).resolve().parents[4] / "docs" / "coreml-op-coverage.md"


@pytest.fixture(scope="module")
def results():
    return coverage.run_all(workers=2)


def test_at_least_80_op_types_verified(results):
    summaries = coverage.summarize(results)
    verified = [s.op_type for s in summaries if s.verified]
    assert len(verified) >= 80, f"only {len(verified)} op types verified: {verified}"
    for name in ("Conv", "Gemm", "MatMul", "BatchNormalization", "LRN", "Sum", "Dropout", "Softmax", "Resize"):
        assert name in verified, f"{name} is not verified"


def test_every_supported_op_case_is_accounted_for(results):
    supported = set(op_converters.registered_ops())
    for result in results:
        assert result.op_type in supported
        assert result.status in (coverage.PASS, coverage.NOT_CONVERTIBLE, coverage.MISMATCH, coverage.ERROR)
        if result.status != coverage.PASS:
            assert result.reason, f"{result.case} has no reason"
    mismatches = [r for r in results if r.status in (coverage.MISMATCH, coverage.ERROR)]
    assert not mismatches, "\n".join(f"{r.case}: {r.reason}" for r in mismatches)


def test_committed_table_is_up_to_date(results):
    text = coverage.render_markdown(results)
    current = DOC.read_text() if DOC.exists() else ""
    if current != text:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text)
        pytest.fail(f"{DOC} was out of date and has been regenerated; commit it")
    assert "op types verified" in current
