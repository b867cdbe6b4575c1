"""Wilcoxon signed-rank test edge cases and the per-patient summary."""

from __future__ import annotations

import pytest
from scipy.stats import wilcoxon

from metrics.summary import summarize_cohort, wilcoxon_baseline_vs_last
from metrics.vocabulary import WilcoxonNote


def test_no_pairs():
    r = wilcoxon_baseline_vs_last([], [], min_pairs=6)
    assert (r.n_pairs, r.statistic, r.p_value, r.note) == (0, None, None, WilcoxonNote.NO_PAIRS)


def test_all_differences_zero():
    r = wilcoxon_baseline_vs_last([10.0, 20.0], [10.0, 20.0], min_pairs=1)
    assert r.note is WilcoxonNote.ALL_DIFFERENCES_ZERO and r.p_value is None and r.n_pairs == 2


def test_too_few_nonzero_pairs():
    r = wilcoxon_baseline_vs_last([10, 20, 30, 40, 50, 60], [9, 18, 27, 36, 45, 60], min_pairs=6)
    assert r.note is WilcoxonNote.TOO_FEW_PAIRS and r.n_nonzero == 5 and r.n_pairs == 6


def test_exact_test_matches_scipy():
    baseline = [30.0, 25.0, 40.0, 10.0, 50.0, 35.0, 20.0]
    last = [20.0, 24.0, 28.0, 12.0, 30.0, 30.0, 5.0]
    r = wilcoxon_baseline_vs_last(baseline, last, min_pairs=6)
    expected = wilcoxon([b - a for a, b in zip(baseline, last, strict=True)], method="exact")
    assert r.note is WilcoxonNote.OK and r.method == "exact"
    assert r.statistic == expected.statistic == 2.0  # the one positive difference (+2) has rank 2
    # rank sums <= 2 among 2^7 sign patterns: {}, {1}, {2}; two-sided: 2 * 3 / 128
    assert r.p_value == pytest.approx(expected.pvalue) and r.p_value == pytest.approx(6 / 128)


def test_ties_use_the_normal_approximation():
    r = wilcoxon_baseline_vs_last([10.0] * 6, [8.0, 8.0, 7.0, 12.0, 6.0, 5.0], min_pairs=6)
    assert r.method == "asymptotic" and r.note is WilcoxonNote.OK and 0 < r.p_value < 1


def test_cohort_row_counts_pairs_and_medians():
    patients = [
        {"baseline_lesion_pct": 30.0, "last_follow_up_lesion_pct": 10.0, "response_at_last_follow_up": "improved"},
        {"baseline_lesion_pct": 20.0, "last_follow_up_lesion_pct": 22.0, "response_at_last_follow_up": "stable"},
        {"baseline_lesion_pct": 10.0, "last_follow_up_lesion_pct": None, "response_at_last_follow_up": None},
        {"baseline_lesion_pct": None, "last_follow_up_lesion_pct": 5.0, "response_at_last_follow_up": None},
    ]
    row = summarize_cohort(patients, min_pairs=6)
    assert row["cohort_n_patients"] == 4 and row["cohort_n_paired"] == 2
    assert (row["cohort_n_improved"], row["cohort_n_stable"], row["cohort_n_worsened"]) == (1, 1, 0)
    assert row["cohort_median_baseline_lesion_pct"] == 25.0
    assert row["cohort_median_last_follow_up_lesion_pct"] == 16.0
    assert row["cohort_median_delta_lesion_pct"] == -9.0
    assert row["wilcoxon_note"] == "too_few_pairs" and row["wilcoxon_p_value"] is None


def test_differences_printed_alike_are_ties():
    # 5.0001 - 1.1234 and 4.8788 - 1.0021 both print as 3.8767 but differ in the last bit
    baseline = [1.1234, 1.0021, 6.0, 7.0, 9.0, 10.0]
    last = [5.0001, 4.8788, 5.0, 5.0, 4.0, 4.0]
    assert last[0] - baseline[0] != last[1] - baseline[1]  # the noise this test is about
    r = wilcoxon_baseline_vs_last(baseline, last, min_pairs=6)
    rounded = [round(b - a, 9) for a, b in zip(baseline, last, strict=True)]
    expected = wilcoxon(rounded, method="asymptotic")
    assert r.method == "asymptotic"  # a tie: the exact distribution does not apply
    assert r.statistic == pytest.approx(float(expected.statistic))
    assert r.p_value == pytest.approx(float(expected.pvalue))


def test_noise_is_not_a_nonzero_difference():
    baseline = [0.3, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    last = [0.1 + 0.2, 11.0, 18.0, 33.0, 36.0, 55.0, 54.0]  # 0.1 + 0.2 - 0.3 is 5.6e-17, printed 0
    r = wilcoxon_baseline_vs_last(baseline, last, min_pairs=6)
    assert (r.n_pairs, r.n_nonzero) == (7, 6)
    expected = wilcoxon([b - a for a, b in zip(baseline[1:], last[1:], strict=True)], method="exact")
    assert r.method == "exact" and r.p_value == pytest.approx(float(expected.pvalue))


def test_cohort_median_delta_uses_the_rounded_differences():
    patients = [
        {"baseline_lesion_pct": b, "last_follow_up_lesion_pct": f, "response_at_last_follow_up": "stable"}
        for b, f in ((1.1234, 5.0001), (1.0021, 4.8788))
    ]
    row = summarize_cohort(patients, min_pairs=6)
    assert row["cohort_median_delta_lesion_pct"] == round(5.0001 - 1.1234, 9)
    assert row["cohort_median_delta_lesion_pct"] == round(4.8788 - 1.0021, 9)
