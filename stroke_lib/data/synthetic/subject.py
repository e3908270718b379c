"""One synthetic subject: the patient (template space), then its CT and its DWI.

A subject is two steps. ``draw_patient`` draws everything that makes the patient (clinical
record, lesions in MNI template space where territories are defined and volumes exact,
labels, head pose and shape, the scalar image parameters) from
``numpy.random.default_rng([seed, index])`` alone (the DWI's placement from a stream of
its own), so the same (seed, index) is the same patient at every ``in_plane``:
resolution changes the sampling, never the patient. ``render`` samples that patient on
the CT's scanner grid and ``render_dwi`` on the DWI's, a second acquisition with its own
head position, field of view and EPI distortion (one random affine each plus a mild
elastic displacement, anti-aliased for coarse pixels, slab-averaged to 5 mm slices), and
add noise from generators keyed by (seed, index, in_plane).

Scanner grid: axis 0 runs to the patient's left, axis 1 to posterior, axis 2 to superior
(DICOM LPS order), so a DICOM slice's pixel array is ``volume[:, :, k].T``.

Tissue contrast on CT (pure tissue, before partial volume and noise): cortex 43-44.5 HU,
white matter 27-29 HU, caudate/lentiform/thalamus 38.5-40 HU, internal capsule as white
matter, CSF 6 HU. Aimed at: white matter about 30 HU and deep grey matter 33 HU in
volunteers (Cala et al., AJNR 1981;2:41-7), and a normal grey-to-white matter ratio of
about 1.2-1.4 at the basal ganglia and cortex (Torbey et al., Stroke 2000;31:2163-7;
Metter et al., Resuscitation 2011;82:1180-5), that is a grey-white difference of about
8-12 HU, the range usually quoted for head CT (the cortex value is set above it because
the 2 mm template's cortex is never pure at 5 mm slices). Measured on the written files (pure-tissue
voxels of ``desc-tissue_dseg``) by ``realism.realism_table``.

Early ischaemic signs (Barber et al., Lancet 2000; von Kummer et al., Radiology 2001): in
the infarct, grey matter loses a share ``gw_loss = 1 - exp(-onset_hours / 2.5)`` of its
excess over white matter (loss of grey-white differentiation: insular ribbon, obscured
lentiform nucleus wherever the infarct covers them), all tissue drops by
``early_ct_delta_hu`` (net water uptake, about 2-6 HU within 6 h, paper 004 section 2.4;
Dzialowski et al., Stroke 2004;35:1390-5), and CSF inside the infarct is displaced by
swollen tissue (sulcal effacement) by a share growing with time since onset.

Every lesion effect is applied on the 5 mm slice grid with its partial-volume weight set to
zero outside the written mask, so every abnormal voxel lies inside the mask of its grid.

Also modelled: mass effect of haematomas and swelling infarcts (``_mass_effect``);
haemorrhage in deep, lobar, cerebellar, brainstem and subarachnoid locations with
intraventricular extension (``population.HAEM_LOCATION_P``); a head with skull base, air
cells, orbits and scalp fat (``atlas.base_hu``); physiological calcifications
(``P_CALCIFICATION``); CT noise with FBP texture and pixel-size dependence
(``_fbp_noise``) and a posterior-fossa beam-hardening band; a DWI with a T2-weighted b0,
the b1000 trace computed from it and the ADC, and EPI distortion near the skull base
(``EPI_SHIFT_MM``); follow-up NCCT scans before HT onset (``followups``). Masks are
written on every grid (CT, DWI, each follow-up).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from stroke_lib.data.synthetic.atlas import Atlas, region_names, voxel_world
from stroke_lib.data.synthetic.labels import (
    HT_BASE_RATE,
    NIHSS_MINOR_CUTOFF,
    REGION_THRESHOLD_RANGE,
    LesionStats,
    draw_nihss,
    ht_slope,
    ht_terms,
    nihss_image_latent,
    nihss_latent,
)
from stroke_lib.data.synthetic.population import SITES, Clinical, draw_clinical, ht_intercept

SLICE_MM = 5.0  # axial slice thickness of CT and DWI, as CTNet's CT (paper 001)
SUB_SLICES = 2  # fine samples averaged into one slice
B_VALUE = 1000.0  # s/mm^2 of the DWI trace
#: CT noise: a site's ``ct_noise_sd`` holds at this pixel size (a 256-pixel slice); noise
#: falls as pixel^-0.5 for coarser pixels. Filtered back-projection alone would give about
#: pixel^-1.5 at fixed dose (Brooks & Di Chiro, Phys Med Biol 1976); the milder law keeps
#: the smoke profile's 64-pixel images noisy enough to be a task (a documented compromise).
NOISE_REF_PIXEL_MM = 0.9
#: Apodisation cut-off (cycles/mm) of the soft head kernel shaping the noise texture.
FBP_CUTOFF = 0.6
VOXEL_ML = 0.008  # one 2 mm template voxel
#: A voxel belongs to a lesion mask when the lesion fills more than this share of it; the
#: lesion's effect on the images is zero below it.
MASK_MIN_SHARE = 0.25
#: Physiological calcifications (hyperdense mimics), probability per subject: pineal 72%,
#: choroid plexus 70% (Daghighi et al., Neurosciences 2007;12:316-9: pineal 71.6%, choroid
#: plexus 70.2%, basal ganglia 0.9%), basal ganglia 1% (raised to 5% above 70 years).
P_CALCIFICATION = {"pineal": 0.72, "choroid": 0.70, "basal_ganglia": 0.01}
#: Volume that displaces brain, per ml of haematoma (the blood plus perihaematomal oedema,
#: which reaches about the haematoma's volume within a day, less destroyed tissue) and per
#: ml of infarct times its swelling share (``effacement``). Aimed at a midline shift of
#: about 0.1-0.2 mm per ml of deep haematoma (a 30 ml ICH shifts the midline by ~3-5 mm;
#: Yang et al., Neurocrit Care 2017 report shift rising with ICH volume).
MASS_SHARE_HAEMATOMA = 1.6
MASS_SHARE_INFARCT = 0.25
#: Subfalcine shift, mm per ml of displacing volume: inside the skull the volume cannot
#: spread in every direction as the radial model alone lets it, and the central brain
#: moves across the midline as a block (``_mass_effect``). Calibrated so that the
#: ventricles' shift measured from the written files (``realism.ventricle_shift_mm``)
#: reaches the reported 0.1-0.2 mm per ml; the radial model alone gave about 0.05-0.07.
MIDLINE_SHIFT_MM_PER_ML = 0.11
#: Reach (mm, Gaussian SD) of the subfalcine shift around the lesion's centre.
MIDLINE_SHIFT_REACH_MM = 35.0
#: Follow-up NCCT before HT onset (as CTNet's data, paper 001: several scans per patient,
#: "prior to HT onset"): hours after the previous scan, Uniform(FOLLOWUP_DELAY_H), at most
#: MAX_FOLLOWUPS per patient. Net water uptake goes on: the infarct's HU drop approaches
#: FOLLOWUP_DELTA_PLATEAU_HU with a time constant of FOLLOWUP_TAU_H hours (about 8-12 HU
#: below normal tissue after a day; Dzialowski et al., Stroke 2004;35:1390-5, 1-2 HU per
#: hour early on, then slower).
FOLLOWUP_DELAY_H = (6.0, 48.0)
MAX_FOLLOWUPS = 2
FOLLOWUP_DELTA_PLATEAU_HU = 14.0
FOLLOWUP_TAU_H = 24.0
#: Stream of ``default_rng([seed, index, FOLLOWUP_STREAM])``, apart from the patient's own
#: draws, so adding follow-ups never changes a baseline scan.
FOLLOWUP_STREAM = 900_001
#: The DWI is an acquisition of its own, minutes to hours after the CT: the head lies
#: differently (each axis turned by Uniform(-DWI_TURN_DEG, DWI_TURN_DEG), shifted by
#: Uniform(-DWI_SHIFT_MM, DWI_SHIFT_MM) mm), the field of view is an EPI one
#: (Uniform(DWI_FOV_MM) mm, ``in_plane`` pixels) and it covers DWI_EXTRA_SLICES more
#: slices than the CT, from 3-7 mm lower, so the whole brain stays inside it. Drawn from
#: ``default_rng([seed, index, DWI_STREAM])``, apart from the patient's other draws.
DWI_FOV_MM = (220.0, 240.0)
DWI_TURN_DEG = 4.0
DWI_SHIFT_MM = 4.0
DWI_EXTRA_SLICES = 2
DWI_STREAM = 900_002
#: Peak EPI displacement (mm) along the phase-encoding axis, Uniform(EPI_SHIFT_MM), where
#: the air of the skull base makes B0 inhomogeneous (``atlas.susceptibility``): the shift
#: is the off-resonance over the bandwidth per pixel in that direction (Jezzard &
#: Balaban, Magn Reson Med 1995;34:65-73), several mm in the inferior frontal and
#: temporal lobes for single-shot EPI with parallel imaging; the signal piles up or thins out by
#: the Jacobian of the shift.
EPI_SHIFT_MM = (3.0, 7.0)
#: Lesion mask values written to ``desc-lesion_mask``.
LESION_LABELS = {1: "acute infarct", 2: "old infarct", 3: "haemorrhage", 4: "perihaematomal oedema"}
#: Tissue labels written to ``desc-tissue_dseg`` (pure-tissue voxels only).
TISSUE_LABELS = {1: "CSF", 2: "cortical grey matter", 3: "white matter", 4: "deep grey nuclei",
                 5: "internal capsule"}


@dataclass
class Subject:
    """A subject's baseline (or follow-up) NCCT: scanner-space volumes and its labels.

    Volumes have shape (N, N, n_slices), axes (left, posterior, superior) as DICOM LPS;
    ``spacing`` is (pixel, pixel, 5.0) mm and ``origin`` the LPS position (mm) of voxel 0.

    Attributes:
        ct_hu: float32 HU.
        lesion: uint8 ``LESION_LABELS`` (0 none).
        regions: uint8 ASPECTS-like region labels 0..20.
        tissue: uint8 ``TISSUE_LABELS`` (0 mixed or outside the brain).
        brain: uint8 1 where brain fills more than half the voxel.
        record: the subject's row of the labels table.
        geometry: template -> scanner poses of the CT (``subject_from_template``) and the
            DWI (``dwi_from_template``), for mirroring across the midline.
    """

    ct_hu: np.ndarray
    lesion: np.ndarray
    regions: np.ndarray
    tissue: np.ndarray
    brain: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    record: dict[str, object]
    geometry: dict[str, list] = field(default_factory=dict)


@dataclass
class DwiScan:
    """A subject's DWI, an acquisition of its own: grid, head position, EPI distortion.

    Volumes have shape (M, M, n_slices) in DICOM LPS axis order, as ``Subject``; the
    phase-encoding axis is axis 1 (anterior-posterior, BIDS ``j``).

    Attributes:
        b0: float32 T2-weighted b = 0 image (a.u.). trace: float32 b1000 trace (a.u.,
            grey matter at the site's ``dwi_scale``). adc: float32 ln(b0 / trace) / b in
            1e-6 mm^2/s, computed from the two noisy images as a scanner does, 0 outside
            the brain.
        lesion, regions, tissue: the masks on this grid (as ``Subject``'s).
        spacing, origin: (pixel, pixel, 5.0) mm and the LPS position (mm) of voxel 0.
        epi_shift_mm: largest phase-encoding displacement inside the brain, mm.
    """

    b0: np.ndarray
    trace: np.ndarray
    adc: np.ndarray
    lesion: np.ndarray
    regions: np.ndarray
    tissue: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    epi_shift_mm: float


@dataclass
class Patient:
    """Everything about a subject that does not depend on the scanner grid.

    Template-space bool maps (atlas shape): ``acute``, ``old``, ``haem``, ``oedema``,
    ``calcification``; ``leuko_texture`` (20, 24, 20) coarse field spanning the template. ``pose`` 4 x 4 template
    RAS -> subject RAS mm at the CT; ``dwi_pose`` the same at the DWI (the head moved
    between the two); ``elastic`` (3, 5, 5, 5) displacement in template voxels;
    ``bias`` (3, 3, 3) DWI bias field seeds. ``dwi_fov``, ``dwi_z_bottom``: the DWI's
    field of view and lowest slice (mm); ``epi_shift_mm``: its peak EPI displacement.
    Scalars are in HU, mm or DWI units.
    """

    clinical: Clinical
    site: str
    acute: np.ndarray
    old: np.ndarray
    haem: np.ndarray
    oedema: np.ndarray
    calcification: np.ndarray
    leuko_texture: np.ndarray
    record: dict[str, object]
    pose: np.ndarray
    elastic: np.ndarray
    bias: np.ndarray
    fov: float
    n_slices: int
    z_bottom: float
    r_vent: float
    early_delta: float
    gw_loss: float
    effacement: float
    haem_hu: float
    artery_hu: np.ndarray
    calc_hu: float
    skull_mm: float
    skull_density: float
    streak_hu: float
    t2_rise: float
    adc_lesion: float
    mass_centre: np.ndarray
    mass_ml: float
    dwi_pose: np.ndarray
    dwi_fov: float
    dwi_z_bottom: float
    epi_shift_mm: float


def _draw_blob(
    rng: np.random.Generator, allowed: np.ndarray, volume_ml: float, roughness: float = 0.6
) -> np.ndarray:
    """A smooth irregular blob of about ``volume_ml`` inside ``allowed`` (template grid)."""
    candidates = np.flatnonzero(allowed)
    if candidates.size == 0:
        return np.zeros_like(allowed)
    seed = np.array(np.unravel_index(rng.choice(candidates), allowed.shape))
    n_vox = int(np.clip(volume_ml / VOXEL_ML, 4, candidates.size))
    radius = (3 * n_vox / (4 * np.pi)) ** (1 / 3)
    half = int(min(radius * 2.2 + 4, 40))
    lo = np.maximum(seed - half, 0)
    hi = np.minimum(seed + half + 1, allowed.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    sub = allowed[box]
    noise = ndimage.gaussian_filter(rng.standard_normal(sub.shape), 2.5)
    noise /= noise.std() + 1e-6
    grid = np.indices(sub.shape).astype(np.float32)
    dist = np.sqrt(sum((g - (s - l)) ** 2 for g, s, l in zip(grid, seed, lo)))
    score = roughness * noise - dist / max(radius, 1.0)
    score[~sub] = -np.inf
    k = min(n_vox, int(sub.sum()))
    cut = np.partition(score.ravel(), -k)[-k]
    blob = np.zeros_like(allowed)
    blob[box] = (score >= cut) & sub
    return blob


def _pose(rng: np.random.Generator) -> np.ndarray:
    """Random rigid-plus-scale transform template (RAS mm) -> subject (RAS mm), 4 x 4."""
    rot = Rotation.from_euler(
        "xyz", [rng.uniform(-10, 10), rng.uniform(-4, 4), rng.uniform(-6, 6)], degrees=True
    ).as_matrix()
    scale = np.diag(rng.uniform(0.93, 1.07, 3))
    m = np.eye(4)
    m[:3, :3] = rot @ scale
    m[:3, 3] = rng.uniform(-6, 6, 3)
    return m


def draw_patient(index: int, seed: int, site: str, atlas: Atlas,
                 ht_base_rate: float = HT_BASE_RATE) -> Patient:
    """Draw subject ``index`` of the cohort with ``seed`` at ``site``, independent of any grid.

    Args:
        index: subject number (0-based); with ``seed`` it fixes every random draw.
        seed: cohort seed.
        site: key of ``SITES``.
        atlas: ``load_atlas()``.
        ht_base_rate: expected share of ischaemic subjects with HT (``labels.HT_BASE_RATE``).
    """
    rng = np.random.default_rng([seed, index])
    prof = SITES[site]
    c = draw_clinical(rng, prof)

    # --- lesions in template space -------------------------------------------------
    tissue = atlas.brain & (atlas.gm + atlas.wm > 0.3)
    acute = np.zeros(atlas.shape, bool)
    haem = np.zeros(atlas.shape, bool)
    if c.stroke_type == "ischaemic":
        acute = _draw_blob(rng, atlas.territories[c.territory], c.lesion_ml)
    elif c.stroke_type == "haemorrhagic":
        haem = _draw_blob(rng, _haemorrhage_space(c.territory, atlas), c.lesion_ml, 0.3)
    parenchymal = haem.copy() if c.territory != "subarachnoid" else np.zeros_like(haem)
    if c.ivh:
        side = -1 if c.territory.endswith("_L") else 1
        x_mm = voxel_world(atlas.affine, atlas.shape)[0]
        ventricle = (atlas.ventricle_dist == 0) & (side * x_mm > -2)
        haem |= _draw_blob(rng, ventricle, float(np.exp(rng.normal(np.log(3.0), 0.7))), 0.3)
    old = np.zeros(atlas.shape, bool)
    if c.old_territory:
        old = _draw_blob(rng, atlas.territories[c.old_territory], c.old_ml) & ~acute & ~haem
    oedema = ndimage.binary_dilation(parenchymal, iterations=2) & ~haem & tissue

    main = acute | haem
    stats = LesionStats(
        lesion_ml=float(main.sum() * VOXEL_ML),
        motor_ml=float((main & atlas.motor).sum() * VOXEL_ML),
        language_ml=float((main & atlas.language).sum() * VOXEL_ML),
        neglect_ml=float((main & atlas.neglect).sum() * VOXEL_ML),
        brainstem_ml=float((main & atlas.brainstem).sum() * VOXEL_ML),
        cerebellum_ml=float((main & atlas.cerebellum).sum() * VOXEL_ML),
        hyperdense_artery=c.hyperdense,
        fazekas=c.fazekas,
        age=c.age,
    )
    stroke = c.stroke_type != "none"
    latent = nihss_latent(stats, stroke, c.clinical_z)
    nihss = draw_nihss(rng, latent)
    u_ht = rng.random()
    ht_risk, ht = float("nan"), float("nan")
    if c.stroke_type == "ischaemic":
        terms = ht_terms(stats.lesion_ml, c.hyperdense, c.fazekas, c.age, c.thrombolysis,
                         c.glucose_z, c.cardioembolic)
        ht_risk = float(1 / (1 + np.exp(-(ht_intercept(ht_base_rate) + ht_slope(terms)))))
        ht = float(u_ht < ht_risk)

    threshold = rng.uniform(*REGION_THRESHOLD_RANGE)
    region_rows: dict[str, object] = {}
    for i, name in enumerate(region_names(), start=1):
        reg = atlas.regions == i
        n = max(int(reg.sum()), 1)
        frac_acute = float((acute & reg).sum() / n)
        frac_old = float((old & reg).sum() / n)
        state = "early" if frac_acute > threshold else "old" if frac_old > threshold else "intact"
        region_rows[f"region_{name}"] = state
        region_rows[f"region_frac_{name}"] = round(frac_acute, 4)

    # --- head, scanner placement and image parameters (all grid-free) -----------------
    fov = float(rng.uniform(*prof.fov_mm))
    n_slices = int(rng.integers(prof.n_slices[0], prof.n_slices[1] + 1))
    z_bottom = float(rng.uniform(-66.0, -58.0))  # lowest slice below the brainstem lesions
    pose = _pose(rng)
    elastic = rng.normal(0, 1.0, (3, 5, 5, 5))  # mild elastic field, ~1 voxel (2 mm)
    r_vent = float(np.clip(0.09 * (c.age - 45), 0, 5) + rng.uniform(0, 1))
    leuko_texture = rng.standard_normal((20, 24, 20))
    onset = c.onset_hours if c.stroke_type == "ischaemic" else 0.0
    early_delta = float(np.clip(1.5 + 0.75 * onset + rng.normal(0, 0.5), 1.5, 7.0))
    gw_loss = float(1 - np.exp(-onset / 2.5))
    effacement = float(np.clip(0.12 * onset, 0, 0.7))
    haem_hu = float(rng.uniform(55, 85))
    artery_hu = np.full(3, 42.0)
    hyper_hu = rng.uniform(62, 75)
    if c.hyperdense:
        artery_hu[0 if c.territory.endswith("L") else 1] = hyper_hu
    u_calc = rng.random(3)
    calc_hu = float(rng.uniform(150, 400))
    calcification = np.zeros(atlas.shape, bool)
    p_bg = P_CALCIFICATION["basal_ganglia"] * (5 if c.age > 70 else 1)
    present = {"pineal": u_calc[0] < P_CALCIFICATION["pineal"],
               "choroid": u_calc[1] < P_CALCIFICATION["choroid"],
               "basal_ganglia": u_calc[2] < p_bg}
    if present["pineal"]:
        calcification |= atlas.pineal
    if present["choroid"]:
        calcification |= atlas.choroid
    if present["basal_ganglia"]:
        calcification |= _draw_blob(rng, atlas.deep_grey, 0.15)
    skull_mm = float(rng.uniform(5.0, 8.5))
    skull_density = float(rng.uniform(0.85, 1.15))
    streak_hu = float(rng.uniform(4.0, 12.0))
    t2_rise = float(rng.uniform(0.02, 0.06) * onset)  # T2 of the infarct rises over hours
    adc_lesion = float(rng.uniform(420, 560))
    bias = rng.standard_normal((3, 3, 3))
    # Mass effect: a haematoma displaces most of its volume; an early infarct swells by a
    # share of its volume that grows with time since onset.
    mass_ml = (MASS_SHARE_HAEMATOMA * float(parenchymal.sum() * VOXEL_ML)
               if c.stroke_type == "haemorrhagic" else MASS_SHARE_INFARCT * effacement * stats.lesion_ml)
    mass = parenchymal if c.stroke_type == "haemorrhagic" else acute
    mass_centre = np.argwhere(mass).mean(0) if mass.any() else np.zeros(3)
    rng_dwi = np.random.default_rng([seed, index, DWI_STREAM])
    turn = Rotation.from_euler("xyz", rng_dwi.uniform(-DWI_TURN_DEG, DWI_TURN_DEG, 3), degrees=True)
    moved = np.eye(4)
    moved[:3, :3] = turn.as_matrix()
    moved[:3, 3] = rng_dwi.uniform(-DWI_SHIFT_MM, DWI_SHIFT_MM, 3)
    dwi_fov = float(rng_dwi.uniform(*DWI_FOV_MM))
    dwi_z_bottom = z_bottom - float(rng_dwi.uniform(3.0, 7.0))
    epi_shift_mm = float(rng_dwi.uniform(*EPI_SHIFT_MM))

    record: dict[str, object] = {
        "site": site,
        "age": round(c.age, 1),
        "sex": c.sex,
        "stroke_type": c.stroke_type,
        "territory": c.territory,
        "lesion_volume_ml": round(stats.lesion_ml, 2),
        "old_infarct_ml": round(float(old.sum() * VOXEL_ML), 2),
        "nihss": nihss,
        "nihss_latent": round(latent, 3),
        "nihss_image_latent": round(nihss_image_latent(stats, stroke), 3),
        "severity": "minor" if nihss <= NIHSS_MINOR_CUTOFF else "non-minor",
        "hyperdense_artery": int(c.hyperdense),
        "fazekas": c.fazekas,
        "thrombolysis": int(c.thrombolysis),
        "glucose_z": round(c.glucose_z, 3),
        "cardioembolic": int(c.cardioembolic),
        "ht": ht,
        "ht_risk": round(ht_risk, 4) if ht_risk == ht_risk else ht_risk,
        "onset_hours": round(c.onset_hours, 2) if c.onset_hours == c.onset_hours else c.onset_hours,
        "early_ct_delta_hu": round(early_delta, 2),
        "gw_loss": round(gw_loss, 3),
        "intraventricular": int(c.ivh),
        "calcifications": ",".join(k for k, v in present.items() if v),
        "mass_effect_ml": round(mass_ml, 2),
        **region_rows,
    }
    return Patient(
        clinical=c, site=site, acute=acute, old=old, haem=haem, oedema=oedema,
        calcification=calcification, leuko_texture=leuko_texture, record=record, pose=pose,
        elastic=elastic, bias=bias, fov=fov, n_slices=n_slices, z_bottom=z_bottom, r_vent=r_vent,
        early_delta=early_delta, gw_loss=gw_loss, effacement=effacement, haem_hu=haem_hu,
        artery_hu=artery_hu, calc_hu=calc_hu, skull_mm=skull_mm, skull_density=skull_density, streak_hu=streak_hu,
        t2_rise=t2_rise, adc_lesion=adc_lesion, mass_centre=mass_centre, mass_ml=mass_ml,
        dwi_pose=moved @ pose, dwi_fov=dwi_fov, dwi_z_bottom=dwi_z_bottom, epi_shift_mm=epi_shift_mm,
    )


def followups(patient: Patient, index: int, seed: int, rate: float) -> list[tuple[Patient, float]]:
    """Follow-up NCCT scans of an ischaemic patient, taken before any haemorrhagic
    transformation: the same anatomy, lesions and labels, a new head pose and scanner
    placement, and an infarct more hypodense with time.

    Each patient has k follow-ups with P(k >= 1) = ``rate`` and P(k >= j + 1 | k >= j) =
    ``rate`` up to ``MAX_FOLLOWUPS`` (mean rate + rate^2 for two at most).

    Returns:
        (the patient as seen at the scan, hours from onset) per follow-up, in time order;
        empty for a patient without an ischaemic stroke.
    """
    if patient.clinical.stroke_type != "ischaemic" or rate <= 0:
        return []
    rng = np.random.default_rng([seed, index, FOLLOWUP_STREAM])
    prof = SITES[patient.site]
    out, hours, delta = [], float(patient.clinical.onset_hours), patient.early_delta
    while len(out) < MAX_FOLLOWUPS and rng.random() < rate:
        gap = float(rng.uniform(*FOLLOWUP_DELAY_H))
        hours += gap
        delta = FOLLOWUP_DELTA_PLATEAU_HU - (FOLLOWUP_DELTA_PLATEAU_HU - delta) * np.exp(-gap / FOLLOWUP_TAU_H)
        effacement = float(np.clip(0.12 * hours, 0, 0.7))
        later = replace(
            patient, pose=_pose(rng), elastic=rng.normal(0, 1.0, (3, 5, 5, 5)),
            fov=float(rng.uniform(*prof.fov_mm)),
            n_slices=int(rng.integers(prof.n_slices[0], prof.n_slices[1] + 1)),
            z_bottom=float(rng.uniform(-66.0, -58.0)), early_delta=float(delta),
            gw_loss=float(1 - np.exp(-hours / 2.5)), effacement=effacement,
            t2_rise=float(rng.uniform(0.02, 0.06) * min(hours, 24.0)),
            mass_ml=MASS_SHARE_INFARCT * effacement * float(patient.record["lesion_volume_ml"]),
        )
        out.append((later, hours))
    return out


def _haemorrhage_space(territory: str, atlas: Atlas) -> np.ndarray:
    """Template voxels where a haemorrhage of ``territory`` may lie (bool, atlas shape)."""
    tissue = atlas.brain & (atlas.gm + atlas.wm > 0.3)
    if territory == "subarachnoid":  # basal cisterns and Sylvian fissures
        xyz = voxel_world(atlas.affine, atlas.shape)
        near = np.sqrt(xyz[0] ** 2 / 2.5 + (xyz[1] - 2) ** 2 + (xyz[2] + 12) ** 2) < 40
        return atlas.brain & (atlas.csf > 0.5) & (atlas.ventricle_dist > 4) & near
    if territory == "brainstem_haem":
        return atlas.brainstem
    kind, hemi = territory.split("_")
    allowed = {"deep": f"lacunar_{hemi}", "lobar": f"MCA_{hemi}", "cerebellar": f"cerebellum_{hemi}"}[kind]
    return ndimage.binary_dilation(atlas.territories[allowed], iterations=4) & tissue


def _antialias_sigma(in_plane: int, atlas: Atlas) -> float:
    """Gaussian sigma (template voxels) that removes detail finer than a nominal pixel."""
    factor = 235.0 / in_plane / float(atlas.affine[0, 0])
    return max(0.0, (factor - 1.0) / 2.0)


_SMOOTHED: dict[tuple[int, int], dict[str, np.ndarray]] = {}


def _smoothed_atlas(in_plane: int, atlas: Atlas) -> dict[str, np.ndarray]:
    """The atlas's continuous maps, anti-aliased for slices of ``in_plane`` pixels (cached)."""
    key = (in_plane, id(atlas))
    if key not in _SMOOTHED:
        _SMOOTHED[key] = _smooth_atlas(in_plane, atlas)
    return _SMOOTHED[key]


def _smooth_atlas(in_plane: int, atlas: Atlas) -> dict[str, np.ndarray]:
    sigma = _antialias_sigma(in_plane, atlas)
    maps = {
        "gm": atlas.gm, "wm": atlas.wm, "csf": atlas.csf,
        "brain": atlas.brain.astype(np.float32),
        "deep": atlas.deep_grey.astype(np.float32),
        "ic": atlas.internal_capsule.astype(np.float32),
        "vessels": atlas.vessels,
    }
    if sigma <= 0:
        return maps
    s3 = (sigma, sigma, 0.0)
    out = {k: ndimage.gaussian_filter(v, s3) for k, v in maps.items() if k != "vessels"}
    out["vessels"] = np.stack([ndimage.gaussian_filter(v, s3) for v in atlas.vessels])
    return out


def _smooth_local(mask: np.ndarray, sigma: float) -> np.ndarray:
    """``mask`` as float32, Gaussian-smoothed by ``sigma`` voxels in-plane within its box."""
    out = mask.astype(np.float32)
    if sigma <= 0 or not mask.any():
        return out
    pad = int(np.ceil(3 * sigma)) + 1
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - pad, 0)
    hi = np.minimum(idx.max(0) + pad + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out[box] = ndimage.gaussian_filter(out[box], (sigma, sigma, 0.0))
    return out


def _mass_effect(coords: np.ndarray, patient: Patient, atlas: Atlas) -> np.ndarray:
    """Pull-back coordinates (template voxels) with the patient's mass effect.

    The lesion adds ``mass_ml`` of volume at ``mass_centre``; the brain around it is
    treated as incompressible, so the point at radius r came from radius
    (r^3 - 3 V / 4 pi)^(1/3): displacement ~ V / (4 pi r^2) far away, which compresses the
    near ventricle and shifts the midline in proportion to the volume. On top, the central
    brain moves away from the lesion's side by ``MIDLINE_SHIFT_MM_PER_ML * mass_ml``,
    fading as a Gaussian (``MIDLINE_SHIFT_REACH_MM``) of the distance from the lesion's
    centre in the sagittal plane (subfalcine shift). The skull holds the brain surface in
    place: both shifts fade over the outer 15 mm of the brain.
    """
    if patient.mass_ml <= 0:
        return coords
    mm = float(atlas.affine[0, 0])
    v = (coords - patient.mass_centre.reshape(3, 1, 1, 1)) * mm
    r = np.sqrt((v**2).sum(0)) + 1e-3
    r_src = np.cbrt(np.maximum(r**3 - 3 * patient.mass_ml * 1000 / (4 * np.pi), 0))
    hold = np.clip(ndimage.map_coordinates(atlas.surface_dist, coords, order=1) / 15.0, 0, 1)
    out = coords - v / r * ((r - r_src) * hold / mm)
    midline = -float(atlas.affine[0, 3]) / mm  # template voxel of x = 0 mm
    away = 1.0 if patient.mass_centre[0] < midline else -1.0  # RAS: left lesion moves right
    reach = np.exp(-(v[1] ** 2 + v[2] ** 2) / (2 * MIDLINE_SHIFT_REACH_MM**2))
    out[0] -= away * MIDLINE_SHIFT_MM_PER_ML * patient.mass_ml * reach * hold / mm
    return out


class _Warp:
    """Samples template-space maps on one of the subject's fine scanner grids.

    ``__call__`` samples anatomy (with the mass effect); ``lesion`` samples the
    space-occupying lesions themselves, which stay where they were drawn. With
    ``epi_mm`` the grid is an EPI one: every voxel shows the tissue displaced along the
    phase-encoding axis (axis 1) by ``epi_mm * atlas.susceptibility`` and ``jacobian``
    (fine grid shape) is how much signal piles up there (1 without distortion);
    ``shift_mm`` (fine grid shape) is the displacement.
    """

    def __init__(self, patient: Patient, atlas: Atlas, grid_lps_affine: np.ndarray, shape,
                 pose: np.ndarray, epi_mm: float = 0.0):
        # RAS = diag(-1, -1, 1) @ LPS
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        vox_from_mni = np.linalg.inv(atlas.affine)
        m = vox_from_mni @ np.linalg.inv(pose) @ flip @ grid_lps_affine
        coords = voxel_world(m, shape)
        # The elastic field lives on template voxels: sampled at the grid's template
        # position, it is the same displacement at every resolution.
        at = coords / (np.array(atlas.shape, np.float32).reshape(3, 1, 1, 1) - 1) * 4
        coords += np.stack([ndimage.map_coordinates(e, at, order=1, mode="nearest")
                            for e in patient.elastic])
        self.jacobian = np.ones(shape, np.float32)
        self.shift_mm = np.zeros(shape, np.float32)
        if epi_mm:
            shift = epi_mm / float(grid_lps_affine[1, 1]) * ndimage.map_coordinates(
                atlas.susceptibility, coords, order=1)  # grid voxels along axis 1
            coords += m[:3, 1].reshape(3, 1, 1, 1).astype(np.float32) * shift
            self.jacobian = np.clip(1 + np.gradient(shift, axis=1), 0.2, None).astype(np.float32)
            self.shift_mm = (shift * float(grid_lps_affine[1, 1])).astype(np.float32)
        self.lesion_coords = coords
        self.coords = _mass_effect(coords, patient, atlas)

    def __call__(self, volume: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
        return ndimage.map_coordinates(
            volume.astype(np.float32), self.coords, order=order, cval=cval, prefilter=False
        )

    def coarse(self, field: np.ndarray, atlas: Atlas) -> np.ndarray:
        """Sample a coarse field whose corners are the template's corners (linear)."""
        scale = (np.array(field.shape, np.float32) - 1) / (np.array(atlas.shape, np.float32) - 1)
        return ndimage.map_coordinates(field, self.coords * scale.reshape(3, 1, 1, 1), order=1,
                                       mode="nearest")

    def lesion(self, volume: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(volume.astype(np.float32), self.lesion_coords, order=1,
                                       prefilter=False)


def _fbp_noise(rng: np.random.Generator, shape: tuple[int, int, int], pixel: float) -> np.ndarray:
    """Unit-SD CT noise with the texture of filtered back-projection, (X, Y, Z).

    Each slice is white noise shaped by the noise power spectrum of FBP with a soft head
    kernel: NPS(f) ~ f * Hann(f / FBP_CUTOFF) (ramp filter times apodisation), f in
    cycles/mm up to the pixel's Nyquist frequency; slices are independent (5 mm apart).
    """
    fx = np.fft.fftfreq(shape[0], d=pixel)
    fy = np.fft.fftfreq(shape[1], d=pixel)
    f = np.sqrt(fx[:, None] ** 2 + fy[None, :] ** 2)
    nps = f * np.where(f < FBP_CUTOFF, 0.5 * (1 + np.cos(np.pi * f / FBP_CUTOFF)), 0.0)
    white = rng.standard_normal(shape)
    noise = np.fft.ifft2(np.fft.fft2(white, axes=(0, 1)) * np.sqrt(nps)[:, :, None], axes=(0, 1)).real
    return noise / (noise.std() + 1e-12)


def _slab(volume: np.ndarray) -> np.ndarray:
    """Average SUB_SLICES fine samples into one 5 mm slice along axis 2."""
    x, y, z = volume.shape
    return volume.reshape(x, y, z // SUB_SLICES, SUB_SLICES).mean(axis=3)


def _lesion_weight(share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, weight): voxels filled above ``MASK_MIN_SHARE`` and the share, zero elsewhere."""
    mask = share > MASK_MIN_SHARE
    return mask, np.where(mask, share, 0.0).astype(np.float32)


def _scanner_grid(fov: float, in_plane: int, n_slices: int, z_bottom: float):
    """(fine LPS affine, fine shape, LPS origin of the first 5 mm slice, pixel mm)."""
    pixel = fov / in_plane
    dz = SLICE_MM / SUB_SLICES
    z0 = z_bottom + dz / 2
    grid = np.diag([pixel, pixel, dz, 1.0])
    grid[:3, 3] = [-fov / 2 + pixel / 2, -fov / 2 + pixel / 2 + 10.0, z0]
    origin = grid[:3, 3].copy()
    origin[2] = z0 + dz * (SUB_SLICES - 1) / 2  # centre of the first 5 mm slab
    return grid, (in_plane, in_plane, n_slices * SUB_SLICES), origin, pixel


@dataclass
class _Sampled:
    """A patient's anatomy and lesions on one grid, as 5 mm slices (X, Y, Z) float32.

    gm, wm, csf, brain, deep, ic: tissue shares (after atrophy; ``csf`` less the sulci
    that swelling effaced, ``effaced``); vent_d, outer_d: distances (mm) to the ventricles
    and outside the cranial cavity; outer_fine: ``outer_d`` before slab averaging;
    regions: region labels; masks, weights: lesion masks and partial-volume weights
    ("acute", "old", "haem", "oed"); sigma: the anti-aliasing sigma (template voxels).
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    effaced: np.ndarray
    brain: np.ndarray
    deep: np.ndarray
    ic: np.ndarray
    vent_d: np.ndarray
    outer_d: np.ndarray
    outer_fine: np.ndarray
    regions: np.ndarray
    masks: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    sigma: float


def _sample(patient: Patient, atlas: Atlas, warp: _Warp, in_plane: int) -> _Sampled:
    """Tissue, distances, regions and lesions of ``patient`` through ``warp``."""
    c = patient.clinical
    smooth = _smoothed_atlas(in_plane, atlas)
    sigma = _antialias_sigma(in_plane, atlas)
    gm, wm = warp(smooth["gm"]), warp(smooth["wm"])
    brain = warp(smooth["brain"])
    vent_d = warp(atlas.ventricle_dist, cval=99.0)
    surf_d = warp(atlas.surface_dist)
    outer_d = warp(atlas.outer_dist, cval=99.0)
    regions_fine = warp(atlas.regions, order=0)

    # Atrophy: ventricles widen and sulci open with age (mm of CSF added).
    r_sulci = np.clip(0.05 * (c.age - 45), 0, 3)
    to_csf = np.clip(patient.r_vent - vent_d + 1, 0, 1) * brain
    to_csf = np.maximum(to_csf, np.clip(r_sulci - surf_d + 1, 0, 1) * brain * (gm > wm))
    gm, wm = gm * (1 - to_csf), wm * (1 - to_csf)
    csf = np.where(brain > 0, np.clip(brain - gm - wm, 0, 1), 0)
    gm, wm, csf, brain = _slab(gm), _slab(wm), _slab(csf), _slab(brain)

    def share(mask: np.ndarray, sample) -> np.ndarray:
        """Slab share of a template mask; zeros without sampling when it is empty."""
        if not mask.any():
            return np.zeros(gm.shape, np.float32)
        return _slab(sample(_smooth_local(mask, sigma)))

    masks, weights = {}, {}
    for name, lesion, sample in (("acute", patient.acute, warp.lesion), ("old", patient.old, warp),
                                 ("haem", patient.haem, warp.lesion), ("oed", patient.oedema, warp.lesion)):
        masks[name], weights[name] = _lesion_weight(share(lesion, sample))
    # A stroke lesion is never lost to partial volume: keep its fullest voxel.
    for name, lesion in (("acute", patient.acute), ("haem", patient.haem)):
        m, w = masks[name], weights[name]
        if lesion.any() and not m.any():
            full = _slab(warp.lesion(lesion.astype(np.float32)))
            k = np.unravel_index(np.argmax(full), full.shape)
            m[k], w[k] = True, max(float(full[k]), MASK_MIN_SHARE)
    masks["oed"] &= ~masks["haem"]
    weights["oed"][~masks["oed"]] = 0
    effaced = csf * patient.effacement * weights["acute"]
    return _Sampled(
        gm=gm, wm=wm, csf=csf - effaced, effaced=effaced, brain=brain,
        deep=_slab(warp(smooth["deep"])), ic=_slab(warp(smooth["ic"])), vent_d=_slab(vent_d),
        outer_d=_slab(outer_d), outer_fine=outer_d,
        regions=regions_fine[:, :, SUB_SLICES // 2 :: SUB_SLICES].astype(np.uint8),
        masks=masks, weights=weights, sigma=sigma,
    )


def _label_maps(x: _Sampled) -> tuple[np.ndarray, np.ndarray]:
    """(lesion labels, tissue labels) uint8 on ``x``'s grid (``LESION_LABELS``, ``TISSUE_LABELS``)."""
    lesion = np.zeros(x.gm.shape, np.uint8)
    lesion[x.masks["oed"]] = 4
    lesion[x.masks["old"]] = 2
    lesion[x.masks["acute"]] = 1
    lesion[x.masks["haem"]] = 3
    tissue, inside = x.gm + x.wm, x.brain > 0.5
    seg = np.zeros(x.gm.shape, np.uint8)
    pure = (x.deep < 0.2) & (x.ic < 0.2)
    seg[(x.csf > 0.85) & inside] = 1
    seg[(x.gm > 0.6) & (x.csf < 0.15) & pure] = 2
    seg[(x.wm > 0.9) & pure] = 3
    seg[(x.deep > 0.8) & (tissue > 0.9)] = 4
    seg[(x.ic > 0.8) & (tissue > 0.9)] = 5
    return lesion, seg


def render(patient: Patient, in_plane: int, atlas: Atlas, seed: int, index: int, scan: int = 0) -> Subject:
    """The NCCT of ``patient`` on a scanner grid of ``in_plane`` pixels per side, with noise.

    ``scan`` numbers the patient's scans (0 the baseline, k the k-th follow-up of
    ``followups``); each gets its own noise."""
    rng = np.random.default_rng([seed, index, in_plane] + ([FOLLOWUP_STREAM, scan] if scan else []))
    prof = SITES[patient.site]
    c = patient.clinical
    grid, shape, origin, pixel = _scanner_grid(patient.fov, in_plane, patient.n_slices, patient.z_bottom)
    warp = _Warp(patient, atlas, grid, shape, patient.pose)
    x = _sample(patient, atlas, warp, in_plane)
    smooth = _smoothed_atlas(in_plane, atlas)
    w = x.weights
    gm, wm, deep, ic = x.gm, x.wm, x.deep, x.ic
    leuko_tex = _slab(warp.coarse(patient.leuko_texture, atlas))

    # Skull (thickness and density per subject), diploe, scalp with fat, air.
    s, d, outer_d = patient.skull_mm, patient.skull_density, x.outer_fine
    layer = np.select(
        [outer_d < 1.5, outer_d < 2.7, outer_d < s - 1.2, outer_d < s, outer_d < s + 1.5,
         outer_d < s + 4.5, outer_d < s + 6.0],
        [6.0, 1600.0 * d, 750.0 * d, 1500.0 * d, 40.0, -90.0, 30.0],
        default=-1000.0,
    )
    edge = np.clip(outer_d, 0, 1)
    head_edge, head_layer = _slab(edge), _slab(layer * edge)
    base_w = _slab(warp(np.isfinite(atlas.base_hu).astype(np.float32)))
    base_hu = _slab(warp(np.nan_to_num(atlas.base_hu)))
    vessels = np.stack([_slab(warp(v)) for v in smooth["vessels"]])
    calc = (_slab(warp(_smooth_local(patient.calcification, x.sigma)))
            if patient.calcification.any() else np.zeros(gm.shape, np.float32))

    tissue = gm + wm
    grey_hu = prof.ct_gm_hu * (1 - deep) + prof.ct_deep_hu * deep
    tissue_hu = gm * grey_hu + wm * (prof.ct_wm_hu * (1 - deep) + prof.ct_deep_hu * deep)
    tissue_hu = tissue_hu * (1 - ic) + tissue * prof.ct_wm_hu * ic
    # Leukoaraiosis: periventricular white matter darker with the Fazekas grade.
    leuko = wm * np.clip(4 + 4 * c.fazekas - x.vent_d, 0, 4) / 4
    leuko *= np.clip(leuko_tex * 0.8 + 1, 0, 2)
    tissue_hu = tissue_hu - (1.5 + 1.5 * c.fazekas) * leuko * (c.fazekas > 0)
    # Early infarct: loss of grey-white differentiation, water uptake, sulcal effacement.
    excess = tissue_hu - tissue * prof.ct_wm_hu
    tissue_hu = tissue_hu - w["acute"] * (patient.gw_loss * np.maximum(excess, 0)
                                          + patient.early_delta * tissue)
    hu = tissue_hu + x.csf * 6.0 + x.effaced * (prof.ct_wm_hu - patient.early_delta)
    hu = hu * (1 - 0.9 * w["old"]) + 8.0 * 0.9 * w["old"]
    hu -= 6.0 * w["oed"]
    hu = hu * (1 - w["haem"]) + patient.haem_hu * w["haem"]
    vessel_p = np.clip(vessels.max(0), 0, 1)
    hu = hu * (1 - vessel_p) + (vessels * patient.artery_hu[:, None, None, None]).sum(0) / np.maximum(
        vessels.sum(0), 1e-6
    ) * vessel_p
    hu = hu * (1 - calc) + patient.calc_hu * calc
    hu = hu * (1 - head_edge) + head_layer
    hu = hu * (1 - base_w) + base_hu
    hu -= patient.streak_hu * _slab(warp(atlas.streak))
    inside_head = np.clip(1 - (x.outer_d - s - 6.0), 0, 1)
    noise = _fbp_noise(rng, hu.shape, pixel) * (0.6 + 0.4 * inside_head + 0.5 * base_w)
    ct_hu = np.clip(hu + prof.ct_noise_sd * (NOISE_REF_PIXEL_MM / pixel) ** 0.5 * noise,
                    -1024, 3071).astype(np.float32)
    lesion, tissue_seg = _label_maps(x)
    return Subject(
        ct_hu=ct_hu, lesion=lesion, regions=x.regions, tissue=tissue_seg,
        brain=(x.brain > 0.5).astype(np.uint8), spacing=(pixel, pixel, SLICE_MM), origin=origin, record=dict(patient.record),
        geometry={"subject_from_template": patient.pose.tolist(),
                  "dwi_from_template": patient.dwi_pose.tolist()},
    )


def render_dwi(patient: Patient, in_plane: int, atlas: Atlas, seed: int, index: int) -> DwiScan:
    """The DWI of ``patient``: its own grid (``in_plane`` pixels over ``dwi_fov``), head
    position (``dwi_pose``) and EPI distortion; b0, b1000 trace and ADC, masks on its grid.

    Noise comes from ``default_rng([seed, index, in_plane, DWI_STREAM])``: Rician, the
    same SD on b0 and trace (one receiver); the ADC is computed from the noisy pair."""
    rng = np.random.default_rng([seed, index, in_plane, DWI_STREAM])
    prof = SITES[patient.site]
    grid, shape, origin, pixel = _scanner_grid(patient.dwi_fov, in_plane,
                                               patient.n_slices + DWI_EXTRA_SLICES, patient.dwi_z_bottom)
    warp = _Warp(patient, atlas, grid, shape, patient.dwi_pose, epi_mm=patient.epi_shift_mm)
    x = _sample(patient, atlas, warp, in_plane)
    w = x.weights
    # T2-weighted b0 and ADC, then the b1000 trace S0 * exp(-b ADC). T2 shine-through
    # follows: long-T2 tissue (old infarct, vasogenic oedema) stays brighter on the trace
    # than its high ADC alone would make it.
    s0 = x.gm * 1.0 + x.wm * 0.8 + x.csf * 2.2 + x.effaced * 1.0
    adc = x.gm * 850.0 + x.wm * 750.0 + x.csf * 3000.0 + x.effaced * 800.0
    s0 = s0 * (1 + patient.t2_rise * w["acute"])
    adc = adc * (1 - w["acute"]) + patient.adc_lesion * w["acute"]
    s0 = s0 * (1 - w["old"]) + 2.0 * w["old"]
    adc = adc * (1 - w["old"]) + 2500.0 * w["old"]
    s0 = s0 * (1 + 0.3 * w["oed"])
    adc = adc * (1 - w["oed"]) + 1100.0 * w["oed"]
    s0 = s0 * (1 - w["haem"]) + 0.6 * w["haem"]
    adc = adc * (1 - w["haem"]) + 650.0 * w["haem"]
    unit = np.exp(-B_VALUE * 850e-6)  # grey matter's trace = 1
    inside = x.brain > 0.5
    head = np.clip(1 - (x.outer_d - 3 - patient.skull_mm) / 5, 0, 1)
    b0 = np.where(inside, s0 / unit, 0.3 * head)
    trace = np.where(inside, s0 * np.exp(-B_VALUE * adc * 1e-6) / unit, 0.05 * head)
    bias = 1 + prof.bias_field * ndimage.zoom(patient.bias, np.array(b0.shape) / 3, order=3)[
        tuple(slice(0, n) for n in b0.shape)
    ]
    gain = bias * _slab(warp.jacobian)
    sd = prof.dwi_noise_sd

    def rician(signal: np.ndarray) -> np.ndarray:
        return np.sqrt((signal * gain + rng.normal(0, sd, signal.shape)) ** 2
                       + rng.normal(0, sd, signal.shape) ** 2)

    b0, trace = rician(b0), rician(trace)
    adc = np.where(inside, np.clip(np.log(b0 / trace) / B_VALUE * 1e6, 0, 4000), 0.0)
    lesion, tissue_seg = _label_maps(x)
    brain_shift = np.abs(_slab(warp.shift_mm))[inside]
    return DwiScan(
        b0=(b0 * prof.dwi_scale).astype(np.float32), trace=(trace * prof.dwi_scale).astype(np.float32),
        adc=adc.astype(np.float32), lesion=lesion, regions=x.regions, tissue=tissue_seg,
        spacing=(pixel, pixel, SLICE_MM), origin=origin,
        epi_shift_mm=float(brain_shift.max()) if brain_shift.size else 0.0,
    )
