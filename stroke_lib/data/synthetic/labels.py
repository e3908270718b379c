"""The causal label model of the embedded cohort.

Every label is drawn from image-derived quantities (lesion volume and location, the
hyperdense artery sign, leukoaraiosis) plus clinical factors the images never show
(collaterals and pre-stroke state for the NIHSS; thrombolysis, glucose and a cardioembolic
source for haemorrhagic transformation), with noise, so that no model can be perfect.
The coefficients are module constants, each with the literature it leans on, so the data
chapter can print them as a table (``model_table()``). The oracle ceiling of each label
(the AUC of its true latent risk, unseen factors included) is computed from the same
terms; ``nihss_image_latent`` is the part an image can carry.

Strength of the NIHSS model: in patients, acute DWI lesion volume correlates with the
NIHSS at about rho = 0.4-0.6 (Saver et al., Stroke 1999;30:293-8; Menezes et al., Stroke
2007;38:194-7), and location carries much of the rest: left-hemisphere (language) lesions
score more points per ml than right ones (Fink et al., Stroke 2002;33:954-8), corticospinal
tract involvement drives the motor items (Zhu et al., Stroke 2010;41:910-5), brainstem
lesions score high for their size, cerebellar ones low (Martin-Schild et al., Ann Emerg Med
2011;57:42-5). The constants below were set so that, on the embedded cohort, lesion volume
alone has Spearman rho in 0.35-0.70 with the NIHSS and predicts non-minor stroke at least
0.06 AUC below the oracle (tested in tests/test_cohort_realism.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: NIHSS at or below this is "minor" (Fischer et al., Stroke 2010; paper 000 gives none).
NIHSS_MINOR_CUTOFF = 3

#: Image-visible NIHSS terms: name -> (coefficient, meaning, source).
NIHSS_TERMS: dict[str, tuple[float, str, str]] = {
    "intercept": (1.0, "baseline deficit of a stroke patient", "NIHSS of minor strokes"),
    "log1p_lesion_ml": (1.0, "log(1 + acute lesion ml), infarct or haematoma",
                        "Saver et al. 1999: rho ~0.5 volume-NIHSS"),
    "log1p_motor_ml": (3.0, "log(1 + lesion ml in motor cortex or internal capsule)",
                       "Zhu et al. 2010: corticospinal lesion load"),
    "log1p_language_ml": (3.0, "log(1 + lesion ml in left perisylvian language cortex)",
                          "Fink et al. 2002: left lesions score more per ml"),
    "log1p_neglect_ml": (2.0, "log(1 + lesion ml in right temporo-parietal cortex)",
                         "Fink et al. 2002; neglect/extinction items"),
    "log1p_brainstem_ml": (6.0, "log(1 + lesion ml in the brainstem)",
                           "Menezes et al. 2007: location weight"),
    "log1p_cerebellum_ml": (0.8, "log(1 + lesion ml in the cerebellum)",
                            "Martin-Schild et al. 2011: NIHSS misses ataxia"),
}
#: Unseen clinical part of the NIHSS latent (collaterals, pre-stroke state, time of exam):
#: NIHSS_CLINICAL_SD * Normal(0, 1), in the latent (and so in the oracle), not in any image.
NIHSS_CLINICAL_SD = 3.5
#: Rater noise: NIHSS = round(latent + Normal(0, NIHSS_RATER_SD)), clipped 0..42
#: (inter-rater reliability, Goldstein & Samsa, Stroke 1997;28:307-10).
NIHSS_RATER_SD = 1.5

#: Default share of ischaemic subjects with haemorrhagic transformation on follow-up.
#: Population rate, not CTNet's 1:1 matched sample: HT is seen in 2.2-44% of ischaemic
#: strokes depending on definition and imaging (Aviv et al., Radiology 2009;250:867-77,
#: cited by paper 001), about 10-40% in most series (Paciaroni et al., Stroke
#: 2008;39:2249-56: 9% early HT on CT; ECASS/NINDS any HT 15-40%). Set
#: ``CohortSpec(ht_base_rate=0.5)`` to mimic CTNet's matched sample.
HT_BASE_RATE = 0.25

#: HT log-odds terms: name -> (coefficient, meaning, source). The intercept is not a
#: constant: ``ht_intercept(base_rate)`` solves for it so that the expected HT share of
#: ischaemic subjects equals ``base_rate`` (see ``population.ht_intercept``).
HT_TERMS: dict[str, tuple[float, str, str]] = {
    "log1p_lesion_ml": (0.75, "log(1 + infarct volume in ml)", "Paciaroni et al. 2008: lesion size"),
    "hyperdense_artery": (0.9, "hyperdense artery sign present (0/1)", "Strbian et al. 2012 (HAT score)"),
    "fazekas": (0.35, "leukoaraiosis grade 0-3", "Whiteley et al. 2012"),
    "age_decades_from_70": (0.3, "(age - 70) / 10", "Whiteley et al. 2014 (scores)"),
    "thrombolysis": (1.0, "thrombolysis given (0/1): not in any image", "NINDS 1995: OR ~3"),
    "glucose_z": (0.4, "admission glucose, standardised: not in any image", "Paciaroni et al. 2008"),
    "cardioembolic": (0.7, "cardioembolic source (0/1): not in any image", "Paciaroni et al. 2008"),
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
    neglect_ml: float
    brainstem_ml: float
    cerebellum_ml: float
    hyperdense_artery: bool
    fazekas: int
    age: float


def nihss_image_latent(s: LesionStats, stroke: bool) -> float:
    """Image-visible part of the NIHSS latent; 0.5 for a stroke mimic."""
    if not stroke:
        return 0.5
    terms = {
        "intercept": 1.0,
        "log1p_lesion_ml": np.log1p(s.lesion_ml),
        "log1p_motor_ml": np.log1p(s.motor_ml),
        "log1p_language_ml": np.log1p(s.language_ml),
        "log1p_neglect_ml": np.log1p(s.neglect_ml),
        "log1p_brainstem_ml": np.log1p(s.brainstem_ml),
        "log1p_cerebellum_ml": np.log1p(s.cerebellum_ml),
    }
    return float(sum(NIHSS_TERMS[k][0] * v for k, v in terms.items()))


def nihss_latent(s: LesionStats, stroke: bool, clinical_z: float) -> float:
    """True NIHSS latent (before rater noise): image part plus the unseen clinical part."""
    base = nihss_image_latent(s, stroke)
    return base + NIHSS_CLINICAL_SD * clinical_z if stroke else base


def draw_nihss(rng: np.random.Generator, latent: float) -> int:
    """NIHSS score 0..42 from its latent value plus Normal(0, NIHSS_RATER_SD) noise."""
    return int(np.clip(np.round(latent + rng.normal(0, NIHSS_RATER_SD)), 0, 42))


def ht_terms(lesion_ml: float, hyperdense: bool, fazekas: int, age: float, thrombolysis: bool,
             glucose_z: float, cardioembolic: bool) -> dict[str, float]:
    """Values of the HT terms of ``HT_TERMS`` for one ischaemic subject."""
    return {
        "log1p_lesion_ml": float(np.log1p(lesion_ml)),
        "hyperdense_artery": float(hyperdense),
        "fazekas": float(fazekas),
        "age_decades_from_70": (age - 70.0) / 10.0,
        "thrombolysis": float(thrombolysis),
        "glucose_z": float(glucose_z),
        "cardioembolic": float(cardioembolic),
    }


def ht_slope(terms: dict[str, float]) -> float:
    """Sum of coefficient x term of the HT log-odds, without the intercept."""
    return float(sum(HT_TERMS[k][0] * v for k, v in terms.items()))


def model_table(ht_intercept: float | None = None) -> list[dict[str, object]]:
    """The label model as rows (label, term, coefficient, meaning, source).

    Args:
        ht_intercept: the HT intercept to show; default the one of ``HT_BASE_RATE``.
    """
    if ht_intercept is None:
        from stroke_lib.data.synthetic.population import ht_intercept as solve

        ht_intercept = solve(HT_BASE_RATE)
    rows: list[dict[str, object]] = []
    for term, (coef, meaning, source) in NIHSS_TERMS.items():
        rows.append({"label": "NIHSS (linear)", "term": term, "coefficient": coef,
                     "meaning": meaning, "source": source})
    rows += [
        {"label": "NIHSS (linear)", "term": "unseen clinical", "coefficient": NIHSS_CLINICAL_SD,
         "meaning": "SD of the unseen clinical part (collaterals, pre-stroke state)",
         "source": "Menezes et al. 2007: volume and location leave much unexplained"},
        {"label": "NIHSS (linear)", "term": "rater noise", "coefficient": NIHSS_RATER_SD,
         "meaning": "SD of Normal rater noise added to the latent NIHSS",
         "source": "Goldstein & Samsa 1997"},
        {"label": "minor stroke", "term": "cut-off", "coefficient": NIHSS_MINOR_CUTOFF,
         "meaning": "NIHSS <= cut-off is minor", "source": "Fischer et al. 2010"},
        {"label": "HT (log-odds)", "term": "base rate", "coefficient": HT_BASE_RATE,
         "meaning": "expected HT share of ischaemic subjects (CohortSpec.ht_base_rate)",
         "source": "Aviv et al. 2009; Paciaroni et al. 2008"},
        {"label": "HT (log-odds)", "term": "intercept", "coefficient": round(ht_intercept, 3),
         "meaning": "solved so that the base rate holds", "source": "-"},
    ]
    for term, (coef, meaning, source) in HT_TERMS.items():
        rows.append({"label": "HT (log-odds)", "term": term, "coefficient": coef,
                     "meaning": meaning, "source": source})
    lo, hi = REGION_THRESHOLD_RANGE
    rows.append({"label": "region early sign", "term": "rater threshold", "coefficient": f"{lo}-{hi}",
                 "meaning": "region is 'early' when the acute infarct covers more than this share",
                 "source": "ASPECTS reading, Barber et al. 2000"})
    return rows


#: The HT terms a reader of the CT has: the image and the age in its header. The others
#: (thrombolysis, glucose, a cardioembolic source) are in no image.
HT_IMAGE_TERMS = ("log1p_lesion_ml", "hyperdense_artery", "fazekas", "age_decades_from_70")


def ht_image_latent(lesion_ml: float, hyperdense: bool, fazekas: int, age: float) -> float:
    """The part of the HT log-odds that the CT (and its header's age) carries: the image-only
    ceiling's score (the intercept left out: an AUC does not need it)."""
    terms = ht_terms(lesion_ml, hyperdense, fazekas, age, False, 0.0, False)
    return float(sum(HT_TERMS[k][0] * terms[k] for k in HT_IMAGE_TERMS))
