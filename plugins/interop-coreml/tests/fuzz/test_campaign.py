"""The campaign runner: chosen trials rerun alone, and the summary says which trials had which signature."""

from __future__ import annotations

import json
from pathlib import Path

from interop_coreml.fuzz.campaign import Summary, _record, _write_summary, run_campaign


def test_only_the_chosen_trials_run_and_they_are_the_seeds_graphs(tmp_path: Path) -> None:
    summary = run_campaign(5, 1000, 1, tmp_path, ops=["Relu", "Add"], only=[7, 3, 7])
    document = json.loads((tmp_path / "summary.json").read_text())
    assert summary.graphs == 2 and document["done"] == 2 and document["trials"] == 2
    assert summary.statuses["ok"] == 2, summary.line()


def test_the_summary_lists_the_trials_of_each_signature(tmp_path: Path) -> None:
    summary = Summary()
    for trial in (12, 4):
        _record({"trial": trial, "seed": 1, "status": "mismatch", "kind": "value",
                 "signature": "mismatch[value] Floor"}, tmp_path, summary)
    _write_summary(tmp_path, 0, 20, summary)
    document = json.loads((tmp_path / "summary.json").read_text())
    assert document["signatures"] == [{"signature": "mismatch[value] Floor", "count": 2, "explained": 0,
                                       "trials": [4, 12], "folder": "01-mismatch-value-Floor"}]
