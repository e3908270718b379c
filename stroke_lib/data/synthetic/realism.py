"""How realistic the embedded cohort is, measured from its written files.

Everything here reads the cohort as a stranger would: the DICOM slices with plain pydicom,
the NIfTI files with plain nibabel, the tables with pandas. Nothing is taken from the
generator's memory, so the numbers hold for the files the chapters read.

``realism_table(root)`` gives each measure beside the literature value it aims at;
``baseline_table(root)`` gives the non-deep baselines (lesion volume, brightest-voxel HU)
against each label's oracle ceiling. Both return DataFrames for the data chapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
from scipy import ndimage
from scipy.stats import spearmanr

from stroke_lib.data.synthetic import mirror_voxels
from stroke_lib.metrics import delong_ci

#: Midline structures' shift per ml of haematoma reported in patients, mm per ml (Yang et
#: al., Neurocrit Care 2017: about 0.1-0.2 mm per ml).
SHIFT_MM_PER_ML = (0.1, 0.2)

GREY, WHITE = (2, 4), (3, 5)  # tissue dseg: cortex + deep nuclei; white matter + capsule


@dataclass
class SubjectFiles:
    """One subject's baseline CT and DWI, each on its own RAS grid (X, Y, Z), from its files.

    Attributes:
        hu: CT in HU; lesion, tissue, regions, brain: the CT grid's label maps (see the
            cohort's ``desc-*_dseg.tsv``; brain bool); affine: CT voxel -> RAS mm.
        dwi, adc, b0: b1000 trace (a.u.), ADC (1e-6 mm^2/s), b0 (a.u.); dwi_lesion,
            dwi_tissue: the DWI grid's label maps; dwi_affine: DWI voxel -> RAS mm.
        geometry: the subject's geometry record (both acquisitions' poses).
    """

    hu: np.ndarray
    lesion: np.ndarray
    tissue: np.ndarray
    regions: np.ndarray
    brain: np.ndarray
    affine: np.ndarray
    dwi: np.ndarray
    adc: np.ndarray
    b0: np.ndarray
    dwi_lesion: np.ndarray
    dwi_tissue: np.ndarray
    dwi_affine: np.ndarray
    geometry: dict


def read_ct_ras(series: Path) -> tuple[np.ndarray, np.ndarray]:
    """(HU volume, affine) of an axial DICOM series, axes running R, A, S.

    Plain pydicom: slices sorted by ImagePositionPatient; columns run to the patient's
    left and rows to posterior (ImageOrientationPatient 1,0,0,0,1,0), so both in-plane
    axes are reversed to reach RAS.
    """
    files = sorted(Path(series).glob("*.dcm"))
    if not files:
        raise FileNotFoundError(f"{series}: no DICOM slices")
    slices = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array.T * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices], -1)
    first = slices[0]
    row_mm, col_mm = (float(v) for v in first.PixelSpacing)
    dz = float(slices[1].ImagePositionPatient[2]) - float(first.ImagePositionPatient[2])
    lps = np.diag([col_mm, row_mm, dz, 1.0])
    lps[:3, 3] = [float(v) for v in first.ImagePositionPatient]
    nx, ny = hu.shape[:2]
    flip = np.eye(4)
    flip[0, 0], flip[1, 1], flip[0, 3], flip[1, 3] = -1, -1, nx - 1, ny - 1
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps @ flip
    return hu[::-1, ::-1].astype(np.float32), affine


def read_subject(root: Path, pid: str) -> SubjectFiles:
    """Read one subject of the cohort at ``root``: the CT must lie on its masks' grid and
    the DWI maps on the ``space-dwi`` masks' grid (ValueError naming the file if not)."""
    root = Path(root)
    masks = root / "derivatives" / "masks" / pid
    dwi_dir = root / pid / "dwi"

    def labels(path: Path, affine: np.ndarray) -> np.ndarray:
        img = nib.load(path)
        if not np.allclose(img.affine, affine, atol=1e-2):
            raise ValueError(f"{path}: grid differs from its image's")
        return np.asarray(img.dataobj).astype(np.uint8)

    hu, ct_affine = read_ct_ras(root / "sourcedata" / "ct" / pid / "NCCT_HEAD")
    trace = nib.load(dwi_dir / f"{pid}_rec-TRACE_dwi.nii.gz")
    maps = {}
    for rec in ("ADC", "B0"):
        img = nib.load(dwi_dir / f"{pid}_rec-{rec}_dwi.nii.gz")
        if not np.allclose(img.affine, trace.affine, atol=1e-3):
            raise ValueError(f"{img.get_filename()}: grid differs from {trace.get_filename()}")
        maps[rec] = img.get_fdata(dtype=np.float32)
    return SubjectFiles(
        hu=hu,
        lesion=labels(masks / f"{pid}_desc-lesion_mask.nii.gz", ct_affine),
        tissue=labels(masks / f"{pid}_desc-tissue_dseg.nii.gz", ct_affine),
        regions=labels(masks / f"{pid}_desc-aspects_dseg.nii.gz", ct_affine),
        brain=labels(masks / f"{pid}_desc-brain_mask.nii.gz", ct_affine) > 0,
        affine=ct_affine,
        dwi=trace.get_fdata(dtype=np.float32),
        adc=maps["ADC"],
        b0=maps["B0"],
        dwi_lesion=labels(masks / f"{pid}_space-dwi_desc-lesion_mask.nii.gz", trace.affine),
        dwi_tissue=labels(masks / f"{pid}_space-dwi_desc-tissue_dseg.nii.gz", trace.affine),
        dwi_affine=trace.affine,
        geometry=json.loads((root / "derivatives" / "geometry" / f"{pid}.json").read_text()),
    )


