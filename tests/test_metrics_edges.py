"""Metrics at their edges: label and score checks, paired tests with no standard error,
AUC intervals clustered by patient (Obuchowski 1997), one-class tables, Wilson intervals
and the Brier skill score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stroke_lib.metrics import (UndefinedMetricError, auc, binary_metrics, calibration, delong_ci,
                                delong_test, metrics_table)
from tests.test_metrics import _delong_direct

Z = stats.norm.ppf(0.975)


@pytest.mark.parametrize("labels", [[0.2, 0.9, 0.2, 0.9], [0, 1.7, 0, 1], [0, 1, np.nan, 1], ["0", "1", "0", "1"]])
def test_labels_other_than_0_and_1_raise(labels):
    score = np.array([0.1, 0.8, 0.3, 0.6])
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_metrics(np.array(labels, dtype=object if isinstance(labels[0], str) else float), score)
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics_table(np.array(labels, dtype=object if isinstance(labels[0], str) else float), score,
                      np.arange(4), n_boot=10)


def test_boolean_and_float_labels_equal_integer_ones():
    y = np.array([0, 1, 0, 1, 1, 0])
    score = np.array([0.1, 0.8, 0.6, 0.4, 0.9, 0.2])
    assert binary_metrics(y.astype(bool), score) == binary_metrics(y, score)
    assert binary_metrics(y.astype(float), score) == binary_metrics(y, score)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_scores_raise(bad):
    y = np.array([0, 1, 0, 1, 0, 1])
    score = np.array([0.1, 0.8, bad, 0.7, 0.2, 0.9])
    for call in (lambda: delong_ci(y, score), lambda: delong_test(y, score, score[::-1].copy()),
                 lambda: delong_test(y, score[::-1].copy(), score), lambda: auc(y, score),
                 lambda: binary_metrics(y, score)):
        with pytest.raises(ValueError, match="finite"):
            call()
    with pytest.raises(ValueError, match=r"score has 1 non-finite value.*\[2\]"):
        delong_ci(y, score)


def test_paired_test_with_no_standard_error_is_not_p_one():
    # AUC 1.0 against 0.0 on the same ten patients: DeLong's standard error is 0
    y = np.repeat([0, 1], 5)
    perfect = np.arange(10) / 10.0
    reversed_ = perfect[::-1].copy()
    res = delong_test(y, perfect, reversed_)
    assert res["difference"] == 1.0 and res["se"] == 0.0
    # exact permutation test over the 2^10 swaps of the two models' ranks within patients:
    # only "no swap" and "swap all" give |difference| = 1
    assert res["p"] == pytest.approx(2 / 2**10, abs=1e-15)
    assert "permutation" in res["method"]
    same = delong_test(y, perfect, perfect * 2)  # the same ranking: no difference at all
    assert same["difference"] == 0.0 and same["p"] == 1.0


def test_permutation_swaps_whole_patients_and_samples_when_there_are_many():
    y = np.repeat([0, 1], 5)
    perfect = np.arange(10) / 10.0
    # the same ten rows as five patients of two scans: 2^5 swap patterns
    res = delong_test(y, perfect, perfect[::-1].copy(), groups=np.repeat(np.arange(5), 2))
    assert res["p"] == pytest.approx(2 / 2**5, abs=1e-15) and "32" in res["method"]
    y40, s40 = np.repeat([0, 1], 20), np.arange(40.0)  # 40 patients: random swaps
    many = delong_test(y40, s40, -s40, n_perm=2000, seed=1)
    assert many["p"] == pytest.approx(1 / 2001) and "2000 random" in many["method"]


def test_paired_test_reports_delong_when_it_can():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    res = delong_test(y, rng.normal(y, 1), rng.normal(0.5 * y, 1))
    assert res["se"] > 0 and res["method"].startswith("DeLong")
    assert res["p"] == pytest.approx(2 * stats.norm.sf(abs(res["difference"] / res["se"])))


def test_delong_needs_two_patients_per_class():
    y = np.array([0, 0, 0, 1])
    with pytest.raises(UndefinedMetricError, match="two"):
        delong_ci(y, np.array([0.1, 0.2, 0.3, 0.9]))
    y3, s3, g3 = np.repeat([0, 0, 1], 3), np.linspace(0, 1, 9), np.repeat([1, 2, 3], 3)
    with pytest.raises(UndefinedMetricError, match="1 patient"):
        delong_ci(y3, s3, groups=g3)  # three positive scans but one positive patient


def test_clustered_delong_with_one_row_per_patient_is_classic_delong():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 90)
    s1, s2 = np.round(rng.normal(0.8 * y, 1), 1), np.round(rng.normal(0.3 * y, 1), 1)  # ties
    groups = rng.permutation([f"sub-{i:03d}" for i in range(90)])
    a, var, v10, v01 = _delong_direct(y, s1)
    est, lo, hi = delong_ci(y, s1, groups=groups)
    assert est == pytest.approx(a, abs=1e-12)
    assert lo == pytest.approx(a - Z * np.sqrt(var), abs=1e-12)
    assert hi == pytest.approx(a + Z * np.sqrt(var), abs=1e-12)
    clustered, classic = delong_test(y, s1, s2, groups=groups), delong_test(y, s1, s2)
    for key in ("auc_a", "auc_b", "difference", "se", "z", "p"):
        assert clustered[key] == pytest.approx(classic[key], abs=1e-12), key


def _obuchowski_direct(y, score, groups):
    """Obuchowski (1997), equations as printed, with explicit loops over clusters."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pos), len(neg)
    psi = lambda a, b: 1.0 if a > b else 0.5 if a == b else 0.0  # noqa: E731
    theta = sum(psi(score[i], score[j]) for i in pos for j in neg) / (m * n)
    clusters = np.unique(groups)
    v10, v01, mi, ni = [], [], [], []
    for c in clusters:
        rows = np.flatnonzero(groups == c)
        p_rows, n_rows = [r for r in rows if y[r] == 1], [r for r in rows if y[r] == 0]
        v10.append(sum(sum(psi(score[i], score[j]) for j in neg) / n for i in p_rows))
        v01.append(sum(sum(psi(score[i], score[j]) for i in pos) / m for j in n_rows))
        mi.append(len(p_rows))
        ni.append(len(n_rows))
    v10, v01, mi, ni = map(np.array, (v10, v01, mi, ni))
    i10, i01, i = (mi > 0).sum(), (ni > 0).sum(), len(clusters)
    s10 = i10 / ((i10 - 1) * m) * ((v10 - mi * theta) ** 2).sum()
    s01 = i01 / ((i01 - 1) * n) * ((v01 - ni * theta) ** 2).sum()
    s11 = i / (i - 1) * ((v10 - mi * theta) * (v01 - ni * theta)).sum()
    return theta, s10 / m + s01 / n + 2 * s11 / (m * n)


