"""One synthetic subject: anatomy, lesions, CT Hounsfield units and DWI/ADC.

A subject is drawn from ``numpy.random.default_rng([seed, index])`` so it is the same
whatever order or process generates it. Lesions are drawn in MNI template space (where
territories are defined and volumes are exact), then every map is carried into the
subject's scanner space by one random affine (rotation, scale, shift) plus a mild
elastic displacement, sampled on the scanner grid and slab-averaged to 5 mm slices.

Scanner grid: axis 0 runs to the patient's left, axis 1 to posterior, axis 2 to superior
(DICOM LPS order), so a DICOM slice's pixel array is ``volume[:, :, k].T``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from stroke_lib.data.synthetic.atlas import Atlas, region_names, voxel_world
from stroke_lib.data.synthetic.labels import (
    NIHSS_MINOR_CUTOFF,
    REGION_THRESHOLD_RANGE,
    LesionStats,
    draw_nihss,
    ht_logit,
    nihss_latent,
)

SLICE_MM = 5.0  # axial slice thickness of CT and DWI, as CTNet's CT (paper 001)
SUB_SLICES = 2  # fine samples averaged into one slice


@dataclass(frozen=True)
class SiteProfile:
    """Acquisition and population differences between sites.

    Hounsfield values are in HU; ``*_noise_sd`` is the per-pixel noise after slab
    averaging; DWI intensities are arbitrary units with grey matter at ``dwi_scale``.
    """

    name: str
    fov_mm: tuple[float, float]
    n_slices: tuple[int, int]
    ct_gm_hu: float
    ct_wm_hu: float
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
        name="A",
        fov_mm=(215.0, 235.0),
        n_slices=(28, 34),
        ct_gm_hu=38.0,
        ct_wm_hu=28.0,
        ct_noise_sd=3.0,
        dwi_scale=600.0,
        dwi_noise_sd=0.03,
        bias_field=0.05,
        p_stroke_type={"none": 0.15, "ischaemic": 0.65, "haemorrhagic": 0.20},
        age_mean=68.0,
        lesion_log_ml_mean=np.log(6.0),
        p_thrombolysis=0.30,
    ),
    "B": SiteProfile(
        name="B",
        fov_mm=(230.0, 255.0),
        n_slices=(31, 40),
        ct_gm_hu=39.0,
        ct_wm_hu=30.5,
        ct_noise_sd=4.5,
        dwi_scale=900.0,
        dwi_noise_sd=0.05,
        bias_field=0.15,
        p_stroke_type={"none": 0.10, "ischaemic": 0.60, "haemorrhagic": 0.30},
        age_mean=72.0,
        lesion_log_ml_mean=np.log(10.0),
        p_thrombolysis=0.20,
    ),
}

TERRITORY_P = {"MCA": 0.6, "ACA": 0.08, "PCA": 0.12, "lacunar": 0.15, "brainstem": 0.05}
VOXEL_ML = 0.008  # one 2 mm template voxel


@dataclass
class Subject:
    """A generated subject: scanner-space volumes and its labels.

    Volumes have shape (N, N, n_slices), axes (left, posterior, superior) as DICOM LPS;
    ``spacing`` is (pixel, pixel, 5.0) mm and ``origin`` the LPS position (mm) of voxel 0.

    Attributes:
        ct_hu: float32 HU.  dwi, adc: float32 b1000 trace (a.u.) and ADC (1e-6 mm^2/s).
        lesion: uint8 0 none, 1 acute infarct, 2 old infarct, 3 haemorrhage.
        regions: uint8 ASPECTS-like region labels 0..20.
        record: the subject's row of the labels table.
        geometry: subject -> template mapping, for mirroring across the midline.
    """

    ct_hu: np.ndarray
    dwi: np.ndarray
    adc: np.ndarray
    lesion: np.ndarray
    regions: np.ndarray
    spacing: tuple[float, float, float]
    origin: np.ndarray
    record: dict[str, object]
    geometry: dict[str, list] = field(default_factory=dict)


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


def _pick_territory(rng: np.random.Generator, exclude: str = "") -> str:
    names = [n for n in TERRITORY_P if n != exclude.split("_")[0]]
    p = np.array([TERRITORY_P[n] for n in names])
    kind = str(rng.choice(names, p=p / p.sum()))
    return kind if kind == "brainstem" else f"{kind}_{rng.choice(['L', 'R'])}"


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


class _Warp:
    """Samples template-space maps on the subject's fine scanner grid."""

    def __init__(self, rng, atlas: Atlas, subject_from_template, grid_lps_affine, shape):
        # RAS = diag(-1, -1, 1) @ LPS
        flip = np.diag([-1.0, -1.0, 1.0, 1.0])
        vox_from_mni = np.linalg.inv(atlas.affine)
        m = vox_from_mni @ np.linalg.inv(subject_from_template) @ flip @ grid_lps_affine
        coords = voxel_world(m, shape)
        coarse = rng.normal(0, 1.0, (3, 5, 5, 5))  # mild elastic field, ~1 voxel (2 mm)
        zoom = [s / 5 for s in shape]
        coords += np.stack([ndimage.zoom(c, zoom, order=3) for c in coarse])[
            (slice(None),) + tuple(slice(0, s) for s in shape)
        ]
        self.coords = coords

    def __call__(self, volume: np.ndarray, order: int = 1, cval: float = 0.0) -> np.ndarray:
        return ndimage.map_coordinates(
            volume.astype(np.float32), self.coords, order=order, cval=cval, prefilter=False
        )


