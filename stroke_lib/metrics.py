"""Classification metrics with confidence intervals, for every chapter.

Inputs are 1D arrays: ``y`` true labels in {0, 1} (1 = the positive class, e.g.
non-minor stroke), ``score`` predicted probability of the positive class, and ``groups``
the patient ID of each row. Positive-class metrics come first; class-weighted ones
(each class's metric weighted by its share of the rows) sit beside them because some
papers report only those.

Why weighted recall always equals accuracy: weighted recall is
``sum_c (n_c / n) * (TP_c / n_c) = sum_c TP_c / n``, the share of rows classified
correctly. TRACT-NET (Oh et al. 2026) reports "sensitivity" equal to accuracy on both its
cohorts (0.8137/0.8137 and 0.6896/0.6896): that is what a class-weighted recall gives,
not the sensitivity for non-minor stroke.

Every function checks its inputs: labels must be exactly 0 and 1 (or booleans) and scores
finite, else a ``ValueError`` says which values and rows are wrong. Intervals count
patients, not scans: the bootstrap resamples patients, DeLong's AUC interval uses
Obuchowski's (1997) variance for clustered data when ``groups`` is given, and a proportion
at 0 or 1, or with fewer than ten patients in its denominator, gets a Wilson interval.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_curve


class UndefinedMetricError(ValueError):
    """A metric that is undefined for the given labels (e.g. AUC with one class)."""


def as_binary_labels(y: np.ndarray, name: str = "y") -> np.ndarray:
    """Labels (N,) as integers 0/1; raises ``ValueError`` unless every value is exactly 0 or
    1 (or a boolean): 0.2, 1.7, NaN or "1" are errors, never rounded."""
    arr = np.asarray(y).ravel()
    if arr.dtype == bool:
        return arr.astype(int)
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind != "O" or any(isinstance(v, (str, bytes)) for v in arr):
            raise ValueError(f"{name} must contain only 0 and 1 (or booleans); it holds {arr.dtype} values "
                             f"such as {arr[:3].tolist()}")
        arr = arr.astype(float)
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} must contain only 0 and 1 (or booleans); {rows.size} row(s) hold other values, "
                         f"e.g. {arr[rows[:5]].tolist()} at rows {rows[:5].tolist()}")
    return arr.astype(int)


def _finite_scores(score: np.ndarray, name: str = "score") -> np.ndarray:
    score = np.asarray(score, float).ravel()
    bad = np.flatnonzero(~np.isfinite(score))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} non-finite value(s) (NaN or inf) at rows {bad[:10].tolist()}")
    return score


def _check(y: np.ndarray, score: np.ndarray, name: str = "score") -> tuple[np.ndarray, np.ndarray]:
    y, score = as_binary_labels(y), _finite_scores(score, name)
    if y.shape != score.shape:
        raise ValueError(f"y has {y.size} rows, {name} has {score.size}")
    return y, score


def _groups(groups: np.ndarray | None, n: int) -> np.ndarray:
    """Patient ID per row (N,); ``None`` means one patient per row."""
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups).ravel()
    if groups.size != n:
        raise ValueError(f"groups has {groups.size} rows, y has {n}")
    return groups


def _ratio(num: float, den: float, name: str) -> float:
    if den == 0:
        raise UndefinedMetricError(f"{name} is undefined: its denominator is 0")
    return num / den


def _rank_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` (B, N) by midranks (Mann-Whitney)."""
    m, n = int(y.sum()), int((y == 0).sum())
    ranks = stats.rankdata(scores, axis=1)
    return (ranks[:, y == 1].sum(axis=1) - m * (m + 1) / 2) / (m * n)


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; raises ``UndefinedMetricError`` with one class only.

    Computed as the Mann-Whitney statistic from midranks (ties count one half), which is
    scikit-learn's ``roc_auc_score`` to rounding and several times faster (the bootstrap
    calls it thousands of times)."""
    y, score = _check(y, score)
    if y.min() == y.max():
        raise UndefinedMetricError("AUC is undefined when only one class is present")
    return float(_rank_auc(y, score[None])[0])


#: What each key of ``binary_metrics`` is, in words (pages print these beside the numbers).
METRIC_DEFINITIONS: dict[str, str] = {
    "sensitivity": "recall of the positive class, TP / (TP + FN)",
    "specificity": "recall of the negative class, TN / (TN + FP)",
    "ppv": "precision of the positive class, TP / (TP + FP)",
    "npv": "precision of the negative class, TN / (TN + FN)",
    "f1": "F1 of the positive class",
    "accuracy": "share of patients classified correctly",
    "auc": "area under the ROC curve of the scores",
    "average_precision": "area under the precision-recall curve of the positive class",
    "weighted_recall": "mean of the two classes' recalls weighted by their sizes (equals accuracy)",
    "weighted_precision": "mean of the two classes' precisions weighted by their sizes",
    "weighted_f1": "mean of the two classes' F1 weighted by their sizes",
    "macro_f1": "unweighted mean of the two classes' F1",
}


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Metrics at ``threshold`` (predict positive when ``score >= threshold``).

    Returns sensitivity, specificity, ppv, npv, f1, accuracy (positive class), auc and
    average_precision (threshold-free), and weighted_recall, weighted_precision,
    weighted_f1 (class-weighted) and macro_f1 (the two classes' F1 unweighted). A metric
    whose denominator is 0 is NaN here; call
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
        "auc": float(_rank_auc(y, score[None])[0]) if both else float("nan"),
        "average_precision": float(average_precision_score(y, score)) if n_pos else float("nan"),
        "weighted_recall": w_pos * sens + w_neg * spec if both else float("nan"),
        "weighted_precision": w_pos * ppv + w_neg * npv,
        "weighted_f1": w_pos * f1 + w_neg * f1_neg,
        "macro_f1": (f1 + f1_neg) / 2,
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


def patient_bootstrap(y: np.ndarray, groups: np.ndarray, n_boot: int, seed: int = 0):
    """Row indices of ``n_boot`` stratified patient-bootstrap replicates, one array each.

    Patients are drawn with replacement within strata of their label (a patient's label
    is the largest of its rows' integer labels, any number of classes), every row of a
    drawn patient kept, so a replicate has the class mix of the data in patients.
    """
    patients, inverse = np.unique(np.asarray(groups), return_inverse=True)
    patient_label = np.zeros(len(patients), int)
    np.maximum.at(patient_label, inverse, np.asarray(y, int))
    rows_of = [np.flatnonzero(inverse == i) for i in range(len(patients))]
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(patient_label == c) for c in np.unique(patient_label)]
    for _ in range(n_boot):
        drawn = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
        yield np.concatenate([rows_of[p] for p in drawn])


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
    values = []
    for idx in patient_bootstrap(y, _groups(groups, len(y)), n_boot, seed):
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


def median_ci(values: np.ndarray, n_boot: int = 2000, seed: int = 0,
              alpha: float = 0.05) -> tuple[float, float, float]:
    """Median of ``values`` (one per subject) with its percentile bootstrap interval
    (``scipy.stats.bootstrap``): (median, lower, upper)."""
    values = np.asarray(values, float)
    ci = stats.bootstrap((values,), np.median, n_resamples=n_boot, confidence_level=1 - alpha,
                         method="percentile", random_state=seed).confidence_interval
    return float(np.median(values)), float(ci.low), float(ci.high)


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


def _delong_cov(y: np.ndarray, scores: np.ndarray, cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (K,) of K score rows (K, N) and their covariance (K, K), clustered by patient.

    Obuchowski (1997, Biometrics 53:567-578): with ``V10(X_i)`` the sum of the placement
    values of patient i's positive rows, ``m_i`` their number (``n_i``, ``V01`` for
    negative rows), ``M``, ``N`` the positive and negative rows, ``I10``, ``I01`` the
    patients with a positive or a negative row and ``I`` all patients,
    ``S10 = I10 / ((I10 - 1) M) sum_i (V10_i - m_i A)^2``, ``S01`` likewise,
    ``S11 = I / (I - 1) sum_i (V10_i - m_i A)(V01_i - n_i A)`` and
    ``var A = S10 / M + S01 / N + 2 S11 / (M N)``; the covariance of two models takes
    the products of their deviations. With one row per patient this is DeLong (1988).
    ``cluster`` holds each row's patient index in 0..I-1.
    """
    i_all = int(cluster.max()) + 1
    c_pos, c_neg = cluster[y == 1], cluster[y == 0]
    i10, i01 = np.unique(c_pos).size, np.unique(c_neg).size
    if i10 < 2 or i01 < 2:
        raise UndefinedMetricError(
            "DeLong needs at least two patients with a positive row and two with a negative row; "
            f"found {i10} patient(s) with a positive row and {i01} with a negative row")
    aucs, v10, v01 = _structural_components(y, scores)
    big_m, big_n = v10.shape[1], v01.shape[1]
    m_i = np.bincount(c_pos, minlength=i_all)
    n_i = np.bincount(c_neg, minlength=i_all)
    d10 = np.stack([np.bincount(c_pos, weights=v, minlength=i_all) for v in v10]) - m_i * aucs[:, None]
    d01 = np.stack([np.bincount(c_neg, weights=v, minlength=i_all) for v in v01]) - n_i * aucs[:, None]
    s10 = i10 / ((i10 - 1) * big_m) * d10 @ d10.T
    s01 = i01 / ((i01 - 1) * big_n) * d01 @ d01.T
    s11 = i_all / (i_all - 1) * d10 @ d01.T
    return aucs, s10 / big_m + s01 / big_n + (s11 + s11.T) / (big_m * big_n)


def delong_ci(y: np.ndarray, score: np.ndarray, groups: np.ndarray | None = None,
              alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC with its DeLong interval, clipped to [0, 1]: (auc, lower, upper).

    With ``groups`` (patient ID per row) the variance is Obuchowski's (1997) for
    clustered data, so correlated scans of one patient are not taken as independent;
    without it every row is a patient (DeLong 1988). Raises ``UndefinedMetricError``
    with fewer than two patients in either class.
    """
    y, score = _check(y, score)
    _, cluster = np.unique(_groups(groups, len(y)), return_inverse=True)
    aucs, cov = _delong_cov(y, score[None], cluster)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = stats.norm.ppf(1 - alpha / 2)
    return float(aucs[0]), max(0.0, aucs[0] - z * se), min(1.0, aucs[0] + z * se)


#: Up to this many patients the permutation test enumerates every swap (2^I of them).
EXACT_PERMUTATION_PATIENTS = 15


def _permutation_p(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, cluster: np.ndarray,
                   n_perm: int, seed: int) -> tuple[float, str]:
    """Two-sided p of the AUC difference by swapping the two models within patients.

    Under the null hypothesis the two models are exchangeable within a patient. Their
    scores are rank-transformed first (ranks over all rows, so both are on one scale;
    AUCs are unchanged). With at most ``EXACT_PERMUTATION_PATIENTS`` patients every one
    of the 2^I swap patterns is used (exact p); otherwise ``n_perm`` random ones, with
    p = (1 + hits) / (1 + n_perm).
    """
    ra, rb = stats.rankdata(score_a), stats.rankdata(score_b)
    observed = abs(_rank_auc(y, ra[None])[0] - _rank_auc(y, rb[None])[0])
    i_all = int(cluster.max()) + 1
    exact = i_all <= EXACT_PERMUTATION_PATIENTS
    if exact:
        swaps = ((np.arange(2**i_all)[:, None] >> np.arange(i_all)) & 1).astype(bool)
    else:
        swaps = np.random.default_rng(seed).random((n_perm, i_all)) < 0.5
    hits = 0
    for start in range(0, len(swaps), 4096):
        swap_rows = swaps[start : start + 4096][:, cluster]
        diff = _rank_auc(y, np.where(swap_rows, rb, ra)) - _rank_auc(y, np.where(swap_rows, ra, rb))
        hits += int((np.abs(diff) >= observed - 1e-12).sum())
    if exact:
        return hits / len(swaps), f"exact permutation test over all {len(swaps)} within-patient swaps"
    return (1 + hits) / (1 + n_perm), f"permutation test, {n_perm} random within-patient swaps"


def delong_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, groups: np.ndarray | None = None,
                n_perm: int = 20000, seed: int = 0) -> dict[str, float | str]:
    """Paired test of two models' AUCs on the same rows.

    DeLong's test, with Obuchowski's clustered covariance when ``groups`` (patient ID per
    row) is given. When the standard error of the difference is 0 (for example AUC 1.0
    against 0.0: every placement value is constant), the normal approximation cannot
    assess the difference, and the p-value comes from a permutation test that swaps the
    two models' (rank-transformed) scores within patients: exact over all swaps with at
    most ``EXACT_PERMUTATION_PATIENTS`` patients, else ``n_perm`` random swaps (seeded).

    Returns:
        auc_a, auc_b, difference (a - b), se, z (NaN when se is 0), two-sided p, and
        ``method`` naming how p was obtained.
    """
    y, score_a = _check(y, score_a, "score_a")
    _, score_b = _check(y, score_b, "score_b")
    _, cluster = np.unique(_groups(groups, len(y)), return_inverse=True)
    aucs, cov = _delong_cov(y, np.vstack([score_a, score_b]), cluster)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = float(aucs[0] - aucs[1])
    se = float(np.sqrt(max(var, 0.0)))
    clustered = "clustered by patient (Obuchowski 1997)" if groups is not None else "rows as patients"
    if se > 1e-12:
        z = diff / se
        p, method = float(2 * stats.norm.sf(abs(z))), f"DeLong, {clustered}"
    else:
        z = float("nan")
        p, how = _permutation_p(y, score_a, score_b, cluster, n_perm, seed)
        method = f"{how} (DeLong's standard error is 0)"
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "difference": diff, "se": se,
            "z": z, "p": p, "method": method}


def wilson_ci(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``; ``n`` may be an effective
    sample size (for example patients rather than scans), so neither needs be an integer."""
    z2 = stats.norm.ppf(1 - alpha / 2) ** 2
    p = successes / n
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = np.sqrt(z2) / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n**2))
    # at p = 0 (p = 1) the lower (upper) bound is exactly 0 (1); do not leave it to rounding
    lower = 0.0 if p <= 0 else max(0.0, centre - half)
    upper = 1.0 if p >= 1 else min(1.0, centre + half)
    return float(lower), float(upper)


