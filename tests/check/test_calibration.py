"""The calibration table's small networks (the whole table: `make calibrate`, recorded in docs/check.md).

With the default verdict (scaled statistic, fp32 tolerances, fp64 oracle where cheap),
faithful conversions pass while a single weight changed by 1e-3, a wrong padding, a
transposed kernel and an fp16 copy judged at fp32 all fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .calibration import FAST, FULL, calibrate


@pytest.mark.slow
@pytest.mark.parametrize("network", FAST)
def test_faithful_copies_pass_and_injected_bugs_fail(network: str, tmp_path: Path) -> None:
    row = calibrate(network, tmp_path)
    assert row.faithful and all(cell.passed for cell in row.faithful.values()), row.faithful
    for bug, cell in row.bugs.items():
        assert cell.passed is False, (bug, cell)
    # the margins leave room both ways: faithful copies use a small share of the tolerance
    assert all(cell.margin < 0.5 for cell in row.faithful.values()), row.faithful


@pytest.mark.extended
@pytest.mark.skipif(os.environ.get("INTEROP_EXTENDED") != "1", reason="the whole table: run `make test-extended`")
@pytest.mark.parametrize("network", [n for n in FULL if n not in FAST])
def test_the_whole_calibration_table(network: str, tmp_path: Path) -> None:
    test_faithful_copies_pass_and_injected_bugs_fail(network, tmp_path)
