"""A short fixed-seed slice of the differential fuzzing campaign, part of `make test`.

The long run is `make fuzz` (docs/fuzzing.md). The slice draws from every generated op,
which is every op the coverage table verifies (test_generator.py checks that).
"""

from __future__ import annotations

import json
from pathlib import Path

from interop_coreml.fuzz.campaign import run_campaign

SEED, TRIALS, JOBS = 20260, 48, 2

def test_a_fixed_seed_slice_has_no_crash_and_no_unexplained_mismatch(tmp_path: Path) -> None:
    summary = run_campaign(SEED, TRIALS, JOBS, tmp_path, timeout=600, shrink_seconds=20)
    assert summary.graphs == TRIALS
    assert summary.statuses["ok"] >= TRIALS * 0.8, summary.line()  # the slice really compares numbers
    document = json.loads((tmp_path / "summary.json").read_text())
    assert document["done"] == TRIALS
    unexplained = [s for s in document["signatures"] if s["count"] > s["explained"]]
    assert summary.crashes == 0 and summary.unexplained == 0, (
        f"{summary.line()}; repros in {tmp_path}: " + "; ".join(f"{s['signature']} x{s['count']}" for s in unexplained))
