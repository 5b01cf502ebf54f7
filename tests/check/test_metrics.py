"""Metrics, tolerance precedence and input plans: pure numpy, no framework."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from interop.checker.inputs import from_arrays, plan_runs, random_inputs
from interop.checker.metrics import REL_FLOOR, compare
from interop.checker.tolerances import PRECISION_DEFAULTS, build_settings, parse_tolerance_option
from interop.plugin_api import InteropError, TensorSpec


def test_identical_arrays_have_zero_error_and_full_agreement() -> None:
    ref = np.arange(12, dtype=np.float32).reshape(4, 3)
    m = compare(ref, ref.copy(), 1e-5, 1e-4)
    assert (m.max_abs, m.max_rel, m.mean_abs, m.p99_abs) == (0.0, 0.0, 0.0, 0.0)
    assert m.cosine == pytest.approx(1.0)
    assert m.argmax_agreement == 1.0
    assert m.within_tolerance == 1.0


def test_max_rel_does_not_explode_where_the_reference_is_zero() -> None:
    ref = np.array([[0.0, 10.0]], dtype=np.float32)
    cand = np.array([[1e-4, 10.0]], dtype=np.float32)
    m = compare(ref, cand, 1e-5, 1e-4)
    # the zero element is judged against the floor REL_FLOOR * max|r| = 1e-2
    assert m.max_rel == pytest.approx(1e-4 / (REL_FLOOR * 10.0), rel=1e-3)
    assert np.isfinite(m.max_rel)


def test_worst_sample_and_argmax_disagreement() -> None:
    ref = np.zeros((5, 3), dtype=np.float32)
    ref[:, 0] = 1.0
    cand = ref.copy()
    cand[3] = [0.0, 2.0, 0.0]  # sample 3 changes class and holds the largest error
    cand[1, 2] = 1e-3
    m = compare(ref, cand, 1e-5, 1e-4)
    assert m.worst_sample == 3
    assert m.argmax_agreement == pytest.approx(4 / 5)
    assert m.within_tolerance == pytest.approx(12 / 15)


def test_nan_in_the_candidate_is_a_nonfinite_mismatch_not_hidden_by_means() -> None:
    ref = np.ones((4, 2), dtype=np.float32)
    cand = ref.copy()
    cand[2, 1] = np.nan
    m = compare(ref, cand, 1e-5, 1e-4)
    assert m.nonfinite_mismatch == 1
    assert m.worst_sample == 2
    assert m.within_tolerance < 1.0
    assert m.max_abs == 0.0  # the finite elements are equal
    both_nan = compare(cand, cand.copy(), 1e-5, 1e-4)
    assert both_nan.nonfinite_mismatch == 0 and both_nan.within_tolerance == 1.0


def test_argmax_is_none_for_outputs_that_are_not_class_scores() -> None:
    ref = np.ones(5, dtype=np.float32)
    assert compare(ref, ref, 0, 0).argmax_agreement is None


def test_tolerance_precedence(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.interop.check]\natol = 0.5\n"
        "[tool.interop.check.tolerances]\nprobs = [0.25, 0.125]\n"
        "[tool.interop.check.precision.fp16]\nrtol = 0.03\n"
    )
    settings = build_settings(rtol=0.2, tolerances=["logits=1e-3,1e-2"], project=tmp_path / "pyproject.toml")
    logits = settings.for_output("logits", "fp32")
    assert (logits.atol, logits.rtol, logits.source) == (1e-3, 1e-2, "--tolerance logits")
    probs = settings.for_output("probs", "fp32")
    assert (probs.atol, probs.rtol) == (0.25, 0.125)
    other = settings.for_output("other", "fp16")
    assert (other.atol, other.rtol) == (0.5, 0.2)  # project atol beats the fp16 default, --rtol beats all
    plain = build_settings(project=tmp_path / "pyproject.toml").for_output("other", "fp16")
    assert plain.rtol == 0.03 and plain.atol == 0.5
    default = build_settings(project=False).for_output("other", "fp16")
    assert (default.atol, default.rtol) == PRECISION_DEFAULTS["fp16"]
    assert build_settings(project=False).for_output("labels", "fp32", exact=True).atol == 0.0


def test_project_table_is_found_from_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.interop.check]\nrtol = 0.001\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert build_settings().for_output("y", "fp32").rtol == 0.001


def test_bad_tolerance_settings_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(InteropError, match="NAME=ATOL,RTOL"):
        parse_tolerance_option("logits=1e-3")
    with pytest.raises(InteropError, match="zero or positive"):
        build_settings(atol=-1.0, project=False)
    (tmp_path / "pyproject.toml").write_text("[tool.interop.check]\natoll = 1\n")
    with pytest.raises(InteropError, match="unknown key atoll") as info:
        build_settings(project=tmp_path / "pyproject.toml")
    assert info.value.exit_code == 2


def test_dynamic_batch_plan_runs_every_batch_size_then_chunks() -> None:
    spec = [TensorSpec("x", "float32", (None, 2))]
    assert plan_runs(150, spec, (1, 7, 64), 4096) == [1, 7, 64, 78]
    assert plan_runs(100_000, spec, (1, 7, 64), 4096)[:4] == [1, 7, 64, 4096]
    assert sum(plan_runs(100_000, spec, (1, 7, 64), 4096)) == 100_000
    assert plan_runs(5, spec, (1, 7, 64), 4096) == [1, 4]
    fixed = [TensorSpec("x", "float32", (2, 3))]
    assert plan_runs(6, fixed, (1, 7, 64), 4096) == [2, 2, 2]
    with pytest.raises(InteropError, match="fixed batch of 2"):
        plan_runs(5, fixed, (1, 7, 64), 4096)


def test_random_inputs_are_seeded_and_follow_the_specs() -> None:
    specs = [TensorSpec("x", "float32", ("batch", 4, None)), TensorSpec("ids", "int64", (None,))]
    first = random_inputs(specs, seed=3, value_range=(2.0, 5.0))
    again = random_inputs(specs, seed=3, value_range=(2.0, 5.0))
    assert first.plan == [1, 7, 64]
    assert first.arrays["x"].shape == (72, 4, 8) and first.arrays["x"].dtype == np.float32
    assert first.arrays["ids"].dtype == np.int64
    assert 2.0 <= first.arrays["x"].min() and first.arrays["x"].max() <= 5.0
    np.testing.assert_array_equal(first.arrays["x"], again.arrays["x"])
    other = random_inputs(specs, seed=4, value_range=(2.0, 5.0))
    assert not np.array_equal(first.arrays["x"], other.arrays["x"])


def test_input_arrays_are_checked_against_names_and_shapes() -> None:
    specs = [TensorSpec("x", "float32", (None, 4))]
    with pytest.raises(InteropError, match="missing x; unexpected wrong") as info:
        from_arrays({"wrong": np.zeros((2, 4))}, specs, "inputs file f.npz")
    assert "the model's inputs are: x" in (info.value.hint or "")
    with pytest.raises(InteropError, match="expects"):
        from_arrays({"x": np.zeros((2, 5), dtype=np.float32)}, specs, "inputs file f.npz")
    converted = from_arrays({"x": np.zeros((2, 4), dtype=np.float64)}, specs, "given")
    assert converted.arrays["x"].dtype == np.float32


def test_scaled_statistic_judges_near_zero_elements_against_the_sample_magnitude() -> None:
    # logits in the thousands: float32 noise of 2e-3 is 1e-6 of the sample's scale, but huge next to 0.5
    ref = np.array([[3000.0, -2500.0, 0.5, 1800.0]])
    cand = ref + np.array([[1e-3, -2e-3, 2e-3, 1e-3]])
    elementwise = compare(ref, cand, 1e-5, 1e-4, stat="elementwise")
    scaled = compare(ref, cand, 1e-5, 1e-4, stat="scaled")
    assert not elementwise.stat_passed and elementwise.within_tolerance == 0.75
    assert scaled.stat_passed and scaled.within_tolerance == 1.0
    rms = np.sqrt(np.mean(ref ** 2))
    assert scaled.max_scaled == pytest.approx(2e-3 / rms)
    assert scaled.margin == pytest.approx(2e-3 / (1e-5 + 1e-4 * rms))
    # a real error (one logit off by 1) still fails
    wrong = cand.copy()
    wrong[0, 1] += 1.0
    assert not compare(ref, wrong, 1e-5, 1e-4).stat_passed


def test_scaled_statistic_uses_each_samples_own_magnitude() -> None:
    ref = np.array([[1000.0, 0.1], [1.0, 0.1]])
    cand = ref + np.array([[0.0, 1e-3], [0.0, 1e-3]])
    m = compare(ref, cand, 1e-5, 1e-4)
    # sample 0 (scale ~707) tolerates 1e-3 next to 0.1; sample 1 (scale ~0.7) does not
    assert not m.stat_passed and m.worst_sample == 1 and m.within_tolerance == 0.75
    assert m.worst_sample_max_abs == pytest.approx(1e-3)
    whole = compare(ref, cand, 1e-5, 1e-4, sample_axis=False)
    assert whole.stat_passed  # one scale for the whole output


@pytest.mark.parametrize(("stat", "passes"), [("max", False), ("mean", True), ("median", True), ("p99", False)])
def test_aggregate_statistics_pass_on_abs_or_rel(stat: str, passes: bool) -> None:
    ref = np.ones((100, 10))
    cand = ref.copy()
    cand[:2] += 0.4  # 20 of 1000 elements off by 0.4: mean 8e-3, median 0, p99 0.4
    m = compare(ref, cand, 1e-2, 1e-2, stat=stat)
    assert m.stat_passed is passes
    assert (m.mean_abs, m.median_abs, m.max_abs, m.p99_abs) == pytest.approx((8e-3, 0.0, 0.4, 0.4))


def test_statistic_resolution_per_output_then_global_then_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.interop.check]\nerror_stat = "p99"\n')
    settings = build_settings(project=tmp_path / "pyproject.toml", error_stats=["logits=max"])
    assert settings.for_output("logits", "fp32").stat == "max"
    assert settings.for_output("other", "fp32").stat == "p99"
    assert settings.for_output("labels", "fp32", exact=True).stat == "elementwise"
    assert build_settings(project=False, error_stats="mean").for_output("x", "fp32").stat == "mean"
    assert build_settings(project=False).for_output("x", "fp32").stat == "scaled"
    with pytest.raises(InteropError, match="must be one of"):
        build_settings(project=False, error_stats=["x=p50"])