def calibration(y: np.ndarray, score: np.ndarray, n_bins: int = 5) -> dict[str, object]:
    """Brier score, its prevalence-only reference and skill, and the reliability curve.

    Returns:
        brier (mean squared error of ``score``), brier_reference (the Brier score of
        predicting the prevalence of ``y`` for every row, prevalence x (1 - prevalence)),
        brier_skill (1 - brier / brier_reference: 1 perfect, 0 no better than the
        prevalence, negative worse; NaN with one class), predicted and observed (mean
        predicted probability and observed rate per quantile bin, (n_bins,) at most).
    """
    y, score = _check(y, score)
    observed, predicted = calibration_curve(y, score, n_bins=n_bins, strategy="quantile")
    brier = float(brier_score_loss(y, score))
    reference = float(y.mean() * (1 - y.mean()))
    return {"brier": brier, "brier_reference": reference,
            "brier_skill": 1 - brier / reference if reference > 0 else float("nan"),
            "predicted": predicted, "observed": observed}


METRIC_ORDER = ["sensitivity", "specificity", "ppv", "npv", "f1", "accuracy", "auc",
                "average_precision", "weighted_recall", "weighted_precision", "weighted_f1", "macro_f1"]

#: A proportion whose denominator has fewer patients than this gets a Wilson interval.
WILSON_BELOW_PATIENTS = 10