def _slab(volume: np.ndarray) -> np.ndarray:
    """Average SUB_SLICES fine samples into one 5 mm slice along axis 2."""
    x, y, z = volume.shape
    return volume.reshape(x, y, z // SUB_SLICES, SUB_SLICES).mean(axis=3)


def generate_subject(
    index: int, seed: int, site: str, in_plane: int, atlas: Atlas
) -> Subject:
    """Draw subject ``index`` of the cohort with ``seed`` at ``site``.

    Args:
        index: subject number (0-based); with ``seed`` it fixes every random draw.
        seed: cohort seed.
        site: key of ``SITES``.
        in_plane: pixels per side of each axial slice.
        atlas: ``load_atlas()``.
    """
    rng = np.random.default_rng([seed, index])
    prof = SITES[site]
    age = float(np.clip(rng.normal(prof.age_mean, 12), 30, 95))
    sex = str(rng.choice(["F", "M"]))
    types = list(prof.p_stroke_type)
    stroke_type = str(rng.choice(types, p=list(prof.p_stroke_type.values())))
    fazekas = int(np.clip(np.floor((age - 55) / 12 + rng.normal(0, 0.7)), 0, 3))

    # --- lesions in template space -------------------------------------------------
    acute = np.zeros(atlas.shape, bool)
    old = np.zeros(atlas.shape, bool)
    haem = np.zeros(atlas.shape, bool)
    territory = ""
    if stroke_type == "ischaemic":
        territory = _pick_territory(rng)
        small = territory.startswith(("lacunar", "brainstem"))
        ml = float(np.exp(rng.normal(np.log(0.8) if small else prof.lesion_log_ml_mean, 1.1)))
        acute = _draw_blob(rng, atlas.territories[territory], ml)
    elif stroke_type == "haemorrhagic":
        deep = rng.random() < 0.6
        hemi = str(rng.choice(["L", "R"]))
        allowed = atlas.territories[f"lacunar_{hemi}" if deep else f"MCA_{hemi}"]
        territory = f"{'deep' if deep else 'lobar'}_{hemi}"
        ml = float(np.exp(rng.normal(np.log(10.0), 0.9)))
        tissue = atlas.brain & (atlas.gm + atlas.wm > 0.3)
        haem = _draw_blob(rng, ndimage.binary_dilation(allowed, iterations=4) & tissue, ml, 0.3)
    if rng.random() < (0.25 if stroke_type == "ischaemic" else 0.1):
        old_territory = _pick_territory(rng, exclude=territory)
        old = _draw_blob(rng, atlas.territories[old_territory], float(np.exp(rng.normal(0.8, 0.8))))
        old &= ~acute & ~haem
    oedema = ndimage.binary_dilation(haem, iterations=2) & ~haem & atlas.brain
    hyperdense = bool(
        stroke_type == "ischaemic"
        and territory.startswith("MCA")
        and rng.random() < min(0.15 + 0.1 * np.log1p(acute.sum() * VOXEL_ML), 0.8)
    )

    main = acute | haem
    stats = LesionStats(
        lesion_ml=float(main.sum() * VOXEL_ML),
        motor_ml=float((main & atlas.motor).sum() * VOXEL_ML),
        language_ml=float((main & atlas.language).sum() * VOXEL_ML),
        brainstem_ml=float((main & atlas.brainstem).sum() * VOXEL_ML),
        hyperdense_artery=hyperdense,
        fazekas=fazekas,
        age=age,
    )
    latent = nihss_latent(stats, stroke_type != "none")
    nihss = draw_nihss(rng, latent)
    thrombolysis = bool(stroke_type == "ischaemic" and rng.random() < prof.p_thrombolysis)
    ht_risk, ht = float("nan"), float("nan")
    if stroke_type == "ischaemic":
        ht_risk = float(1 / (1 + np.exp(-ht_logit(stats, thrombolysis))))
        ht = float(rng.random() < ht_risk)

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

    # --- scanner geometry and warp --------------------------------------------------
    fov = rng.uniform(*prof.fov_mm)
    pixel = fov / in_plane
    n_slices = int(rng.integers(prof.n_slices[0], prof.n_slices[1] + 1))
    z_centre = rng.normal(12.0, 6.0)
    dz = SLICE_MM / SUB_SLICES
    z0 = z_centre - (n_slices * SLICE_MM) / 2 + dz / 2
    grid = np.diag([pixel, pixel, dz, 1.0])
    grid[:3, 3] = [-fov / 2 + pixel / 2, -fov / 2 + pixel / 2 + 10.0, z0]
    shape = (in_plane, in_plane, n_slices * SUB_SLICES)
    pose = _pose(rng)
    warp = _Warp(rng, atlas, pose, grid, shape)

    gm, wm, csf = warp(atlas.gm), warp(atlas.wm), warp(atlas.csf)
    brain = warp(atlas.brain.astype(np.float32))
    vent_d = warp(atlas.ventricle_dist, cval=99.0)
    surf_d = warp(atlas.surface_dist)
    outer_d = warp(atlas.outer_dist, cval=99.0)
    vessels = np.stack([warp(v) for v in atlas.vessels])
    f_acute, f_old = warp(acute.astype(np.float32)), warp(old.astype(np.float32))
    f_haem, f_oed = warp(haem.astype(np.float32)), warp(oedema.astype(np.float32))
    regions_fine = warp(atlas.regions, order=0)

    # Atrophy: ventricles widen and sulci open with age (mm of CSF added).
    r_vent = np.clip(0.09 * (age - 45), 0, 5) + rng.uniform(0, 1)
    r_sulci = np.clip(0.05 * (age - 45), 0, 3)
    to_csf = np.clip(r_vent - vent_d + 1, 0, 1) * brain
    to_csf = np.maximum(to_csf, np.clip(r_sulci - surf_d + 1, 0, 1) * brain * (gm > wm))
    gm, wm = gm * (1 - to_csf), wm * (1 - to_csf)
    csf = np.where(brain > 0, 1 - gm - wm, 0)

    # --- CT -------------------------------------------------------------------------
    hu = gm * prof.ct_gm_hu + wm * prof.ct_wm_hu + csf * 6.0
    leuko = wm * np.clip(4 + 4 * fazekas - vent_d, 0, 4) / 4
    leuko *= np.clip(ndimage.gaussian_filter(rng.standard_normal(shape), 2) * 2 + 1, 0, 2)
    hu -= (1.5 + 1.5 * fazekas) * leuko * (fazekas > 0)
    early_delta = rng.uniform(2.0, 6.0)  # paper 004 section 2.4: 2-6 HU darker
    hu -= early_delta * f_acute * (gm + wm > 0.5)
    hu = hu * (1 - 0.9 * f_old) + 8.0 * 0.9 * f_old
    hu -= 6.0 * f_oed
    haem_hu = rng.uniform(55, 85)
    hu = hu * (1 - f_haem) + haem_hu * f_haem
    artery_hu = np.full(3, 42.0)
    if hyperdense:
        artery_hu[0 if territory.endswith("L") else 1] = rng.uniform(62, 75)
    vessel_p = vessels.max(0)
    hu = hu * (1 - vessel_p) + (vessels * artery_hu[:, None, None, None]).sum(0) / np.maximum(
        vessels.sum(0), 1e-6
    ) * vessel_p
    skull = rng.uniform(5.0, 8.0)
    layer = np.select(
        [outer_d <= 0, outer_d < 2.0, outer_d < 3.2, outer_d < 1.8 + skull, outer_d < 3 + skull,
         outer_d < 8 + skull],
        [hu, 6.0, 1600.0, 750.0, 1500.0, 25.0],
        default=-1000.0,
    )
    edge = np.clip(outer_d, 0, 1)
    hu = hu * (1 - edge) + layer * edge
    hu = _slab(hu)
    noise = ndimage.gaussian_filter(rng.standard_normal(hu.shape), (0.6, 0.6, 0))
    noise *= prof.ct_noise_sd / (noise.std() + 1e-6)
    ct_hu = np.clip(hu + noise, -1024, 3071).astype(np.float32)

    # --- DWI b1000 trace and ADC ----------------------------------------------------
    dwi = gm * 1.0 + wm * 0.85 + csf * 0.12
    adc = gm * 850.0 + wm * 750.0 + csf * 3000.0
    boost = rng.uniform(1.2, 2.0)
    dwi = dwi * (1 + boost * f_acute * (gm + wm > 0.5))
    adc = adc * (1 - f_acute) + rng.uniform(420, 560) * f_acute
    dwi = dwi * (1 - f_old) + 0.15 * f_old
    adc = adc * (1 - f_old) + 2500.0 * f_old
    dwi = dwi * (1 - f_haem) + 0.45 * f_haem
    adc = adc * (1 - f_haem) + 650.0 * f_haem
    head = np.clip(1 - (outer_d - 3 - skull) / 5, 0, 1)
    dwi = dwi * brain + 0.05 * head * (1 - brain)
    adc = adc * brain
    dwi, adc = _slab(dwi), _slab(adc)
    bias = 1 + prof.bias_field * ndimage.zoom(rng.standard_normal((3, 3, 3)), np.array(dwi.shape) / 3, order=3)[
        tuple(slice(0, s) for s in dwi.shape)
    ]
    sd = prof.dwi_noise_sd
    dwi = np.sqrt((dwi * bias + rng.normal(0, sd, dwi.shape)) ** 2 + rng.normal(0, sd, dwi.shape) ** 2)
    dwi = (dwi * prof.dwi_scale).astype(np.float32)
    adc = np.clip(adc + rng.normal(0, 60, adc.shape) * (adc > 0), 0, 4000).astype(np.float32)

    lesion = np.zeros(ct_hu.shape, np.uint8)
    lesion[_slab(f_old) > 0.5] = 2
    lesion[_slab(f_acute) > 0.5] = 1
    lesion[_slab(f_haem) > 0.5] = 3
    regions = regions_fine[:, :, SUB_SLICES // 2 :: SUB_SLICES].astype(np.uint8)

    record: dict[str, object] = {
        "site": site,
        "age": round(age, 1),
        "sex": sex,
        "stroke_type": stroke_type,
        "territory": territory,
        "lesion_volume_ml": round(stats.lesion_ml, 2),
        "old_infarct_ml": round(float(old.sum() * VOXEL_ML), 2),
        "nihss": nihss,
        "nihss_latent": round(latent, 3),
        "severity": "minor" if nihss <= NIHSS_MINOR_CUTOFF else "non-minor",
        "hyperdense_artery": int(hyperdense),
        "fazekas": fazekas,
        "thrombolysis": int(thrombolysis),
        "ht": ht,
        "ht_risk": round(ht_risk, 4) if ht_risk == ht_risk else ht_risk,
        "early_ct_delta_hu": round(float(early_delta), 2),
        **region_rows,
    }
    origin = grid[:3, 3].copy()
    origin[2] = z0 + dz * (SUB_SLICES - 1) / 2  # centre of the first 5 mm slab
    return Subject(
        ct_hu=ct_hu,
        dwi=dwi,
        adc=adc,
        lesion=lesion,
        regions=regions,
        spacing=(pixel, pixel, SLICE_MM),
        origin=origin,
        record=record,
        geometry={"subject_from_template": pose.tolist()},
    )

