"""The causal label model of the embedded cohort.

Every label is drawn from image-derived quantities (lesion volume and location, the
hyperdense artery sign, leukoaraiosis) plus age and, for haemorrhagic transformation, a
treatment that the images never show, with noise, so that no model can be perfect. The
coefficients are module constants so the data chapter can print them as a table, and the
oracle ceiling of each label (the AUC of its true latent risk) is computed from the same
terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: NIHSS at or below this is "minor" (Fischer et al., Stroke 2010; paper 000 gives none).
NIHSS_MINOR_CUTOFF = 3

#: NIHSS latent = sum(coef * term); NIHSS = round(latent + Normal(0, NIHSS_NOISE_SD)), clipped 0..42.
NIHSS_TERMS: dict[str, tuple[float, str]] = {
    "intercept": (0.5, "baseline deficit of a stroke patient"),
    "log1p_lesion_ml": (1.7, "log(1 + acute lesion volume in ml), infarct or haematoma"),
    "log1p_motor_ml": (3.0, "log(1 + lesion ml in motor strip or internal capsule)"),
    "log1p_language_ml": (2.5, "log(1 + lesion ml in left perisylvian language cortex)"),
    "log1p_brainstem_ml": (5.0, "log(1 + lesion ml in the brainstem)"),
}
NIHSS_NOISE_SD = 2.0

#: Haemorrhagic transformation (ischaemic subjects): P(HT) = sigmoid(sum(coef * term)).
HT_TERMS: dict[str, tuple[float, str]] = {
    "intercept": (-2.2, "log-odds at no lesion, age 70"),
    "log1p_lesion_ml": (0.75, "log(1 + infarct volume in ml)"),
    "hyperdense_artery": (0.9, "hyperdense artery sign present (0/1)"),
    "fazekas": (0.35, "leukoaraiosis grade 0-3"),
    "age_decades_from_70": (0.3, "(age - 70) / 10"),
    "thrombolysis": (1.0, "thrombolysis given (0/1): not visible in any image"),
}

#: A region is rated "early ischaemic sign" when the acute lesion covers more than a
#: rater-specific fraction of it, drawn per subject from Uniform(REGION_THRESHOLD_RANGE).
REGION_THRESHOLD_RANGE = (0.05, 0.35)


@dataclass(frozen=True)
class LesionStats:
    """Exact template-space lesion measurements of one subject (volumes in ml)."""

    lesion_ml: float
    motor_ml: float
    language_ml: float
    brainstem_ml: float
    hyperdense_artery: bool
    fazekas: int
    age: float


def nihss_latent(s: LesionStats, stroke: bool) -> float:
    """Deterministic part of the NIHSS (before noise); 0.5 for a stroke mimic."""
    if not stroke:
        return 0.5
    terms = {
        "intercept": 1.0,
        "log1p_lesion_ml": np.log1p(s.lesion_ml),
        "log1p_motor_ml": np.log1p(s.motor_ml),
        "log1p_language_ml": np.log1p(s.language_ml),
        "log1p_brainstem_ml": np.log1p(s.brainstem_ml),
    }
    return float(sum(NIHSS_TERMS[k][0] * v for k, v in terms.items()))


def draw_nihss(rng: np.random.Generator, latent: float) -> int:
    """NIHSS score 0..42 from its latent value plus Normal(0, NIHSS_NOISE_SD) noise."""
    return int(np.clip(np.round(latent + rng.normal(0, NIHSS_NOISE_SD)), 0, 42))


def ht_logit(s: LesionStats, thrombolysis: bool) -> float:
    """Log-odds of haemorrhagic transformation of an ischaemic subject."""
    terms = {
        "intercept": 1.0,
        "log1p_lesion_ml": np.log1p(s.lesion_ml),
        "hyperdense_artery": float(s.hyperdense_artery),
        "fazekas": float(s.fazekas),
        "age_decades_from_70": (s.age - 70.0) / 10.0,
        "thrombolysis": float(thrombolysis),
    }
    return float(sum(HT_TERMS[k][0] * v for k, v in terms.items()))


def model_table() -> list[dict[str, object]]:
    """The label model as rows (label, term, coefficient, meaning) for the data chapter."""
    rows: list[dict[str, object]] = []
    for label, terms in (("NIHSS (linear)", NIHSS_TERMS), ("HT (log-odds)", HT_TERMS)):
        for term, (coef, meaning) in terms.items():
            rows.append({"label": label, "term": term, "coefficient": coef, "meaning": meaning})
    rows.append(
        {
            "label": "NIHSS (linear)",
            "term": "noise",
            "coefficient": NIHSS_NOISE_SD,
            "meaning": "standard deviation of Normal noise added to the latent NIHSS",
        }
    )
    rows.append(
        {
            "label": "minor stroke",
            "term": "cut-off",
            "coefficient": NIHSS_MINOR_CUTOFF,
            "meaning": "NIHSS <= cut-off is minor (Fischer et al., Stroke 2010)",
        }
    )
    lo, hi = REGION_THRESHOLD_RANGE
    rows.append(
        {
            "label": "region early sign",
            "term": "rater threshold",
            "coefficient": f"{lo}-{hi}",
            "meaning": "region is 'early' when the acute infarct covers more than this share",
        }
    )
    return rows
