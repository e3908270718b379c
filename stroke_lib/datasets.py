"""Model inputs built from a ``Cohort``: volumes read once, preprocessed, kept in memory.

MRI: ``dwi_dataset`` and the severity task of chapters 01-02. CT: ``ct_dataset`` (CTNet's
28-slice input) and the haemorrhagic-transformation task of chapter 03 (``ht_task``).
Both: the stroke-type task of chapter 04 (``stroke_type_task``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from monai.transforms import Compose, RandAffine, RandFlip, RandGaussianNoise, RandScaleIntensity, Resize
from tqdm import tqdm

from stroke_lib.data import Volume, read_ct_series, read_nifti
from stroke_lib.data.rsna import rsna_pixel_fix
from stroke_lib.data.synthetic.labels import ht_image_latent
from stroke_lib.errors import DataError
from stroke_lib.preprocess import CTNET_SLICES, WINDOWS, crop_or_pad_slices, ct_brain_mask, normalize_mri, window_stack


@dataclass
class ArrayDataset:
    """Inputs and labels of one task.

    Attributes:
        x: float32 tensor (N, C, X, Y, Z).
        y: int labels (N,).
        rows: the cohort rows, in the same order (patient_id, scan_id, site, ...).
        masks: float32 (N, X, Y, Z) lesion masks resized like ``x`` (zeros where none).
        brains: bool (N, X, Y, Z) brain masks resized like ``x``.
        skull: bool (N, X, Y, Z) bone masks resized like ``x`` (CT only; None for MRI).
        slice_labels: int (N, Z) one label per slice of ``x`` where the data labels
            slices (``ct_dataset(slice_labels=)``), else None.
        rejected: one sentence per row left out because a file could not be used, naming
            the file (``ct_dataset``); ``rows`` and ``y`` hold the rows kept.
    """

    x: torch.Tensor
    y: np.ndarray
    rows: pd.DataFrame
    masks: np.ndarray
    brains: np.ndarray
    skull: np.ndarray | None = None
    slice_labels: np.ndarray | None = None
    rejected: list[str] = field(default_factory=list)

    def subset(self, index: np.ndarray) -> "ArrayDataset":
        return ArrayDataset(self.x[index], self.y[index], self.rows.iloc[index].reset_index(drop=True),
                            self.masks[index], self.brains[index],
                            None if self.skull is None else self.skull[index],
                            None if self.slice_labels is None else self.slice_labels[index], self.rejected)


#: Lesion labels of the cohort's masks that count as the acute lesion (infarct, haematoma).
ACUTE_LESION_LABELS = (1, 3)


def dwi_dataset(rows: pd.DataFrame, label: Sequence[int], shape: Sequence[int],
                channels: Sequence[str] = ("dwi", "adc")) -> ArrayDataset:
    """DWI b1000 and/or ADC, standardised within the brain, resized to ``shape``.

    Each channel is standardised by ``normalize_mri`` (robust: median and interquartile
    range of the brain), so that a lesion does not change the scale of normal tissue.

    Args:
        rows: cohort rows with ``image`` (DWI trace), ``adc`` and optionally ``mask``.
        label: 0/1 per row.
        shape: spatial size (X, Y, Z) of the model input.
        channels: which of ``"dwi"`` and ``"adc"``, in order (TRACT-NET reads DWI alone).
    """
    unknown = set(channels) - {"dwi", "adc"}
    if unknown or not channels:
        raise ValueError(f"channels must be drawn from 'dwi' and 'adc', got {list(channels)}")
    resize = Resize(spatial_size=tuple(shape), mode="trilinear")
    resize_nn = Resize(spatial_size=tuple(shape), mode="nearest")
    xs, masks, brains = [], [], []
    for _, r in tqdm(rows.iterrows(), total=len(rows), desc="preparing DWI inputs", leave=False):
        volumes = {"dwi": read_nifti(r.image).data, "adc": read_nifti(r.adc).data}
        brain = volumes["adc"] > 0
        vol = np.stack([normalize_mri(volumes[c], brain) for c in channels])
        xs.append(np.asarray(resize(vol), np.float32))
        mask = (np.isin(read_nifti(r["mask"]).data, ACUTE_LESION_LABELS) if isinstance(r.get("mask"), str)
                else np.zeros(brain.shape, bool))
        masks.append(np.asarray(resize_nn(mask[None].astype(np.float32)))[0])
        brains.append(np.asarray(resize_nn(brain[None].astype(np.float32)))[0] > 0)
    return ArrayDataset(torch.from_numpy(np.stack(xs)), np.asarray(label, int),
                        rows.reset_index(drop=True), np.stack(masks), np.stack(brains))


def augmentation(rotate_deg: float = 10.0, translate_vox: float = 2.0, scale: float = 0.1,
                 spatial_dims: int = 3, spatial_size: Sequence[int] | None = None, flip: bool = False) -> Compose:
    """Training augmentation of inputs (C, X, Y, Z), or (C, X, Y) with ``spatial_dims=2``,
    standardised or windowed, as MONAI random transforms.

    A random affine (rotation up to ``rotate_deg`` degrees about each axis, in 2D about
    the slice normal only, shift up to
    ``translate_vox`` voxels, zoom within 1 +- ``scale``), a random intensity scale of
    +-10 % and Gaussian noise (sd 0.05). No left-right flip: it would move a lesion to
    the other hemisphere, and the deficit of a left perisylvian lesion (language) differs
    from that of its mirror image; ``flip`` adds one (probability one half) for a label
    that a mirror image keeps, such as stroke type. With ``spatial_size`` (the inputs'
    size) the affine reuses one sampling grid (MONAI's ``cache_grid``), about three times
    faster per sample.
    """
    rad = float(np.deg2rad(rotate_deg))
    d = spatial_dims
    cached = {} if spatial_size is None else {"cache_grid": True, "spatial_size": tuple(spatial_size)}
    return Compose([
        RandAffine(prob=0.8, rotate_range=(rad,) * (3 if d == 3 else 1), translate_range=(translate_vox,) * d,
                   scale_range=(scale,) * d, padding_mode="zeros", mode="bilinear", **cached),
        RandScaleIntensity(factors=0.1, prob=0.5),
        RandGaussianNoise(prob=0.3, std=0.05),
        *([RandFlip(prob=0.5, spatial_axis=0)] if flip else []),
    ])


@dataclass
class SeverityTask:
    """Minor vs non-minor ischaemic stroke from DWI, as chapters 01 and 02 set it up.

    Attributes:
        data: the inputs, labels (1 = non-minor) and rows of every patient kept.
        internal, external: row indices of the internal site (cross-validated) and of
            every other site (external evaluation; empty on a one-site dataset).
        internal_site: "A" on the embedded cohort, else the most frequent site.
    """

    data: ArrayDataset
    internal: np.ndarray
    external: np.ndarray
    internal_site: str

    @property
    def has_external(self) -> bool:
        return len(self.external) > 0

    @property
    def has_masks(self) -> bool:
        return bool(self.data.masks.any())

    @property
    def ev_int(self) -> str:
        return f"site {self.internal_site} cross-validation"

    ev_ext = "external sites"

    def ceiling_evaluations(self) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray] | None, np.ndarray]]:
        """``report.ceiling_beside_auc``'s evaluations: per evaluation (internal
        cross-validation, external sites when there are any), the labels (N,), the true
        latents that bound the AUC (``"oracle ceiling"``: the whole latent NIHSS risk;
        ``"image-only ceiling"``: its part that the lesion sets; None on real data, where
        they are unknown) and the patient IDs (N,)."""
        latents = {name: self.data.rows[col].to_numpy(float) for name, col in
                   (("oracle ceiling", "nihss_latent"), ("image-only ceiling", "nihss_image_latent"))
                   if col in self.data.rows}
        ids = self.data.rows.patient_id.to_numpy()
        parts = [(self.ev_int, self.internal)] + ([(self.ev_ext, self.external)] if self.has_external else [])
        return {ev: (self.data.y[idx], {k: v[idx] for k, v in latents.items()} or None, ids[idx])
                for ev, idx in parts}

    def counts(self, tag: str) -> pd.DataFrame:
        """Patients per site and class, the column title naming the data (``tag``)."""
        table = self.data.rows.assign(label=np.where(self.data.y == 1, "non-minor", "minor")).groupby(
            ["site", "label"]).size().unstack(fill_value=0)
        table.columns.name = f"patients ({tag})"
        return table

    def availability(self, dataset: str, latent_known: bool, complete: str) -> str:
        """What this dataset lets the chapter do, in sentences (Markdown): what is skipped
        and why, or ``complete`` when nothing is."""
        skipped = []
        if not self.has_external:
            skipped.append(f"**External evaluation skipped**: {dataset} has one site "
                           f"({self.internal_site}), so this run cross-validates within it; an "
                           "external evaluation needs a second site or dataset.")
        if not self.has_masks:
            skipped.append(f"**Localisation skipped**: {dataset} has no lesion masks, so saliency "
                           "maps cannot be scored against lesions; the randomisation check, which "
                           "needs no mask, is kept.")
        if not latent_known:
            skipped.append("**Oracle ceiling unknown**: only the embedded cohort knows each "
                           "patient's true latent risk.")
        return "\n\n".join(skipped) if skipped else complete


def severity_task(table: pd.DataFrame, cutoff: int, shape: Sequence[int],
                  channels: Sequence[str] = ("dwi",)) -> SeverityTask:
    """The severity task of a cohort table: ischaemic stroke patients' DWI rows (by
    ``stroke_type``, or SOOP's ``acuteischaemicstroke``) with an NIHSS, labelled non-minor
    when NIHSS > ``cutoff``, read by ``dwi_dataset`` at ``shape``, split into sites."""
    rows = table[table.modality == "DWI"]
    if "stroke_type" in rows:
        rows = rows[rows.stroke_type == "ischaemic"]
    elif "acuteischaemicstroke" in rows:
        rows = rows[rows.acuteischaemicstroke == 1]
    rows = rows[rows.nihss.notna()]
    data = dwi_dataset(rows, (rows.nihss > cutoff).astype(int).to_numpy(), shape, channels=channels)
    sites = data.rows.site.astype(str).to_numpy()
    internal_site = "A" if "A" in set(sites) else pd.Series(sites).mode()[0]
    return SeverityTask(data, np.flatnonzero(sites == internal_site), np.flatnonzero(sites != internal_site),
                        internal_site)


#: CT windows CTNet's inputs stack (``preprocess.WINDOWS`` names; see ``models.ctnet``).
CTNET_WINDOWS = ("brain", "stroke_narrow")
#: HU above which a voxel of a head CT is bone (the skull and skull base).
BONE_MIN_HU = 300.0


def ct_dataset(rows: pd.DataFrame, label: Sequence[int], in_plane: int, n_slices: int = CTNET_SLICES,
               windows: Sequence[str] = CTNET_WINDOWS, out_slices: int | None = None,
               strip: bool = False, reader: Callable[[pd.Series], Volume] | None = None,
               slice_labels: str | None = None) -> ArrayDataset:
    """NCCT as CTNet reads it: HU -> window(s) -> ``n_slices`` axial slices around the brain
    (cropped or padded with air) -> resize to ``in_plane`` pixels in-plane and to
    ``out_slices`` slices (default ``n_slices``: no resampling across slices; fewer make
    thicker slices of the same extent). With ``strip`` every voxel outside the brain mask
    is set to air before resizing, at the scan's own resolution (brain extraction: resized
    with the skull, a bleed of 60 HU blurs into bone edges of the same window value).

    The brain is ``preprocess.ct_brain_mask`` (soft tissue inside the skull), kept as
    ``brains`` (``strip_skull`` uses it). Slices are the series' own (5 mm in the embedded cohort and in CTNet's data; a real series of other
    thickness is used as it is). A row whose series cannot be read (``DataError``) is
    left out and named in ``rejected`` (its scan, the file's name without its folders,
    which may hold names or IDs, and the problem); the other rows go on.

    Args:
        rows: cohort rows with ``image`` (a CT series folder) and optionally ``mask``.
        label: 0/1 (or a class index) per row.
        windows: names in ``preprocess.WINDOWS``, one channel each.
        reader: reads a row's CT (default ``read_ct_series(row.image)``).
        slice_labels: a column of ``rows`` holding one label per slice of the series, in
            slice order; they go through the same crop or pad (0 on padded slices) and
            slice resampling (a resampled slice takes the largest label of the slices it
            covers) into ``slice_labels`` (N, out_slices).
    Returns:
        ``ArrayDataset`` with x (N, len(windows), in_plane, in_plane, n_slices), lesion
        masks and brain masks on the same grid, and ``skull`` (N, X, Y, Z) bone masks.
    """
    size = (in_plane, in_plane, out_slices or n_slices)
    resize = Resize(spatial_size=size, mode="trilinear")
    resize_nn = Resize(spatial_size=size, mode="nearest")
    read = reader or (lambda r: read_ct_series(r.image))
    xs, masks, brains, skulls, per_slice, kept, rejected = [], [], [], [], [], [], []
    for k, (_, r) in enumerate(tqdm(rows.iterrows(), total=len(rows), desc="preparing CT inputs", leave=False)):
        try:
            hu = read(r).data
        except DataError as err:
            rejected.append(f"{r.get('scan_id', r.get('patient_id', k))} left out: {Path(err.path).name}: {err.problem}")
            continue
        kept.append(k)
        brain = ct_brain_mask(hu)
        vol = window_stack(hu, [WINDOWS[w] for w in windows])
        if strip:
            vol = vol * brain[None]
        lesion = (np.isin(read_nifti(r["mask"]).data, ACUTE_LESION_LABELS) if isinstance(r.get("mask"), str)
                  else np.zeros(brain.shape, bool))
        crop = lambda v, fill=0.0: crop_or_pad_slices(v, n_slices, brain, fill=fill)  # noqa: E731
        xs.append(np.asarray(resize(crop(vol)), np.float32))
        masks.append(np.asarray(resize_nn(crop(lesion[None].astype(np.float32))))[0])
        brains.append(np.asarray(resize_nn(crop(brain[None].astype(np.float32))))[0] > 0)
        skulls.append(np.asarray(resize_nn(crop((hu >= BONE_MIN_HU)[None].astype(np.float32))))[0] > 0)
        if slice_labels is not None:
            flags = crop(np.asarray(r[slice_labels], np.float32)[None, None])  # (1, 1, n_slices)
            per_slice.append(torch.nn.functional.adaptive_max_pool1d(torch.from_numpy(flags[0]), size[2])[0].numpy())
    if not kept:
        raise DataError(Path(str(rows.image.iloc[0])).parent if len(rows) else Path("."),
                        "no CT series could be read: " + "; ".join(rejected[:3]))
    return ArrayDataset(torch.from_numpy(np.stack(xs)), np.asarray(label, int)[kept],
                        rows.iloc[kept].reset_index(drop=True), np.stack(masks), np.stack(brains), np.stack(skulls),
                        np.stack(per_slice).astype(int) if slice_labels is not None else None, rejected)


def strip_skull(data: ArrayDataset) -> ArrayDataset:
    """The same inputs with every voxel outside the brain mask set to 0 (skull stripping:
    bone, scalp and air removed, on the model's grid)."""
    brain = torch.from_numpy(data.brains[:, None].astype(np.float32))
    return replace(data, x=data.x * brain)


@dataclass
class HTTask:
    """Haemorrhagic transformation from NCCT (chapter 03), one row per CT scan.

    Attributes:
        data: CTNet's inputs (``ct_dataset``), labels and rows of every scan kept.
        label: what the positive class is ("haemorrhagic transformation", or the proxy
            label of a real dataset).
        proxy: True on a real dataset, where no public HT label exists and the task is
            the stated proxy ("any haemorrhage" per scan).
    """

    data: ArrayDataset
    label: str
    proxy: bool

    @property
    def groups(self) -> np.ndarray:
        return self.data.rows.patient_id.to_numpy()

    @property
    def has_masks(self) -> bool:
        return bool(self.data.masks.any())

    def latents(self) -> dict[str, np.ndarray] | None:
        """The true latents that bound the AUC (embedded cohort only, else None): the
        ``"oracle ceiling"`` (the whole HT risk, unseen thrombolysis, glucose and
        cardioembolic source included) and the ``"image-only ceiling"`` (its part that the
        CT and the age in its header carry, ``labels.ht_image_latent``)."""
        rows = self.data.rows
        if self.proxy or "ht_risk" not in rows:
            return None
        image = [ht_image_latent(r.lesion_volume_ml, bool(r.hyperdense_artery), int(r.fazekas), r.age)
                 for r in rows.itertuples()]
        return {"oracle ceiling": rows.ht_risk.to_numpy(float), "image-only ceiling": np.asarray(image)}

    def counts(self, tag: str) -> pd.DataFrame:
        """Patients and scans per class, the column title naming the data (``tag``)."""
        rows = self.data.rows.assign(label=np.where(self.data.y == 1, "positive", "negative"))
        table = rows.groupby("label").agg(patients=("patient_id", "nunique"), scans=("scan_id", "size")).T
        table.columns = [f"{self.label}: {c}" for c in table.columns]
        table.columns.name = tag
        return table


#: Proxy labels of the real datasets chapter 03 runs on: dataset -> (column, meaning).
HT_PROXY_LABELS = {"cq500": ("ICH", "any intracranial haemorrhage (majority of three reads)")}


def ht_task(table: pd.DataFrame, dataset: str, in_plane: int, skull_strip: bool = False) -> HTTask:
    """The HT task of a cohort table: every CT scan of an ischaemic patient with an HT label
    (the embedded cohort: baseline and follow-up scans), or on a real dataset every CT
    scan with its proxy label (``HT_PROXY_LABELS``), read by ``ct_dataset``; with
    ``skull_strip`` through ``strip_skull``.

    Raises:
        ValueError: a real dataset without a proxy label here.
    """
    rows = table[table.modality == "CT"]
    if dataset == "synthetic":
        rows = rows[(rows.stroke_type == "ischaemic") & rows.ht.notna()]
        label, column, proxy = "haemorrhagic transformation", "ht", False
    elif dataset in HT_PROXY_LABELS:
        column, label = HT_PROXY_LABELS[dataset]
        rows, proxy = rows[rows[column].notna()], True
    else:
        raise ValueError(f"chapter 03 has no label for dataset {dataset!r}; it runs on the embedded "
                         f"cohort or, with a proxy label, on {sorted(HT_PROXY_LABELS)}")
    data = ct_dataset(rows, rows[column].astype(int).to_numpy(), in_plane)
    return HTTask(strip_skull(data) if skull_strip else data, label, proxy)


#: Stroke types of chapter 04, in class-index order.
STROKE_TYPES = ("none", "ischaemic", "haemorrhagic")
#: The CT inputs chapter 04 compares: one brain window, or the three-window stack of the
#: RSNA 2019 solutions (``preprocess.WINDOWS`` names; the first is the brain window).
CT_WINDOW_SETS = {"brain window": ("brain",), "brain, subdural and bone windows": ("brain", "subdural", "bone")}
#: Slices per scan in chapter 04: the 28 slices of 5 mm around the brain resampled to 14 of 10 mm.
STROKE_TYPE_SLICES = 14


@dataclass
class StrokeTypeTask:
    """Stroke type (none / ischaemic / haemorrhagic) on CT and MRI (chapter 04), one row per patient.

    Attributes:
        ct: CT inputs (N, 3, X, Y, S): the brain, subdural and bone windows
            (``CT_WINDOW_SETS``; the brain window alone is channel 0), labels the class
            index in ``classes``.
        mri: DWI and ADC (N, 2, X, Y, S) of the same patients in the same order, robustly
            standardised (``dwi_dataset``); None where the data has no MRI.
        slice_labels: (N, S) the class of each CT slice, the labels of a slice-level
            stage (the RSNA 2019 recipe) and of the transfer source task: the patient's
            class on slices that show its lesion, "none" on the others (embedded cohort:
            from the lesion masks on the model's grid), or the slice's own class (a 2D
            slice dataset).
        classes: the class names, in index order.
        slices_are_scans: True for a 2D slice dataset (one slice per row, S = 1).
        read_ct: reads a row of ``ct.rows`` as a HU ``Volume`` (for measurements).
        mri_slice_labels: (N, S) the same for the MRI, from the DWI's own masks on its
            grid (the DWI is another acquisition: its slices are not the CT's); None
            without MRI.
    """

    ct: ArrayDataset
    mri: ArrayDataset | None
    slice_labels: np.ndarray
    classes: tuple[str, ...]
    slices_are_scans: bool = False
    read_ct: Callable[[pd.Series], Volume] = lambda row: read_ct_series(row.image)
    mri_slice_labels: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        return self.ct.y

    @property
    def groups(self) -> np.ndarray:
        return self.ct.rows.patient_id.to_numpy()

    def windows(self, name: str) -> torch.Tensor:
        """The CT inputs with the channels of the window set ``name`` (``CT_WINDOW_SETS``)."""
        chosen = CT_WINDOW_SETS[name]
        return self.ct.x[:, [CT_WINDOW_SETS["brain, subdural and bone windows"].index(w) for w in chosen]]

    def counts(self, tag: str) -> pd.DataFrame:
        """Rows per class (patients, or scans where a patient has several), the column
        title naming the data (``tag``)."""
        counts = pd.Series(self.y).map(dict(enumerate(self.classes))).value_counts()
        unit = "patients" if pd.Series(self.groups).is_unique else f"scans of {len(set(self.groups))} patients"
        table = counts.reindex(list(self.classes)).fillna(0).astype(int).to_frame(unit).T
        table.columns.name = tag
        return table


def _slice_inputs(rows: pd.DataFrame, label: np.ndarray, in_plane: int) -> ArrayDataset:
    """2D slices (TEKNOFEST) as scans of one slice: DICOM in HU through the three windows;
    a PNG (display grey levels, not HU) scaled to [0, 1] in every channel."""
    from stroke_lib.data.slices import read_slice

    windows = [WINDOWS[w] for w in CT_WINDOW_SETS["brain, subdural and bone windows"]]
    resize = Resize(spatial_size=(in_plane, in_plane, 1), mode="trilinear")
    xs = []
    for r in tqdm(rows.itertuples(), total=len(rows), desc="preparing slices", leave=False):
        plane = read_slice(r.image).data.astype(np.float32)
        if str(r.image).lower().endswith(".png"):
            vol = np.repeat((plane / 255.0)[None], len(windows), axis=0)
        else:
            vol = window_stack(plane, windows)
        xs.append(np.asarray(resize(vol), np.float32))
    n = len(rows)
    empty = np.zeros((n, in_plane, in_plane, 1))
    return ArrayDataset(torch.from_numpy(np.stack(xs)), label, rows.reset_index(drop=True),
                        empty.astype(np.float32), np.ones(empty.shape, bool))


#: Classes of RSNA ICH 2019 in chapter 04: its label is haemorrhage (any subtype) or none.
RSNA_CLASSES = ("none", "haemorrhagic")


def read_rsna_scan(row: pd.Series) -> Volume:
    """One RSNA scan (a row of ``rsna_scans``) as a HU ``Volume``: its slices read as one
    series with the release's pixel fix (``read_ct_series``, which names a bad file)."""
    return read_ct_series(row.image, fix=rsna_pixel_fix, paths=[Path(p) for p in row.slice_paths])


def rsna_scans(table: pd.DataFrame) -> pd.DataFrame:
    """RSNA ICH 2019's slice rows (``load_rsna_ich``) as one row per scan: ``patient_id``,
    ``scan_id``, ``site``, ``image`` (the slices' folder), ``slice_paths`` and
    ``slice_any`` (each slice's file and its any-haemorrhage label, inferior first) and
    ``scan_any``; scans sorted by patient."""
    ordered = table.sort_values(["scan_id", "slice_index"])
    scans = ordered.groupby("scan_id", sort=False).agg(
        patient_id=("patient_id", "first"), site=("site", "first"), slice_paths=("image", list),
        slice_any=("any", list), scan_any=("scan_any", "first")).reset_index()
    scans["image"] = [str(Path(paths[0]).parent) for paths in scans.slice_paths]
    scans["modality"] = "CT"
    return scans.sort_values(["patient_id", "scan_id"], ignore_index=True)


def stroke_type_task(table: pd.DataFrame, dataset: str, in_plane: int,
                     n_slices: int = STROKE_TYPE_SLICES, strip: bool = True) -> StrokeTypeTask:
    """The stroke-type task of a cohort table, one row per patient (per scan on RSNA).

    Embedded cohort: each patient's baseline CT (28 slices of 5 mm around the brain
    resampled to ``n_slices``, ``ct_dataset``) and the DWI and ADC of the same visit
    resized to the same array shape (the DWI covers its own field of view: its slices
    are labelled from its own masks, ``mri_slice_labels``); with ``strip`` the CT is
    brain-extracted at its own
    resolution before resizing (``ct_dataset``). TEKNOFEST 2021 (``dataset="teknofest_2021"``): every slice a
    scan of its own (``slices_are_scans``), no MRI. RSNA ICH 2019 (``"rsna_ich_2019"``):
    two classes (``RSNA_CLASSES``), every scan of every patient (``rsna_scans``, read with
    the release's pixel fix) prepared as the embedded cohort's CT, its slice labels the
    release's own (any haemorrhage per slice), no MRI, no lesion masks.

    Raises:
        ValueError: a dataset without stroke-type labels.
    """
    windows = CT_WINDOW_SETS["brain, subdural and bone windows"]
    if dataset == "rsna_ich_2019":
        scans = rsna_scans(table)
        ct = ct_dataset(scans, scans.scan_any.to_numpy(int), in_plane, windows=windows, out_slices=n_slices,
                        strip=strip, slice_labels="slice_any", reader=read_rsna_scan)
        return StrokeTypeTask(ct, None, ct.slice_labels, RSNA_CLASSES, read_ct=read_rsna_scan)
    if "stroke_type" not in table:
        raise ValueError(f"chapter 04 needs stroke-type labels (none / ischaemic / haemorrhagic); {dataset!r} "
                         "has none")
    index = {c: k for k, c in enumerate(STROKE_TYPES)}
    if dataset == "teknofest_2021":
        rows = table.sort_values("patient_id", ignore_index=True)
        y = rows.stroke_type.map(index).to_numpy(int)
        ct = _slice_inputs(rows, y, in_plane)
        return StrokeTypeTask(ct, None, y[:, None].copy(), STROKE_TYPES, True)
    ct_rows = table[(table.modality == "CT") & (table.followup == 0)].sort_values("patient_id", ignore_index=True)
    ct = ct_dataset(ct_rows, ct_rows.stroke_type.map(index).to_numpy(int), in_plane, windows=windows,
                    out_slices=n_slices, strip=strip)
    mri = None
    if (table.modality == "DWI").any():
        dwi_rows = table[table.modality == "DWI"].set_index("patient_id").loc[ct.rows.patient_id].reset_index()
        mri = dwi_dataset(dwi_rows, ct.y, (in_plane, in_plane, n_slices))
    def by_slice(data: ArrayDataset) -> np.ndarray:
        return np.where(data.masks.any(axis=(1, 2)), data.y[:, None], index["none"])

    return StrokeTypeTask(ct, mri, by_slice(ct), STROKE_TYPES,
                          mri_slice_labels=by_slice(mri) if mri is not None else None)