def _wilson_reason(estimate: float, n_patients: int, n_rows: int) -> str | None:
    """Why a proportion gets a Wilson interval instead of the bootstrap (None: it does not)."""
    if estimate in (0.0, 1.0):
        reason = f"estimate is {estimate:g}: every bootstrap replicate would be too"
    elif n_patients < WILSON_BELOW_PATIENTS:
        reason = f"{n_patients} patients in the denominator, fewer than {WILSON_BELOW_PATIENTS}"
    else:
        return None
    if n_rows > n_patients:
        reason += f"; n = {n_patients} patients, not {n_rows} scans"
    return f"Wilson ({reason})"


def metrics_table(
    y: np.ndarray, score: np.ndarray, groups: np.ndarray, threshold: float = 0.5,
    n_boot: int = 2000, seed: int = 0,
) -> pd.DataFrame:
    """Every metric of ``binary_metrics`` with a 95% interval, and AUC's DeLong interval.

    Intervals: a stratified patient bootstrap (``bootstrap_ci``), except for a proportion
    (sensitivity, specificity, PPV, NPV, accuracy and weighted recall, which equals
    accuracy) whose estimate is 0 or 1 or whose
    denominator holds fewer than ten patients, or whose bootstrap has no spread: that gets
    a Wilson score interval with n the patients in its denominator (conservative when patients have several scans,
    since their scans are correlated); another metric whose bootstrap has no spread (F1
    of a model that calls everyone positive) gets no interval (NaN bounds) instead of a
    zero-width one. Row ``auc_delong`` is DeLong's interval with
    Obuchowski's variance clustered by patient. ``method`` says which was used and why.

    A metric that cannot be computed (PPV of a model that calls no patient positive;
    AUC with one class; DeLong with fewer than two patients per class) gets NaN bounds
    and ``method`` "undefined: <reason>" instead of stopping the table.

    Returns:
        DataFrame indexed by ``metric`` with columns estimate, lower, upper, method.
    """
    y, score = _check(y, score)
    groups = _groups(groups, len(y))
    point = binary_metrics(y, score, threshold)
    called = score >= threshold
    denominators = {"sensitivity": y == 1, "specificity": y == 0, "ppv": called, "npv": ~called,
                    "accuracy": np.ones(len(y), bool),
                    "weighted_recall": np.ones(len(y), bool)}  # = accuracy: a share of all patients
    # every metric from the same replicates (those bootstrap_ci would draw with this seed)
    replicates = pd.DataFrame([binary_metrics(y[idx], score[idx], threshold)
                               for idx in patient_bootstrap(y, groups, n_boot, seed)])
    rows = []
    for name in METRIC_ORDER:
        rows_in = denominators.get(name)
        if rows_in is not None and rows_in.any():
            n_patients = np.unique(groups[rows_in]).size
            method = _wilson_reason(point[name], n_patients, int(rows_in.sum()))
            if method:
                lo, hi = wilson_ci(point[name] * n_patients, n_patients)
                rows.append({"metric": name, "estimate": point[name], "lower": lo, "upper": hi, "method": method})
                continue

        values = replicates[name].to_numpy()
        values = values[np.isfinite(values)]
        try:
            if not values.size:
                raise UndefinedMetricError("the statistic is undefined in every bootstrap replicate")
            est, (lo, hi) = point[name], (float(v) for v in np.quantile(values, [0.025, 0.975]))
            method = "patient bootstrap"
            if rows_in is not None and lo == hi:
                # e.g. the accuracy of a model that calls everyone negative: the stratified
                # bootstrap keeps the class counts, so every replicate gives the same share
                n_patients = np.unique(groups[rows_in]).size
                lo, hi = wilson_ci(est * n_patients, n_patients)
                method = "Wilson (the stratified bootstrap has no spread for this proportion)"
            elif lo == hi and (called.all() or not called.any()):
                # F1 of a model that calls everyone one class: no interval, not a zero-width one
                lo, hi = np.nan, np.nan
                method = ("no interval: the stratified bootstrap has no spread (the model calls "
                          "every patient one class at this threshold)")
        except UndefinedMetricError as err:  # e.g. PPV when no patient is called positive
            est, lo, hi, method = point[name], np.nan, np.nan, f"undefined: {err}"
        rows.append({"metric": name, "estimate": est, "lower": lo, "upper": hi, "method": method})
    try:
        a, lo, hi = delong_ci(y, score, groups)
        method = "DeLong, clustered by patient (Obuchowski 1997)"
    except UndefinedMetricError as err:
        a, lo, hi, method = point["auc"], np.nan, np.nan, f"undefined: {err}"
    rows.append({"metric": "auc_delong", "estimate": a, "lower": lo, "upper": hi, "method": method})
    return pd.DataFrame(rows).set_index("metric")


