"""Metrics against scikit-learn, DeLong against a direct computation, interval coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, precision_score,
                             recall_score, roc_auc_score)

from stroke_lib.metrics import (UndefinedMetricError, auc, binary_metrics, bootstrap_ci, delong_ci,
                                delong_test, median_ci, metrics_table, sensitivity, youden_threshold)


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 200))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    score = np.round(rng.random(n) * 0.6 + 0.4 * y, 1)  # ties on purpose
    m = binary_metrics(y, score, 0.5)
    pred = (score >= 0.5).astype(int)
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["ppv"] == pytest.approx(precision_score(y, pred, zero_division=np.nan))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["auc"] == pytest.approx(roc_auc_score(y, score))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, score))
    assert m["weighted_recall"] == pytest.approx(recall_score(y, pred, average="weighted"))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["weighted_recall"] == pytest.approx(m["accuracy"])  # always, as TRACT-NET shows


def test_undefined_metrics_raise():
    y = np.ones(5, int)
    with pytest.raises(UndefinedMetricError, match="one class"):
        auc(y, np.linspace(0, 1, 5))
    with pytest.raises(UndefinedMetricError, match="sensitivity"):
        sensitivity(np.zeros(4, int), np.ones(4))
    assert np.isnan(binary_metrics(y, np.linspace(0, 1, 5))["auc"])
    with pytest.raises(ValueError, match="only 0 and 1"):
        binary_metrics(np.array([0, 2]), np.array([0.1, 0.2]))


def test_tiny_n_and_youden_uses_given_data():
    y = np.array([0, 1])
    assert binary_metrics(y, np.array([0.2, 0.9]))["auc"] == 1.0
    thr = youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.35, 0.8]))
    assert thr == pytest.approx(0.35)


def _delong_direct(y, score):
    pos, neg = score[y == 1], score[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    a = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    return a, var, v10, v01


def test_delong_equals_direct_computation():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s1 = np.round(rng.normal(y * 0.8, 1), 1)
    s2 = np.round(rng.normal(y * 0.3, 1), 1)
    a, var, v10a, v01a = _delong_direct(y, s1)
    est, lo, hi = delong_ci(y, s1)
    z = stats.norm.ppf(0.975)
    assert est == pytest.approx(a) and lo == pytest.approx(a - z * np.sqrt(var))
    b, var_b, v10b, v01b = _delong_direct(y, s2)
    cov = np.cov(v10a, v10b)[0, 1] / v10a.size + np.cov(v01a, v01b)[0, 1] / v01a.size
    se = np.sqrt(var + var_b - 2 * cov)
    res = delong_test(y, s1, s2)
    assert res["difference"] == pytest.approx(a - b)
    assert res["se"] == pytest.approx(se)
    assert res["p"] == pytest.approx(2 * stats.norm.sf(abs((a - b) / se)))


def test_bootstrap_covers_true_auc_at_nominal_rate():
    d = 1.0
    true_auc = stats.norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(7)
    hits = 0
    sims = 120
    for i in range(sims):
        y = np.r_[np.zeros(40, int), np.ones(40, int)]
        score = rng.normal(d * y, 1)
        _, lo, hi = bootstrap_ci(y, score, np.arange(80), n_boot=250, seed=i)
        hits += lo <= true_auc <= hi
    assert 0.86 <= hits / sims <= 0.99


def test_bootstrap_resamples_patients_not_rows():
    # 10 patients with 20 identical scans each: the interval must reflect 10, not 200.
    y = np.repeat([0, 1] * 5, 20)
    score = np.repeat(np.random.default_rng(0).random(10) + 0.3 * np.array([0, 1] * 5), 20)
    groups = np.repeat(np.arange(10), 20)
    _, lo_p, hi_p = bootstrap_ci(y, score, groups, n_boot=300)
    _, lo_r, hi_r = bootstrap_ci(y, score, np.arange(200), n_boot=300)
    assert (hi_p - lo_p) > 2 * (hi_r - lo_r)


def test_metrics_table_marks_a_metric_undefined_everywhere():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    score = rng.uniform(0, 0.4, 20)  # nobody above 0.5: PPV undefined in every replicate
    table = metrics_table(y, score, np.arange(20), n_boot=50)
    assert np.isnan(table.loc["ppv", ["estimate", "lower", "upper"]].astype(float)).all()
    assert table.loc["ppv", "method"].startswith("undefined")
    assert table.loc["specificity", "estimate"] == 1.0
    assert table.loc["auc", "method"] == "patient bootstrap"


def test_median_ci_brackets_the_median_and_narrows_with_more_subjects():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    est, lo, hi = median_ci(few, seed=1)
    assert est == float(np.median(few)) and lo <= est <= hi
    assert median_ci(few, seed=1) == (est, lo, hi)  # seeded
    _, lo_many, hi_many = median_ci(many, seed=1)
    assert hi_many - lo_many < (hi - lo) / 4 and lo_many < 1.0 < hi_many
