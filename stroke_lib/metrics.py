"""Classification metrics with confidence intervals, for every chapter.

Inputs are 1D arrays: ``y`` true labels in {0, 1} (1 = the positive class, e.g.
non-minor stroke), ``score`` predicted probability of the positive class, and ``groups``
the patient ID of each row. Positive-class metrics come first; class-weighted ones
(each class's metric weighted by its share of the rows) sit beside them because some
papers report only those.

Why weighted recall always equals accuracy: weighted recall is
``sum_c (n_c / n) * (TP_c / n_c) = sum_c TP_c / n``, the share of rows classified
correctly. TRACT-NET (paper 000) reports "sensitivity" equal to accuracy on both its
cohorts (0.8137/0.8137 and 0.6896/0.6896): that is what a class-weighted recall gives,
not the sensitivity for non-minor stroke.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve


class UndefinedMetricError(ValueError):
    """A metric that is undefined for the given labels (e.g. AUC with one class)."""


def _check(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int).ravel()
    score = np.asarray(score, float).ravel()
    if y.shape != score.shape:
        raise ValueError(f"y has {y.size} rows, score has {score.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must contain only 0 and 1")
    return y, score


def _ratio(num: float, den: float, name: str) -> float:
    if den == 0:
        raise UndefinedMetricError(f"{name} is undefined: its denominator is 0")
    return num / den


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; raises ``UndefinedMetricError`` with one class only."""
    y, score = _check(y, score)
    if y.min() == y.max():
        raise UndefinedMetricError("AUC is undefined when only one class is present")
    return float(roc_auc_score(y, score))


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Metrics at ``threshold`` (predict positive when ``score >= threshold``).

    Returns sensitivity, specificity, ppv, npv, f1, accuracy (positive class), auc and
    average_precision (threshold-free), and weighted_recall, weighted_precision,
    weighted_f1 (class-weighted). A metric whose denominator is 0 is NaN here; call
    the single metric functions to get an error instead.
    """
    y, score = _check(y, score)
    pred = (score >= threshold).astype(int)
    tp = float(((pred == 1) & (y == 1)).sum())
    tn = float(((pred == 0) & (y == 0)).sum())
    fp = float(((pred == 1) & (y == 0)).sum())
    fn = float(((pred == 0) & (y == 1)).sum())

    def safe(num: float, den: float) -> float:
        return num / den if den else float("nan")

    sens, spec = safe(tp, tp + fn), safe(tn, tn + fp)
    ppv, npv = safe(tp, tp + fp), safe(tn, tn + fn)
    f1 = safe(2 * tp, 2 * tp + fp + fn)
    f1_neg = safe(2 * tn, 2 * tn + fn + fp)
    n, n_pos = float(len(y)), float(y.sum())
    w_pos, w_neg = n_pos / n, (n - n_pos) / n
    both = 0 < n_pos < n
    return {
        "sensitivity": sens,
        "specificity": spec,
        "ppv": ppv,
        "npv": npv,
        "f1": f1,
        "accuracy": (tp + tn) / n,
        "auc": float(roc_auc_score(y, score)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, score)) if n_pos else float("nan"),
        "weighted_recall": w_pos * sens + w_neg * spec if both else float("nan"),
        "weighted_precision": w_pos * ppv + w_neg * npv,
        "weighted_f1": w_pos * f1 + w_neg * f1_neg,
    }


def sensitivity(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> float:
    """Recall of the positive class; raises when there is no positive row."""
    y, score = _check(y, score)
    return _ratio(float(((score >= threshold) & (y == 1)).sum()), float(y.sum()), "sensitivity")


def specificity(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> float:
    """Recall of the negative class; raises when there is no negative row."""
    y, score = _check(y, score)
    return _ratio(float(((score < threshold) & (y == 0)).sum()), float((y == 0).sum()), "specificity")


def youden_threshold(y_val: np.ndarray, score_val: np.ndarray) -> float:
    """Threshold maximising sensitivity + specificity - 1 on *validation* data only."""
    y, score = _check(y_val, score_val)
    if y.min() == y.max():
        raise UndefinedMetricError("Youden's J needs both classes in the validation data")
    fpr, tpr, thr = roc_curve(y, score)
    best = int(np.argmax(tpr - fpr))
    return float(min(thr[best], 1.0))


def bootstrap_ci(
    y: np.ndarray,
    score: np.ndarray,
    groups: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float] = auc,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile interval of ``statistic`` by a stratified patient
    bootstrap.

    Patients (``groups``) are resampled with replacement within strata of their label
    (a patient's label is the maximum of its rows), keeping all rows of a drawn patient,
    so the interval reflects patients, not scans. Replicates where the statistic is
    undefined are dropped.

    Returns:
        (estimate, lower, upper).
    """
    y, score = _check(y, score)
    groups = np.asarray(groups)
    patients, inverse = np.unique(groups, return_inverse=True)
    patient_label = np.zeros(len(patients), int)
    np.maximum.at(patient_label, inverse, y)
    rows_of = [np.flatnonzero(inverse == i) for i in range(len(patients))]
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(patient_label == c) for c in (0, 1)]
    values = []
    for _ in range(n_boot):
        drawn = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata if len(s)])
        idx = np.concatenate([rows_of[p] for p in drawn])
        try:
            v = statistic(y[idx], score[idx])
        except UndefinedMetricError:
            continue
        if np.isfinite(v):
            values.append(v)
    if not values:
        raise UndefinedMetricError("the statistic is undefined in every bootstrap replicate")
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(statistic(y, score)), float(lo), float(hi)