def as_class_labels(y: np.ndarray, n_classes: int, name: str = "y") -> np.ndarray:
    """Labels (N,) as integers in 0 .. ``n_classes`` - 1; anything else (2.5, NaN, -1, "1",
    or ``n_classes`` itself) raises ``ValueError`` naming the rows."""
    arr = np.asarray(y).ravel()
    if arr.dtype.kind not in "iuf" and arr.dtype != bool:
        raise ValueError(f"{name} must hold class indices 0..{n_classes - 1}; it holds {arr.dtype} values "
                         f"such as {arr[:3].tolist()}")
    bad = ~np.isin(arr, np.arange(n_classes))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} must hold class indices 0..{n_classes - 1}; {rows.size} row(s) hold other "
                         f"values, e.g. {arr[rows[:5]].tolist()} at rows {rows[:5].tolist()}")
    return arr.astype(int)


def _check_multiclass(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = np.asarray(proba, float)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"proba must be (N, K) with K >= 2 classes, got shape {proba.shape}")
    _finite_scores(proba.ravel(), "proba")
    y = as_class_labels(y, proba.shape[1])
    if len(y) != len(proba):
        raise ValueError(f"y has {len(y)} rows, proba has {len(proba)}")
    return y, proba


#: What each key of ``multiclass_metrics`` is (``<class>`` stands for each class's name).
MULTICLASS_DEFINITIONS: dict[str, str] = {
    "accuracy": "share of patients whose most probable class is their class",
    "macro_auc": "unweighted mean over classes of the one-vs-rest AUC of that class's probability",
    "weighted_auc": "mean of the one-vs-rest AUCs weighted by each class's share of the rows",
    "macro_precision": "unweighted mean of the classes' precisions", "macro_recall": "unweighted mean of the "
    "classes' recalls (balanced accuracy)", "macro_f1": "unweighted mean of the classes' F1",
    "weighted_precision": "mean of the classes' precisions weighted by their shares",
    "weighted_recall": "mean of the classes' recalls weighted by their shares (equals accuracy)",
    "weighted_f1": "mean of the classes' F1 weighted by their shares",
    "auc <class>": "one-vs-rest AUC of the class's probability", "precision <class>": "TP / (TP + FP) of the "
    "class, predicting the most probable class", "recall <class>": "TP / (TP + FN) of the class (its "
    "sensitivity)", "f1 <class>": "F1 of the class",
}


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """K-class metrics of class probabilities ``proba`` (N, K) against labels ``y`` (N,) in 0..K-1.

    The predicted class is the most probable one. Per class (one-vs-rest): ``auc``,
    ``precision``, ``recall``, ``f1`` (keys ``"<metric> <class name>"``); then accuracy and
    the macro (unweighted) and weighted (by each class's share of the rows) means of
    precision, recall, F1 and the one-vs-rest AUC, as scikit-learn's ``average="macro"``
    and ``"weighted"`` define them. A per-class value whose denominator is 0, or the AUC of
    a class absent from ``y``, is NaN and left out of the means (scikit-learn's
    ``zero_division=np.nan``).
    """
    y, proba = _check_multiclass(y, proba)
    k = proba.shape[1]
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    pred = proba.argmax(1)
    cm = np.zeros((k, k))
    np.add.at(cm, (y, pred), 1)
    tp, support, called = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(called > 0, tp / called, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1 = np.where(support + called > 0, 2 * tp / (support + called), np.nan)
    aucs = np.array([float(_rank_auc((y == c).astype(int), proba[None, :, c])[0]) if 0 < support[c] < len(y)
                     else np.nan for c in range(k)])
    weights = support / len(y)

    def weighted(v: np.ndarray) -> float:
        ok = ~np.isnan(v)
        return float((v[ok] * weights[ok]).sum() / weights[ok].sum()) if ok.any() else float("nan")

    def mean(v: np.ndarray) -> float:
        return float(np.nanmean(v)) if (~np.isnan(v)).any() else float("nan")

    out = {"accuracy": float(tp.sum() / len(y)), "macro_auc": mean(aucs), "weighted_auc": weighted(aucs),
           "macro_precision": mean(precision), "macro_recall": mean(recall), "macro_f1": mean(f1),
           "weighted_precision": weighted(precision), "weighted_recall": weighted(recall),
           "weighted_f1": weighted(f1)}
    for c, name in enumerate(names):
        out |= {f"auc {name}": float(aucs[c]), f"precision {name}": float(precision[c]),
                f"recall {name}": float(recall[c]), f"f1 {name}": float(f1[c])}
    return out


def multiclass_table(y: np.ndarray, proba: np.ndarray, groups: np.ndarray, class_names: Sequence[str],
                     n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every metric of ``multiclass_metrics`` with a 95% stratified patient-bootstrap interval.

    Replicates resample patients within their class (``patient_bootstrap``); a metric
    undefined in a replicate is left out of that metric's percentiles, and one with no
    spread gets NaN bounds and says so in ``method``.

    Returns:
        DataFrame indexed by ``metric`` with columns estimate, lower, upper, method.
    """
    y, proba = _check_multiclass(y, proba)
    groups = _groups(groups, len(y))
    point = multiclass_metrics(y, proba, class_names)
    draws = [multiclass_metrics(y[idx], proba[idx], class_names)
             for idx in patient_bootstrap(y, groups, n_boot, seed)]
    rows = []
    for name, est in point.items():
        values = np.array([d[name] for d in draws])
        values = values[np.isfinite(values)]
        if np.isnan(est) or values.size == 0:
            lo, hi, method = np.nan, np.nan, "undefined: no row of the class, or no row called it"
        else:
            lo, hi = np.quantile(values, [0.025, 0.975])
            method = "patient bootstrap" if hi > lo else "no interval: the bootstrap has no spread"
            if hi == lo:
                lo, hi = np.nan, np.nan
        rows.append({"metric": name, "estimate": est, "lower": lo, "upper": hi, "method": method})
    return pd.DataFrame(rows).set_index("metric")


def paired_bootstrap(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, groups: np.ndarray,
                     statistic: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 2000,
                     seed: int = 0) -> dict[str, float]:
    """Paired comparison of two models' scores on the same rows by a stratified patient bootstrap.

    Each replicate draws patients (``patient_bootstrap``) and computes ``statistic`` of
    both models on the same rows; the interval is the percentile interval of the
    difference a - b, and ``p`` the two-sided bootstrap p-value (twice the smaller share
    of replicates on either side of 0). Scores may be (N,) or (N, K) (any statistic of
    labels and scores, e.g. the macro AUC of class probabilities).

    Returns:
        {"a", "b", "difference", "lower", "upper", "p"}.
    """
    y = np.asarray(y)
    score_a, score_b = np.asarray(score_a, float), np.asarray(score_b, float)
    diffs = []
    for idx in patient_bootstrap(y, _groups(groups, len(y)), n_boot, seed):
        try:
            d = statistic(y[idx], score_a[idx]) - statistic(y[idx], score_b[idx])
        except UndefinedMetricError:
            continue
        if np.isfinite(d):
            diffs.append(d)
    if not diffs:
        raise UndefinedMetricError("the statistic is undefined in every bootstrap replicate")
    diffs = np.asarray(diffs)
    a, b = statistic(y, score_a), statistic(y, score_b)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    p = min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    return {"a": float(a), "b": float(b), "difference": float(a - b), "lower": float(lo), "upper": float(hi),
            "p": float(p)}
