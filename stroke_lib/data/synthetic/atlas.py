"""Template-space anatomy of the embedded cohort, from nilearn's bundled MNI152 maps.

Everything here lives on the 2 mm MNI ICBM152 2009 grid that nilearn ships inside its
wheel (99 x 117 x 95 voxels, RAS+, world coordinates in mm). Vascular territories,
ASPECTS-like regions, the motor strip, language cortex and brainstem are drawn as simple
geometric shapes in MNI coordinates and intersected with the tissue maps: they are
teaching approximations, not an atlas.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from nilearn import datasets
from scipy import ndimage

#: ASPECTS-like region names per hemisphere (Barber et al., Lancet 2000).
ASPECTS_REGIONS = ("C", "L", "IC", "I", "M1", "M2", "M3", "M4", "M5", "M6")
HEMISPHERES = ("L", "R")


@dataclass(frozen=True)
class Atlas:
    """Template-space maps, all of shape (99, 117, 95), RAS+, 2 mm voxels.

    Attributes:
        affine: voxel -> MNI mm (4 x 4).
        gm, wm, csf: tissue probabilities in [0, 1].
        brain: brain mask (bool).
        ventricle_dist: distance to the lateral ventricles in mm (0 inside).
        surface_dist: depth below the brain surface in mm (0 outside the brain).
        outer_dist: distance outside the cranial cavity in mm (0 inside): skull and scalp
            layers. The cavity is the brain closed by 16 mm, so the gaps of the skull base
            between temporal lobes, brainstem and cerebellum are bone, not air.
        streak: float32 in [0, 1], where beam hardening between the petrous bones darkens
            the posterior fossa (the Hounsfield bar), soft-edged.
        base_hu: HU of the skull base inside the cavity but outside the brain (bone with
            the sphenoid sinus and mastoid air cells; orbital fat and globes), NaN elsewhere.
        susceptibility: float32 in [0, 1], the B0 off-resonance that the air cells of the
            skull base (sphenoid sinus, mastoids) and the orbits' air-tissue boundary cause in the
            brain above them: the air Gaussian-smoothed (sigma 10 mm), 1 at its peak inside
            the brain. EPI shifts the DWI along its phase-encoding axis in proportion.
        vessels: (3, ...) probability of the left M1, right M1 and other large arteries.
        regions: int map, 0 = none, 1..20 = ``region_names()[i - 1]``.
        territories: dict name -> bool mask (MCA_L, MCA_R, ACA_L, ..., lacunar_L, ...).
        motor, language, brainstem: bool masks of eloquent structures.
        neglect: bool mask of the right temporo-parietal cortex (neglect, extinction).
        cerebellum: bool mask of the cerebellar hemispheres.
        deep_grey: bool mask of caudate, lentiform nucleus and thalamus.
        internal_capsule: bool mask of the internal capsules (regions IC).
        pineal, choroid: bool masks where physiological calcifications sit (pineal
            gland; glomus of the choroid plexus in both atria).
    """

    affine: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    ventricle_dist: np.ndarray
    surface_dist: np.ndarray
    outer_dist: np.ndarray
    susceptibility: np.ndarray
    base_hu: np.ndarray
    streak: np.ndarray
    vessels: np.ndarray
    regions: np.ndarray
    territories: dict[str, np.ndarray]
    motor: np.ndarray
    language: np.ndarray
    brainstem: np.ndarray
    neglect: np.ndarray
    cerebellum: np.ndarray
    deep_grey: np.ndarray
    internal_capsule: np.ndarray
    pineal: np.ndarray
    choroid: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.gm.shape



def voxel_world(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """World coordinates (3, X, Y, Z) in mm of every voxel centre of a grid."""
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3] @ idx + affine[:3, 3:4]
    return xyz.reshape(3, *shape).astype(np.float32)


def region_names() -> list[str]:
    """The 20 region names, ``"L_C"`` ... ``"R_M6"``, in label order."""
    return [f"{h}_{r}" for h in HEMISPHERES for r in ASPECTS_REGIONS]


def _ellipsoid(xyz: np.ndarray, centre: tuple, radii: tuple) -> np.ndarray:
    c = np.asarray(centre, np.float32).reshape(3, 1, 1, 1)
    r = np.asarray(radii, np.float32).reshape(3, 1, 1, 1)
    return (((xyz - c) / r) ** 2).sum(0) <= 1.0


def _box(xyz: np.ndarray, lo: tuple, hi: tuple) -> np.ndarray:
    x, y, z = xyz
    return (
        (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    )


def _tube(xyz: np.ndarray, a: tuple, b: tuple, radius: float) -> np.ndarray:
    """Soft tube around segment a-b: 1 inside ``radius`` mm, falling off over 1 mm."""
    a_ = np.asarray(a, np.float32).reshape(3, 1, 1, 1)
    ab = np.asarray(b, np.float32).reshape(3, 1, 1, 1) - a_
    t = np.clip(((xyz - a_) * ab).sum(0) / float((ab**2).sum()), 0, 1)
    d = np.sqrt(((xyz - a_ - t * ab) ** 2).sum(0))
    return np.clip(radius + 1.0 - d, 0, 1).astype(np.float32)


@lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """Build the template-space atlas once per process (about 2 s)."""
    gm_img = datasets.load_mni152_gm_template(resolution=2)
    affine = gm_img.affine.copy()
    gm = gm_img.get_fdata(dtype=np.float32)
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata(dtype=np.float32)
    brain = datasets.load_mni152_brain_mask(resolution=2).get_fdata(dtype=np.float32) > 0.5
    brain = ndimage.binary_fill_holes(brain)
    total = np.clip(gm + wm, 0, 1)
    gm, wm = gm / np.maximum(total, 1.0), wm / np.maximum(total, 1.0)
    csf = np.where(brain, 1.0 - np.clip(gm + wm, 0, 1), 0.0).astype(np.float32)

    xyz = voxel_world(affine, gm.shape)
    x, y, z = xyz

    # Lateral ventricles: CSF-dominant voxels near the centre of the brain.
    central = _ellipsoid(xyz, (0, -10, 12), (30, 45, 22))
    ventricles = (csf > 0.6) & central & brain
    labels, n = ndimage.label(ventricles)
    if n:
        sizes = ndimage.sum(ventricles, labels, range(1, n + 1))
        keep = np.argsort(sizes)[::-1][:2] + 1
        ventricles = np.isin(labels, keep)
    voxel = float(affine[0, 0])
    ventricle_dist = ndimage.distance_transform_edt(~ventricles) * voxel
    surface_dist = ndimage.distance_transform_edt(brain) * voxel
    r = np.sqrt(((np.indices((17, 17, 17)) - 8) ** 2).sum(0))
    ball = r <= 8
    padded = np.pad(brain, 8)
    cavity = ndimage.binary_closing(padded, ball)[8:-8, 8:-8, 8:-8] | brain
    cavity = ndimage.binary_fill_holes(cavity)
    outer_dist = ndimage.distance_transform_edt(~cavity) * voxel
    # Skull base (below the MNI origin): petrous/sphenoid bone with air cells; orbits.
    base = cavity & ~brain & (z < 0)
    base_hu = np.where(base, 1100.0, np.nan).astype(np.float32)
    air = (_ellipsoid(xyz, (0, 8, -32), (11, 12, 9)) | _ellipsoid(xyz, (-46, -30, -40), (7, 11, 9))
           | _ellipsoid(xyz, (46, -30, -40), (7, 11, 9)))
    base_hu[base & air] = -700.0
    orbit = _ellipsoid(xyz, (-33, 48, -32), (14, 18, 13)) | _ellipsoid(xyz, (33, 48, -32), (14, 18, 13))
    globe = _ellipsoid(xyz, (-33, 58, -32), (11, 11, 11)) | _ellipsoid(xyz, (33, 58, -32), (11, 11, 11))
    base_hu[~brain & orbit & (outer_dist < 14)] = -90.0
    base_hu[~brain & globe & (outer_dist < 14)] = 15.0
    off = ndimage.gaussian_filter((base & air | orbit & ~globe & ~brain).astype(np.float32), 5.0)
    susceptibility = np.clip(off / off[brain].max(), 0, 1).astype(np.float32)

    vessels = np.stack(
        [
            _tube(xyz, (-12, 2, -14), (-46, 6, -4), 1.6),  # left M1
            _tube(xyz, (12, 2, -14), (46, 6, -4), 1.6),  # right M1
            np.maximum.reduce(
                [
                    _tube(xyz, (-4, 2, -14), (-3, 30, 2), 1.2),  # A1/A2 left
                    _tube(xyz, (4, 2, -14), (3, 30, 2), 1.2),
                    _tube(xyz, (0, -32, -40), (0, -20, -18), 1.6),  # basilar
                ]
            ),
        ]
    ).astype(np.float32)

    tissue = brain & (gm + wm > 0.3)
    regions = np.zeros(gm.shape, np.int16)
    names = region_names()
    for hemi, sign in (("L", -1), ("R", 1)):
        deep = {
            "C": _ellipsoid(xyz, (sign * 13, 12, 10), (5, 10, 8)),
            "L": _ellipsoid(xyz, (sign * 22, 2, 0), (6, 12, 7)),
            "IC": _ellipsoid(xyz, (sign * 17, -2, 6), (3, 13, 8)),
            "I": _ellipsoid(xyz, (sign * 38, 2, 2), (5, 15, 10)),
        }
        lateral = (sign * x > 28) & tissue
        cortex = {
            "M1": lateral & _box(xyz, (-90, 10, -12), (90, 55, 20)),
            "M2": lateral & _box(xyz, (-90, -20, -12), (90, 10, 20)),
            "M3": lateral & _box(xyz, (-90, -65, -12), (90, -20, 20)),
            "M4": lateral & _box(xyz, (-90, 10, 20), (90, 55, 52)),
            "M5": lateral & _box(xyz, (-90, -20, 20), (90, 10, 52)),
            "M6": lateral & _box(xyz, (-90, -65, 20), (90, -20, 52)),
        }
        for name, mask in {**cortex, **deep}.items():  # deep regions win overlaps
            regions[mask & tissue] = names.index(f"{hemi}_{name}") + 1

    territories: dict[str, np.ndarray] = {}
    for hemi, sign in (("L", -1), ("R", 1)):
        side = sign * x > 2
        territories[f"MCA_{hemi}"] = side & tissue & (regions > 0) & ~_ellipsoid(
            xyz, (sign * 15, 0, 5), (10, 18, 14)
        )
        territories[f"ACA_{hemi}"] = side & tissue & (sign * x < 22) & (y > -35) & (z > 8)
        territories[f"PCA_{hemi}"] = side & tissue & ((y < -68) | ((y < -35) & (z < -2))) & (
            z > -30
        )
        territories[f"lacunar_{hemi}"] = side & tissue & _ellipsoid(
            xyz, (sign * 18, -6, 4), (9, 18, 9)
        )
    brainstem = tissue & _box(xyz, (-12, -42, -50), (12, -14, -14))
    territories["brainstem"] = brainstem
    cerebellum = tissue & _box(xyz, (-55, -90, -50), (55, -44, -18)) & (np.abs(x) > 4)
    for hemi, sign in (("L", -1), ("R", 1)):
        territories[f"cerebellum_{hemi}"] = cerebellum & (sign * x > 4)
    ic = np.isin(regions, [names.index("L_IC") + 1, names.index("R_IC") + 1])
    thalamus = _ellipsoid(xyz, (-11, -18, 6), (7, 10, 7)) | _ellipsoid(xyz, (11, -18, 6), (7, 10, 7))
    nuclei = np.isin(regions, [names.index(f"{h}_{r}") + 1 for h in HEMISPHERES for r in ("C", "L")])
    deep_grey = tissue & (nuclei | (thalamus & ~ic))
    pineal = _ellipsoid(xyz, (0, -33, 2), (3, 3.5, 3))
    choroid = (_ellipsoid(xyz, (-26, -40, 14), (4, 5, 4)) | _ellipsoid(xyz, (26, -40, 14), (4, 5, 4)))
    neglect = tissue & _box(xyz, (36, -70, 0), (72, -20, 50))
    motor = tissue & (
        (_box(xyz, (-70, -32, 38), (70, -6, 80)) & (np.abs(x) > 8))
        | ic
    )
    language = tissue & _box(xyz, (-70, -65, -12), (-36, 28, 36))
    return Atlas(
        affine=affine,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf,
        brain=brain,
        ventricle_dist=ventricle_dist.astype(np.float32),
        surface_dist=surface_dist.astype(np.float32),
        outer_dist=outer_dist.astype(np.float32),
        susceptibility=susceptibility,
        base_hu=base_hu,
        streak=ndimage.gaussian_filter(
            (_ellipsoid(xyz, (0, -30, -36), (34, 4, 5)) & brain).astype(np.float32), 1.0),
        vessels=vessels,
        regions=regions,
        territories=territories,
        motor=motor,
        language=language,
        brainstem=brainstem,
        neglect=neglect,
        cerebellum=cerebellum,
        deep_grey=deep_grey,
        internal_capsule=ic & tissue,
        pineal=pineal,
        choroid=choroid,
    )