def dwi_abnormal(s: SubjectFiles) -> np.ndarray:
    """Voxels a reader would call restricted diffusion: trace > 1.4 x the brain median
    and 0 < ADC < 600 x 1e-6 mm^2/s (near the usual core threshold of 620), with at least
    one of the 8 in-plane neighbours so too (a lone voxel is noise, as where EPI piles
    signal up)."""
    brain = s.adc > 0
    raw = brain & (s.dwi > 1.4 * np.median(s.dwi[brain])) & (s.adc < 600)
    ring = np.ones((3, 3, 1), np.int32)
    ring[1, 1, 0] = 0
    return raw & (ndimage.convolve(raw.astype(np.int32), ring, mode="constant") > 0)


def ct_dense(s: SubjectFiles) -> np.ndarray:
    """CT voxels a reader would call fresh blood: the voxel and its in-plane 3 x 3 median
    at least 55 HU inside the eroded brain, more than 2 voxels from anything denser than 90 HU
    (calcification or bone, which partial volume dims to about 100 HU at 64 px; fresh
    blood is 55-85 HU)."""
    dense = (s.hu >= 55) & (ndimage.median_filter(s.hu, size=(3, 3, 1)) >= 55)
    bright = ndimage.binary_dilation(s.hu > 90, np.ones((5, 5, 1), bool))
    return dense & brain_mask(s) & ~bright


def ct_on_dwi(s: SubjectFiles, volume: np.ndarray, order: int = 0) -> np.ndarray:
    """A CT-grid ``volume`` carried onto the DWI grid through the two acquisitions' poses.

    Each DWI voxel goes to template space by the inverse of ``dwi_from_template``, then to
    the CT by ``subject_from_template``: the rigid registration a reader would run. The
    DWI's EPI distortion is not undone, so what remains is where the two images differ.
    Voxels outside the CT get 0.
    """
    geo = s.geometry
    ct_from_dwi = (np.linalg.inv(s.affine) @ np.asarray(geo["subject_from_template"], float)
                   @ np.linalg.inv(np.asarray(geo["dwi_from_template"], float)) @ s.dwi_affine)
    idx = np.indices(s.dwi.shape, np.float32).reshape(3, -1)
    at = ct_from_dwi[:3, :3] @ idx + ct_from_dwi[:3, 3:4]
    out = ndimage.map_coordinates(np.asarray(volume, np.float32), at, order=order, cval=0.0)
    return out.reshape(s.dwi.shape)