def test_clustered_delong_equals_obuchowski_with_mixed_clusters():
    # 25 patients, 1-4 scans each, labels per scan (a patient may have both), ties
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(25), rng.integers(1, 5, 25))
    effect = rng.normal(0, 1, 25)[groups]
    y = (rng.random(len(groups)) < 0.45).astype(int)
    score = np.round(effect + y + rng.normal(0, 0.7, len(groups)), 1)
    theta, var = _obuchowski_direct(y, score, groups)
    est, lo, hi = delong_ci(y, score, groups=groups)
    assert est == pytest.approx(theta, abs=1e-12)
    assert (hi - lo) / (2 * Z) == pytest.approx(np.sqrt(var), abs=1e-12)
    # the paired test's variance of a difference from a model and its negation is 4 var
    res = delong_test(y, score, -score, groups=groups)
    assert res["se"] == pytest.approx(2 * np.sqrt(var), abs=1e-12)


def _patients_and_triplicates(seed=2, n=40):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    score = rng.normal(0.9 * y, 1)
    return y, score, np.repeat(y, 3), np.repeat(score, 3), np.repeat(np.arange(n), 3)


def test_delong_interval_counts_patients_not_scans():
    # three identical scans per patient carry the information of one: the clustered
    # interval of the tripled data equals the interval of the patients
    y, score, y3, s3, g3 = _patients_and_triplicates()
    assert delong_ci(y3, s3, groups=g3) == pytest.approx(delong_ci(y, score), abs=1e-12)
    table = metrics_table(y3, s3, g3, n_boot=50)
    row = table.loc["auc_delong"]
    _, lo, hi = delong_ci(y, score)
    assert row.upper - row.lower == pytest.approx(hi - lo, abs=1e-12)
    assert "clustered" in row.method and "Obuchowski" in row.method
    _, lo_rows, hi_rows = delong_ci(y3, s3)  # rows taken as independent: too narrow
    assert (hi_rows - lo_rows) < 0.6 * (hi - lo)


def test_one_class_table_marks_undefined_rows():
    y = np.zeros(12, int)
    score = np.linspace(0.05, 0.95, 12)
    table = metrics_table(y, score, np.repeat(np.arange(6), 2), n_boot=30)
    for name in ("auc", "auc_delong", "sensitivity"):
        assert table.loc[name, "method"].startswith("undefined"), name
        assert np.isnan(float(table.loc[name, "lower"])), name
    assert table.loc["specificity", "estimate"] == pytest.approx(0.5)
    assert list(table.columns) == ["estimate", "lower", "upper", "method"]