def _structural_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong placement values for K score rows (K, n): AUCs, V10 (K, m), V01 (K, n)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    # psi(x, y) = 1 if x > y, 0.5 if equal: computed with midranks
    v10 = np.empty((scores.shape[0], m))
    v01 = np.empty((scores.shape[0], n))
    aucs = np.empty(scores.shape[0])
    for k in range(scores.shape[0]):
        tx = stats.rankdata(pos[k])
        ty = stats.rankdata(neg[k])
        tz = stats.rankdata(np.concatenate([pos[k], neg[k]]))
        aucs[k] = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
        v10[k] = (tz[:m] - tx) / n
        v01[k] = 1.0 - (tz[m:] - ty) / m
    return aucs, v10, v01


def _delong_cov(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(int)
    if y.min() == y.max():
        raise UndefinedMetricError("DeLong needs both classes")
    aucs, v10, v01 = _structural_components(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def delong_ci(y: np.ndarray, score: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC with its DeLong (1988) interval, clipped to [0, 1]: (auc, lower, upper)."""
    y, score = _check(y, score)
    aucs, cov = _delong_cov(y, score[None])
    se = float(np.sqrt(cov[0, 0]))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(aucs[0]), max(0.0, aucs[0] - z * se), min(1.0, aucs[0] + z * se)


def delong_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> dict[str, float]:
    """Paired DeLong test of two models scored on the same rows.

    Returns auc_a, auc_b, difference (a - b), its standard error, z and two-sided p.
    """
    y, score_a = _check(y, score_a)
    _, score_b = _check(y, score_b)
    aucs, cov = _delong_cov(y, np.vstack([score_a, score_b]))
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = float(aucs[0] - aucs[1])
    se = float(np.sqrt(max(var, 0.0)))
    z = diff / se if se > 0 else 0.0
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "se": se,
            "z": z, "p": float(2 * stats.norm.sf(abs(z)))}


def calibration(y: np.ndarray, score: np.ndarray, n_bins: int = 5) -> dict[str, object]:
    """Brier score and reliability curve (observed rate per bin of predicted probability)."""
    y, score = _check(y, score)
    observed, predicted = calibration_curve(y, score, n_bins=n_bins, strategy="quantile")
    return {"brier": float(brier_score_loss(y, score)), "predicted": predicted, "observed": observed}


METRIC_ORDER = ["sensitivity", "specificity", "ppv", "npv", "f1", "accuracy", "auc",
                "average_precision", "weighted_recall", "weighted_precision", "weighted_f1"]


def metrics_table(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, threshold: float = 0.5,
    n_boot: int = 2000, seed: int = 0,
) -> pd.DataFrame:
    """Every metric of ``binary_metrics`` with a 95% patient-bootstrap interval; AUC also
    with its DeLong interval (row ``auc_delong``). Columns: estimate, lower, upper, method.

    A metric undefined in every replicate (PPV of a model that calls no patient positive)
    gets NaN bounds and says so in ``method`` instead of stopping the table."""
    rows = []
    for name in METRIC_ORDER:
        def stat(yy: np.ndarray, ss: np.ndarray, name: str = name) -> float:
            return binary_metrics(yy, ss, threshold)[name]
        try:
            est, lo, hi = bootstrap_ci(y, score, groups, stat, n_boot=n_boot, seed=seed)
            method = "patient bootstrap"
        except UndefinedMetricError as err:  # e.g. PPV when no patient is called positive
            est, lo, hi, method = stat(np.asarray(y), np.asarray(score)), np.nan, np.nan, f"undefined: {err}"
        rows.append({"metric": name, "estimate": est, "lower": lo, "upper": hi, "method": method})
    a, lo, hi = delong_ci(y, score)
    rows.append({"metric": "auc_delong", "estimate": a, "lower": lo, "upper": hi, "method": "DeLong"})
    return pd.DataFrame(rows).set_index("metric")
