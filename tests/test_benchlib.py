"""benchmarks/benchlib.py, the helper every benchmark script shares: tables, goals, quiet stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import benchlib  # noqa: E402


def test_table_aligns_text_left_and_numbers_right():
    table = benchlib.Table("title", ["engine", "ms", "ratio"])
    table.add("onnxruntime", 246.0, "1.00x")
    table.add("interpreter (reference)", 1234.5, "2.73x")
    table.note("a note")
    lines = table.render().splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == ["engine", "ms", "ratio"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert lines[3] == "onnxruntime" + " " * 12 + "   246  1.00x"  # text padded left, numbers right
    assert lines[4] == "interpreter (reference)  1234  2.73x"
    assert lines[5] == "  a note"
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        table.add("x", 1)


def test_goal_verdicts_and_summary_records(tmp_path, monkeypatch):
    summary = tmp_path / "summary.jsonl"
    monkeypatch.setenv(benchlib.SUMMARY_VARIABLE, str(summary))
    assert benchlib.goal("ratio", 1.4, 1.5) == "met"
    assert benchlib.goal("ratio", 1.6, 1.5) == "NOT met"
    assert benchlib.goal("speed-up", 2.5, 2.0, higher_is_better=True) == "met"
    records = [json.loads(line) for line in summary.read_text().splitlines()]
    assert [(r["goal"], r["measured"], r["comparison"], r["verdict"]) for r in records] == [
        ("ratio", 1.4, "<=", "met"), ("ratio", 1.6, "<=", "NOT met"), ("speed-up", 2.5, ">=", "met")]


def test_silenced_stderr_hides_native_writes_and_replays_them_on_failure(tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(BENCHMARKS)!r})
        import benchlib
        with benchlib.silenced_stderr():
            os.write(2, b"chatter from C\\n")
        print("after", file=sys.stderr)
        try:
            with benchlib.silenced_stderr():
                os.write(2, b"the reason it failed\\n")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "after\nthe reason it failed\n"


def test_run_measured_reports_the_child_s_own_peak_memory():
    small = benchlib.run_measured([sys.executable, "-c", "pass"])
    big = benchlib.run_measured([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert small.returncode == big.returncode == 0
    assert big.peak_rss_mib > small.peak_rss_mib + 150
    assert small.seconds > 0 and small.cpu_seconds >= 0


def test_run_all_prints_one_summary_table(tmp_path):
    """run_all.py runs the scripts it is given and gathers their goals (here a script written for the test)."""
    script = BENCHMARKS / f"bench_zz_selftest_{os.getpid()}.py"
    script.write_text("import benchlib\nbenchlib.goal('answer', 42.0, 40.0, 's')\nprint('ran')\n")
    try:
        result = subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), script.name],
                                capture_output=True, text=True, timeout=60)
    finally:
        script.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout[result.stdout.index("=== summary"):].splitlines()
    assert summary[3].split()[:6] == [script.name, "answer", "42.00", "s", "<=", "40.00"]
    assert "NOT met" in summary[3]
    assert "ran" in result.stdout


def test_interleaved_wall_and_cpu_times_each_callable_in_turn():
    calls: list[str] = []

    def burn() -> None:  # CPU work this process's clock counts
        calls.append("burn")
        sum(i * i for i in range(20_000))

    results = benchlib.interleaved_wall_and_cpu([burn, lambda: calls.append("idle")], repeats=3, warmup=1)
    assert calls == ["burn", "idle"] * 4  # one warm-up round, then three rounds, alternating
    assert len(results) == 2
    for wall, cpu in results:
        assert wall >= 0 and cpu >= 0
    assert results[0][1] > 0  # the loop used CPU time
    walls = benchlib.interleaved_medians([burn], repeats=2, warmup=0)
    assert len(walls) == 1 and calls.count("burn") == 6