def _wilson(k, n):
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def test_proportion_at_one_gets_a_wilson_interval():
    y = np.repeat([0, 1], 15)
    score = np.r_[np.linspace(0.0, 0.4, 15), np.linspace(0.6, 1.0, 15)]  # perfect at 0.5
    table = metrics_table(y, score, np.arange(30), n_boot=50)
    for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
        row = table.loc[name]
        n = 30 if name == "accuracy" else 15
        assert row.estimate == 1.0 and row.upper == 1.0
        assert row.lower == pytest.approx(_wilson(n, n)[0], abs=1e-12)
        assert row.method.startswith("Wilson") and "estimate is 1" in row.method
    assert table.loc["f1", "method"] == "patient bootstrap"


def test_small_denominator_gets_a_wilson_interval():
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(40, int), np.ones(8, int)]
    score = np.r_[rng.uniform(0, 0.45, 36), rng.uniform(0.55, 1, 4), [0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.9]]
    table = metrics_table(y, score, np.arange(48), n_boot=50)
    sens = table.loc["sensitivity"]
    assert sens.estimate == pytest.approx(5 / 8)
    assert (sens.lower, sens.upper) == pytest.approx(_wilson(5, 8), abs=1e-12)
    assert sens.method.startswith("Wilson") and "8 patients" in sens.method
    assert table.loc["specificity", "method"] == "patient bootstrap"  # 40 patients, 0.9


def test_wilson_counts_patients_when_they_have_several_scans():
    y, score = np.repeat([0, 1], 15), np.r_[np.linspace(0, 0.4, 15), np.linspace(0.6, 1, 15)]
    table = metrics_table(np.repeat(y, 3), np.repeat(score, 3), np.repeat(np.arange(30), 3), n_boot=20)
    assert table.loc["sensitivity", "lower"] == pytest.approx(_wilson(15, 15)[0], abs=1e-12)


def test_calibration_reports_brier_skill_against_prevalence():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(int)
    score = np.clip(0.3 + 0.5 * (y - 0.3) + rng.normal(0, 0.1, 200), 0, 1)
    cal = calibration(y, score)
    prevalence = y.mean()
    assert cal["brier_reference"] == pytest.approx(np.mean((prevalence - y) ** 2))
    assert cal["brier_skill"] == pytest.approx(1 - cal["brier"] / cal["brier_reference"])
    assert 0 < cal["brier_skill"] < 1
    assert calibration(y, np.full(200, prevalence))["brier_skill"] == pytest.approx(0, abs=1e-12)
    assert {"brier", "predicted", "observed"} <= set(cal)


def test_a_proportion_whose_bootstrap_has_no_spread_gets_a_wilson_interval():
    """A model calling all 30 patients negative: its accuracy is the share of negatives,
    which a bootstrap stratified by class reproduces in every replicate."""
    y = np.array([0] * 20 + [1] * 10)
    table = metrics_table(y, np.full(30, 0.1), np.arange(30), n_boot=200)
    row = table.loc["accuracy"]
    assert row.estimate == pytest.approx(2 / 3)
    assert row.lower < row.estimate < row.upper
    assert row.method.startswith("Wilson (the stratified bootstrap has no spread")


def test_a_model_calling_everyone_positive_gets_no_zero_width_interval():
    """All 30 patients called positive: weighted recall (= accuracy) gets accuracy's Wilson
    interval, and F1, which is no proportion, no interval rather than [x, x]."""
    y = np.array([0] * 12 + [1] * 18)
    table = metrics_table(y, np.random.default_rng(0).uniform(0.6, 0.9, 30), np.arange(30), n_boot=200)
    assert table.loc["weighted_recall", "estimate"] == pytest.approx(table.loc["accuracy", "estimate"])
    assert table.loc["weighted_recall", ["lower", "upper"]].tolist() == pytest.approx(
        table.loc["accuracy", ["lower", "upper"]].tolist())
    assert table.loc["weighted_recall", "lower"] < table.loc["weighted_recall", "upper"]
    for name in ("f1", "weighted_f1"):
        row = table.loc[name]
        assert np.isnan(row.lower) and np.isnan(row.upper), name
        assert row.method.startswith("no interval: the stratified bootstrap has no spread"), name
    assert table.loc["auc", "lower"] < table.loc["auc", "upper"]  # the scores still rank
