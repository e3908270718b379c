"""Who the embedded cohort's subjects are: sites, demographics and clinical draws.

``draw_clinical`` draws everything about a subject that needs no image (age, stroke type,
territory, target lesion volume, treatment, unseen clinical factors, time since onset) from
the subject's own generator, so the same (seed, index) gives the same patient at every
resolution. ``ht_intercept`` solves the HT intercept for a base rate on a fixed reference
sample of these draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from stroke_lib.data.synthetic.labels import ht_slope, ht_terms


@dataclass(frozen=True)
class SiteProfile:
    """Acquisition and population differences between sites.

    Hounsfield values are pure-tissue HU before partial volume (cortex ``ct_gm_hu``,
    white matter ``ct_wm_hu``, caudate/lentiform/thalamus ``ct_deep_hu``; see ``subject``
    for the literature they aim at); ``ct_noise_sd`` is the pixel noise (HU) of a 5 mm
    slice; DWI intensities are arbitrary units with grey matter at ``dwi_scale``.
    """

    name: str
    fov_mm: tuple[float, float]
    n_slices: tuple[int, int]
    ct_gm_hu: float
    ct_wm_hu: float
    ct_deep_hu: float
    ct_noise_sd: float
    dwi_scale: float
    dwi_noise_sd: float
    bias_field: float
    p_stroke_type: dict[str, float]
    age_mean: float
    lesion_log_ml_mean: float
    p_thrombolysis: float


SITES: dict[str, SiteProfile] = {
    "A": SiteProfile(
        name="A", fov_mm=(215.0, 235.0), n_slices=(28, 34),
        ct_gm_hu=43.0, ct_wm_hu=27.0, ct_deep_hu=38.5, ct_noise_sd=3.0,
        dwi_scale=600.0, dwi_noise_sd=0.03, bias_field=0.05,
        p_stroke_type={"none": 0.15, "ischaemic": 0.65, "haemorrhagic": 0.20},
        age_mean=68.0, lesion_log_ml_mean=float(np.log(6.0)), p_thrombolysis=0.30,
    ),
    "B": SiteProfile(
        name="B", fov_mm=(230.0, 255.0), n_slices=(31, 40),
        ct_gm_hu=44.5, ct_wm_hu=29.0, ct_deep_hu=40.0, ct_noise_sd=4.5,
        dwi_scale=900.0, dwi_noise_sd=0.05, bias_field=0.15,
        p_stroke_type={"none": 0.10, "ischaemic": 0.60, "haemorrhagic": 0.30},
        age_mean=72.0, lesion_log_ml_mean=float(np.log(10.0)), p_thrombolysis=0.20,
    ),
}

#: Share of ischaemic strokes per territory (MCA most; posterior circulation ~20%,
#: cerebellum ~3%: Tohgi et al., Stroke 1993;24:1697-701; lacunes ~20-25%).
TERRITORY_P = {"MCA": 0.58, "ACA": 0.07, "PCA": 0.12, "lacunar": 0.15, "brainstem": 0.05,
               "cerebellum": 0.03}
#: Haemorrhage location among haemorrhagic subjects: intracerebral (deep 50%, lobar 30%,
#: cerebellar 10%, brainstem 6-10% of ICH: An et al., J Stroke 2017;19:3-10) and
#: subarachnoid (about a quarter of haemorrhagic strokes in population registries; 15% here).
HAEM_LOCATION_P = {"deep": 0.43, "lobar": 0.25, "cerebellar": 0.09, "brainstem": 0.08,
                   "subarachnoid": 0.15}
#: Intraventricular extension of an intracerebral haemorrhage (~40%: Hanley, Stroke
#: 2009;40:1533-8), more often from deep than lobar bleeds.
P_IVH = {"deep": 0.5, "lobar": 0.2, "cerebellar": 0.3, "brainstem": 0.3, "subarachnoid": 0.0}
#: Share of reference draws for the HT intercept, as the default ``CohortSpec.sites``.
REFERENCE_SITES = {"A": 0.7, "B": 0.3}


@dataclass(frozen=True)
class Clinical:
    """A subject's draws that need no image.

    Attributes:
        age: years. sex: "F" / "M". stroke_type: none / ischaemic / haemorrhagic.
        fazekas: leukoaraiosis grade 0-3. territory: e.g. "MCA_L", "cerebellum_R" (infarct),
            "deep_R", "lobar_L", "cerebellar_R", "brainstem_haem", "subarachnoid"
            (haemorrhage), "" for none.
        ivh: intraventricular extension of the haemorrhage.
        lesion_ml: target volume of the acute lesion (infarct or haematoma), ml.
        hyperdense: hyperdense artery sign. thrombolysis, glucose_z, cardioembolic:
            unseen HT factors. clinical_z: unseen NIHSS factor, Normal(0, 1).
        onset_hours: time from onset to the scan (ischaemic: drives the early signs).
        old_territory, old_ml: an old infarct ("" when none).
    """

    age: float
    sex: str
    stroke_type: str
    fazekas: int
    territory: str
    lesion_ml: float
    ivh: bool
    hyperdense: bool
    thrombolysis: bool
    glucose_z: float
    cardioembolic: bool
    clinical_z: float
    onset_hours: float
    old_territory: str
    old_ml: float


def pick_territory(rng: np.random.Generator, exclude: str = "") -> str:
    """A vascular territory name such as ``"MCA_L"`` or ``"brainstem"``."""
    names = [n for n in TERRITORY_P if n != exclude.split("_")[0]]
    p = np.array([TERRITORY_P[n] for n in names])
    kind = str(rng.choice(names, p=p / p.sum()))
    return kind if kind == "brainstem" else f"{kind}_{rng.choice(['L', 'R'])}"


def draw_clinical(rng: np.random.Generator, prof: SiteProfile) -> Clinical:
    """Draw a subject's clinical record from its generator (a fixed number of draws)."""
    age = float(np.clip(rng.normal(prof.age_mean, 12), 30, 95))
    sex = str(rng.choice(["F", "M"]))
    types = list(prof.p_stroke_type)
    stroke_type = str(rng.choice(types, p=list(prof.p_stroke_type.values())))
    fazekas = int(np.clip(np.floor((age - 55) / 12 + rng.normal(0, 0.7)), 0, 3))
    isch_territory = pick_territory(rng)
    small = isch_territory.startswith(("lacunar", "brainstem"))
    isch_ml = float(np.exp(rng.normal(np.log(0.8) if small else prof.lesion_log_ml_mean, 1.1)))
    if small:
        isch_ml = max(isch_ml, 0.25)  # a visible lacune: >= 0.25 ml (~8 mm across)
    haem_kind = str(rng.choice(list(HAEM_LOCATION_P), p=list(HAEM_LOCATION_P.values())))
    hemi = str(rng.choice(["L", "R"]))
    haem_ml = float(np.exp(rng.normal(np.log(10.0), 0.9)))
    if haem_kind in ("brainstem", "cerebellar"):
        haem_ml = min(haem_ml, 12.0)
    ivh = bool(rng.random() < P_IVH[haem_kind])
    u_hyper, u_thromb = rng.random(), rng.random()
    glucose_z, cardioembolic = float(rng.normal()), bool(rng.random() < 0.3)
    clinical_z = float(rng.normal())
    onset_hours = float(rng.uniform(0.5, 6.0))
    has_old = rng.random() < (0.25 if stroke_type == "ischaemic" else 0.1)
    old_territory = pick_territory(rng, exclude=isch_territory if stroke_type == "ischaemic" else "")
    old_ml = float(np.exp(rng.normal(0.8, 0.8)))
    territory, ml = "", 0.0
    if stroke_type == "ischaemic":
        territory, ml = isch_territory, isch_ml
    elif stroke_type == "haemorrhagic":
        ml = haem_ml
        territory = {"brainstem": "brainstem_haem", "subarachnoid": "subarachnoid"}.get(
            haem_kind, f"{haem_kind}_{hemi}")
    ischaemic = stroke_type == "ischaemic"
    return Clinical(
        age=age, sex=sex, stroke_type=stroke_type, fazekas=fazekas, territory=territory,
        lesion_ml=ml,
        ivh=ivh and stroke_type == "haemorrhagic",
        hyperdense=bool(ischaemic and territory.startswith("MCA")
                        and u_hyper < min(0.15 + 0.1 * np.log1p(ml), 0.8)),
        thrombolysis=bool(ischaemic and u_thromb < prof.p_thrombolysis),
        glucose_z=glucose_z, cardioembolic=cardioembolic, clinical_z=clinical_z,
        onset_hours=onset_hours if ischaemic else float("nan"),
        old_territory=old_territory if has_old else "", old_ml=old_ml if has_old else 0.0,
    )


@lru_cache(maxsize=16)
def ht_intercept(base_rate: float, n_reference: int = 20_000) -> float:
    """HT log-odds intercept for which the mean HT probability equals ``base_rate``.

    Solved on ``n_reference`` ischaemic reference subjects drawn with a fixed generator
    from ``REFERENCE_SITES`` (target lesion volumes stand for the drawn ones), so the
    intercept depends on ``base_rate`` only, never on the cohort being generated.
    """
    if not 0.0 < base_rate < 1.0:
        raise ValueError(f"ht_base_rate must lie in (0, 1), got {base_rate}")
    rng = np.random.default_rng(20_240_601)
    names = list(REFERENCE_SITES)
    p = np.array([REFERENCE_SITES[n] for n in names])
    slopes = []
    while len(slopes) < n_reference:
        c = draw_clinical(rng, SITES[str(rng.choice(names, p=p / p.sum()))])
        if c.stroke_type == "ischaemic":
            slopes.append(ht_slope(ht_terms(c.lesion_ml, c.hyperdense, c.fazekas, c.age,
                                            c.thrombolysis, c.glucose_z, c.cardioembolic)))
    s = np.asarray(slopes)
    return float(brentq(lambda b: expit(b + s).mean() - base_rate, -30.0, 30.0))