def outline_misfit_by_slice(s: SubjectFiles) -> tuple[np.ndarray, np.ndarray]:
    """Per DWI slice: (voxels where the CT's brain, registered onto the DWI by the poses,
    and the DWI's brain (ADC > 0) disagree; DWI brain voxels), both inside the CT's field
    of view. The ratio is the misfit that the rigid registration leaves."""
    carried = ct_on_dwi(s, s.brain.astype(np.float32), order=1) > 0.5
    seen = ct_on_dwi(s, np.ones(s.hu.shape, np.float32)) > 0
    dwi_brain = (s.adc > 0) & seen
    return ((carried ^ dwi_brain) & seen).sum((0, 1)), dwi_brain.sum((0, 1))


def outline_misfit(s: SubjectFiles) -> tuple[float, float]:
    """Share of brain voxels that ``outline_misfit_by_slice`` finds in disagreement, in the
    lower and the upper third of the DWI's slices that hold brain: EPI distortion shows as
    a larger misfit near the skull base."""
    wrong, brain = outline_misfit_by_slice(s)
    slices = np.flatnonzero(brain > 50)
    third = max(len(slices) // 3, 1)
    low, high = slices[:third], slices[-third:]
    return float(wrong[low].sum() / brain[low].sum()), float(wrong[high].sum() / brain[high].sum())


def shine_through(s: SubjectFiles) -> tuple[float, float]:
    """(trace, ADC-alone prediction) of the old infarct relative to healthy cortex.

    The trace ratio is mean trace in the old infarct over mean trace in healthy cortex
    (DWI grid); the ADC alone predicts exp(-b (ADC_old - ADC_cortex)) with b = 1000
    s/mm^2. A trace above the prediction is T2 shine-through. NaN without both tissues.
    """
    old, cortex = s.dwi_lesion == 2, (s.dwi_tissue == 2) & (s.dwi_lesion == 0)
    if old.sum() < 3 or cortex.sum() < 3:
        return float("nan"), float("nan")
    ratio = float(s.dwi[old].mean() / s.dwi[cortex].mean())
    return ratio, float(np.exp(-1000.0 * (s.adc[old].mean() - s.adc[cortex].mean()) * 1e-6))


def brain_mask(s: SubjectFiles, erode: int = 1) -> np.ndarray:
    """The CT's brain (``desc-brain_mask``), eroded in-plane by ``erode`` voxels to keep
    skull out."""
    brain = s.brain
    return ndimage.binary_erosion(brain, np.ones((3, 3, 1), bool), iterations=erode) if erode else brain


def infarct_grey_white(s: SubjectFiles, min_voxels: int = 3) -> tuple[float, float]:
    """Grey minus white matter HU inside the acute infarct and at its mirror image.

    Grey is tissue labels 2 and 4, white 3 and 5; mirrored voxels inside the mask are left
    out. NaN when either side has fewer than ``min_voxels`` of each tissue.
    """
    inside = s.lesion == 1
    if not inside.any():
        return float("nan"), float("nan")
    mir = tuple(m[inside] for m in mirror_voxels(s.affine, s.hu.shape, s.geometry))
    keep = ~inside[mir]

    def contrast(hu: np.ndarray, tissue: np.ndarray) -> float:
        g, w = hu[np.isin(tissue, GREY)], hu[np.isin(tissue, WHITE)]
        return float(g.mean() - w.mean()) if min(g.size, w.size) >= min_voxels else float("nan")

    return contrast(s.hu[inside], s.tissue[inside]), contrast(s.hu[mir][keep], s.tissue[mir][keep])


def ventricle_shift_mm(s: SubjectFiles, lesion_side: str) -> float:
    """Shift (mm) of the lateral ventricles' centre away from the lesion's side.

    CSF voxels of ``desc-tissue_dseg`` are carried into template space by the inverse of
    the subject's pose and those inside the central ventricle region (an ellipsoid 40 mm
    to either side of the midline, so that shifted ventricles stay inside it) are
    averaged; their left-right centre is 0 in the template. Positive: shifted away from ``lesion_side``
    ("L" or "R"); NaN without ventricle voxels.
    """
    pose = np.asarray(s.geometry["subject_from_template"], float)
    idx = np.argwhere(s.tissue == 1).T
    if idx.size == 0:
        return float("nan")
    world = s.affine[:3, :3] @ idx + s.affine[:3, 3:4]
    tmpl = np.linalg.inv(pose)[:3, :3] @ world + np.linalg.inv(pose)[:3, 3:4]
    x, y, z = tmpl
    central = ((x / 40) ** 2 + ((y + 10) / 45) ** 2 + ((z - 12) / 22) ** 2) <= 1
    if not central.any():
        return float("nan")
    centre = float(x[central].mean())
    return -centre if lesion_side == "R" else centre


def measure_subjects(root: Path, max_subjects: int | None = None) -> pd.DataFrame:
    """One row per subject of image measurements read from the files (HU, ADC, ml)."""
    root = Path(root)
    labels = pd.read_csv(root / "derivatives" / "labels.tsv", sep="\t", dtype={"participant_id": str})
    rows = []
    for pid in labels.participant_id[:max_subjects]:
        s = read_subject(root, pid)
        voxel_ml = abs(np.linalg.det(s.affine[:3, :3])) / 1000
        healthy = s.lesion == 0
        t = lambda k: healthy & (s.tissue == k)  # noqa: E731
        td = lambda k: (s.dwi_lesion == 0) & (s.dwi_tissue == k)  # noqa: E731
        brain = brain_mask(s)
        spacing = np.sqrt((s.affine[:3, :3] ** 2).sum(0))
        deep_brain = ndimage.distance_transform_edt(s.brain, sampling=spacing) > 10.0
        gw_in, gw_mirror = infarct_grey_white(s)
        territory = str(labels.set_index("participant_id").territory.get(pid, ""))
        side = territory[-1] if territory.endswith(("_L", "_R")) else "L"
        abnormal = dwi_abnormal(s)
        dense = ct_dense(s)
        trace_old, adc_only_old = shine_through(s)
        misfit_low, misfit_high = outline_misfit(s)
        dwi_voxel_ml = abs(np.linalg.det(s.dwi_affine[:3, :3])) / 1000
        rows.append({
            "participant_id": pid,
            "cortex_hu": float(s.hu[t(2)].mean()),
            "white_hu": float(s.hu[t(3)].mean()),
            "deep_hu": float(s.hu[t(4)].mean()) if t(4).any() else np.nan,
            "capsule_hu": float(s.hu[t(5)].mean()) if t(5).any() else np.nan,
            "csf_hu": float(np.median(s.hu[t(1)])),
            "cortex_adc": float(s.adc[td(2)].mean()),
            "white_adc": float(s.adc[td(3)].mean()),
            "csf_adc": float(np.median(s.adc[td(1)])),
            "infarct_adc": float(s.adc[s.dwi_lesion == 1].mean()) if (s.dwi_lesion == 1).any() else np.nan,
            "haematoma_hu": float(np.median(s.hu[s.lesion == 3])) if (s.lesion == 3).any() else np.nan,
            "infarct_gw_hu": gw_in,
            "mirror_gw_hu": gw_mirror,
            "acute_lesion_ml": float(np.isin(s.lesion, (1, 3)).sum() * voxel_ml),
            "dwi_lesion_ml": float(np.isin(s.dwi_lesion, (1, 3)).sum() * dwi_voxel_ml),
            "dwi_abnormal_ml": float(abnormal.sum() * dwi_voxel_ml),
            "dwi_abnormal_outside_mask": int((abnormal & ~np.isin(s.dwi_lesion, (1, 3))).sum()),
            "ct_dense_outside_mask": int((dense & (s.lesion != 3)).sum()),
            "old_trace_ratio": trace_old,
            "old_adc_only_ratio": adc_only_old,
            "dwi_epi_shift_mm": float(s.geometry.get("dwi_epi_shift_mm", np.nan)),
            "outline_misfit_low": misfit_low,
            "outline_misfit_high": misfit_high,
            "brain_p995_hu": float(np.percentile(s.hu[brain], 99.5)),
            "brain_max_hu": float(s.hu[brain].max()),
            "ventricle_shift_mm": ventricle_shift_mm(s, side),
            "calcified": bool((s.hu[deep_brain] > 100).any()),
        })
    return labels.merge(pd.DataFrame(rows), on="participant_id")


def realism_table(root: Path, measured: pd.DataFrame | None = None,
                  max_subjects: int | None = None) -> pd.DataFrame:
    """Realism figures of the cohort at ``root``: measure, measured, literature, source.

    Args:
        root: a generated cohort folder.
        measured: ``measure_subjects(root)`` if already computed.
        max_subjects: read only the first subjects (speed).
    Returns:
        DataFrame with columns measure, measured (str), literature (str), source; values are
        medians over subjects of per-subject means unless the measure says otherwise.
    """
    m = measured if measured is not None else measure_subjects(root, max_subjects)
    isch, haem = m[m.stroke_type == "ischaemic"], m[m.stroke_type == "haemorrhagic"]
    stroke = m[m.stroke_type != "none"]
    med = lambda x: float(np.nanmedian(x))  # noqa: E731
    gw = isch.dropna(subset=["infarct_gw_hu", "mirror_gw_hu"])
    old = m.dropna(subset=["old_trace_ratio", "old_adc_only_ratio"])
    rho = spearmanr(stroke.acute_lesion_ml, stroke.nihss)[0] if len(stroke) > 2 else np.nan
    shift = haem.dropna(subset=["ventricle_shift_mm"])
    big = shift[shift.acute_lesion_ml >= 20]
    rho_shift = spearmanr(shift.acute_lesion_ml, shift.ventricle_shift_mm)[0] if len(shift) > 2 else np.nan
    rows = [
        ("cortex HU", f"{med(m.cortex_hu):.1f}", "37-41", "Torbey et al., Stroke 2000 (GWR 1.2-1.4)"),
        ("white matter HU", f"{med(m.white_hu):.1f}", "about 30 (29.8-30.1)", "Cala et al., AJNR 1981"),
        ("cortex minus white matter, HU", f"{med(m.cortex_hu - m.white_hu):.1f}", "8-12",
         "grey-white ratio 1.2-1.4: Torbey et al. 2000; Metter et al. 2011"),
        ("deep nuclei minus internal capsule, HU", f"{med(m.deep_hu - m.capsule_hu):.1f}", "8-12",
         "basal-ganglia GWR about 1.3: Torbey et al. 2000; Metter et al. 2011"),
        ("basal-ganglia grey-white ratio", f"{med(m.deep_hu / m.capsule_hu):.2f}", "1.2-1.4",
         "Torbey et al. 2000; Metter et al. 2011"),
        ("CSF HU", f"{med(m.csf_hu):.1f}", "0-10", "standard CT attenuation"),
        ("acute haematoma HU", f"{med(haem.haematoma_hu):.1f}", "50-90",
         "Parizel et al., Eur Radiol 2001"),
        ("ADC cortex / white / CSF, 1e-6 mm^2/s",
         f"{med(m.cortex_adc):.0f} / {med(m.white_adc):.0f} / {med(m.csf_adc):.0f}",
         "about 800-900 / 700-800 / 3000", "Helenius et al., AJNR 2002"),
        ("ADC acute infarct, 1e-6 mm^2/s", f"{med(isch.infarct_adc):.0f}", "400-600 (30-50% drop)",
         "Schlaug et al., Neurology 1997"),
        ("grey-white HU inside early infarct / mirrored side",
         f"{med(gw.infarct_gw_hu):.1f} / {med(gw.mirror_gw_hu):.1f} (n={len(gw)})",
         "lower inside (loss of differentiation)", "Barber et al., Lancet 2000"),
        ("ventricle shift away from haematoma >= 20 ml, mm per ml",
         f"{med(big.ventricle_shift_mm / big.acute_lesion_ml):.2f} (n={len(big)}); rho with volume {rho_shift:.2f}",
         f"about {SHIFT_MM_PER_ML[0]:g}-{SHIFT_MM_PER_ML[1]:g} mm per ml", "Yang et al., Neurocrit Care 2017"),
        ("DWI-abnormal voxels outside the DWI's lesion mask", f"{int(m.dwi_abnormal_outside_mask.sum())}",
         "0", "masks drawn on each image's grid"),
        ("blood-dense CT voxels (>= 55 HU) outside the CT's haemorrhage mask",
         f"{int(m.ct_dense_outside_mask.sum())}", "0", "masks drawn on each image's grid"),
        ("old infarct on the trace / its ADC's prediction (T2 shine-through)",
         f"{med(old.old_trace_ratio):.2f} / {med(old.old_adc_only_ratio):.2f} (n={len(old)})",
         "trace above the ADC's prediction", "Burdette et al., Radiology 1999"),
        ("CT brain registered onto the DWI: misfit, lower / upper third of slices",
         f"{med(m.outline_misfit_low):.1%} / {med(m.outline_misfit_high):.1%}",
         "EPI distortion largest at the skull base, several mm", "Jezzard & Balaban, Magn Reson Med 1995"),
        ("subjects with a calcification (>100 HU, >10 mm inside the brain)", f"{m.calcified.mean():.0%}",
         "pineal 72%, choroid plexus 70%", "Daghighi et al., Neurosciences 2007"),
        ("HT share of ischaemic subjects", f"{isch.ht.mean():.0%} (n={len(isch)})", "10-40%",
         "Aviv et al., Radiology 2009 (2.2-44%)"),
        ("Spearman rho, mask lesion ml vs NIHSS", f"{rho:.2f} (n={len(stroke)})", "0.4-0.6",
         "Saver et al., Stroke 1999; Menezes et al., Stroke 2007"),
    ]
    return pd.DataFrame(rows, columns=["measure", "measured", "literature", "source"])


def baseline_table(root: Path, measured: pd.DataFrame | None = None,
                   max_subjects: int | None = None) -> pd.DataFrame:
    """Non-deep baselines against each label's oracle ceiling, from the written files.

    Rows: non-minor stroke (stroke subjects) by mask lesion ml and by DWI-abnormal ml; HT
    (ischaemic) by mask lesion ml; haemorrhagic vs ischaemic by the brain's 99.5th HU
    percentile and by its brightest voxel. Oracle: AUC of the true latent on the same rows
    (``nihss_latent``, ``ht_risk``); stroke type has no latent and its oracle is 1.

    Returns:
        DataFrame: label, baseline, n, auc, ci_low, ci_high (DeLong), oracle, gap.
    """
    m = measured if measured is not None else measure_subjects(root, max_subjects)
    stroke = m[m.stroke_type != "none"]
    isch = m[m.stroke_type == "ischaemic"]
    typed = m[m.stroke_type.isin(["ischaemic", "haemorrhagic"])]
    nonminor = (stroke.severity == "non-minor").astype(int).to_numpy()
    ht = isch.ht.astype(int).to_numpy()
    is_haem = (typed.stroke_type == "haemorrhagic").astype(int).to_numpy()
    cases = [
        ("non-minor stroke", "lesion mask ml", nonminor, stroke.acute_lesion_ml, stroke.nihss_latent),
        ("non-minor stroke", "DWI-abnormal ml", nonminor, stroke.dwi_abnormal_ml, stroke.nihss_latent),
        ("haemorrhagic transformation", "lesion mask ml", ht, isch.acute_lesion_ml, isch.ht_risk),
        ("haemorrhagic vs ischaemic", "brain 99.5th percentile HU", is_haem, typed.brain_p995_hu, None),
        ("haemorrhagic vs ischaemic", "brightest brain voxel HU", is_haem, typed.brain_max_hu, None),
    ]
    rows = []
    for label, name, y, score, latent in cases:
        if len(np.unique(y)) < 2:
            continue
        auc, lo, hi = delong_ci(y, np.asarray(score, float))
        oracle = delong_ci(y, np.asarray(latent, float))[0] if latent is not None else 1.0
        rows.append({"label": label, "baseline": name, "n": len(y), "auc": auc, "ci_low": lo,
                     "ci_high": hi, "oracle": oracle, "gap": oracle - auc})
    return pd.DataFrame(rows)
