"""2D samples preprocessed once into a folder on disk, read back memory-mapped for training.

RSNA ICH 2019 has 752,803 CT slices: at 3 windows of 256 x 256 pixels that is about 296 GB
in float16, far beyond memory. ``build_disk_cache`` streams samples (any iterable, so a
caller can preprocess one slice at a time) into one folder:

- ``x.npy``: float16 (N, C, H, W), written with ``numpy.lib.format.open_memmap``;
- ``y.npy``: int64 labels (N,);
- ``index.json``: the index table, one row per sample (``patient_id`` and the sample's
  own columns: scan, slice, ...), in pandas' table schema so every column keeps its dtype;
- ``COMPLETE.json``: written last, the fingerprint of the settings the cache was built
  with (the caller's ``settings``, N and this format). A folder without it is an
  unfinished build.

Why float16: the inputs are windowed or normalised intensities (CT windows scaled to
[0, 1], z-scored MRI), where float16's 11-bit significand is exact to 1 part in 2,048,
finer than one HU in an 80 HU brain window (1 part in 80); it halves the disk, the page
cache and the bytes read per epoch, which bound the speed of training from disk. Values
beyond float16's range (``|x| > 65,504``) are refused, so store preprocessed inputs, not raw
HU. The dataset returns float32, as ``train.fit`` trains on.

``DiskCacheDataset`` reads the folder as a map-style ``torch.utils.data.Dataset`` of
``(x, y)`` rows for ``train.fit`` and ``train.predict``; the image file is mapped lazily
in each process that reads it (each ``DataLoader`` worker maps it on its first row).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd
import torch
from numpy.lib.format import open_memmap
from torch.utils.data import Dataset
from tqdm import tqdm

from stroke_lib.errors import DataError

X_FILE, Y_FILE, INDEX_FILE, MARKER_FILE = "x.npy", "y.npy", "index.json", "COMPLETE.json"
#: The layout of the folder; a new layout changes every fingerprint, so old caches are rebuilt.
FORMAT_VERSION = 1
STORED_DTYPE = np.float16


class Sample(NamedTuple):
    """One 2D sample.

    Attributes:
        x: float32 array (C, H, W), preprocessed (windowed or normalised intensities).
        label: int label (0/1, or a class index 0..K-1).
        patient_id: the patient, for patient-level splits.
        columns: more columns of this sample's row of the index table (scan_id,
            slice index, ...); every sample of a cache has the same keys.
    """

    x: np.ndarray
    label: int
    patient_id: str
    columns: Mapping[str, object] = MappingProxyType({})


def fingerprint(settings: Mapping[str, object], n: int) -> str:
    """SHA-256 (hex) of what a cache is built from: the caller's ``settings`` (everything
    the samples depend on: dataset, windows, in-plane pixels, ...; JSON-serialisable),
    the number of samples ``n`` and the folder's format. The samples themselves are not
    hashed (the point is not to read 750k slices to know that the cache is current)."""
    text = json.dumps({"settings": dict(settings), "n": n, "dtype": np.dtype(STORED_DTYPE).name,
                       "format": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def is_complete(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds a finished cache whose marker has fingerprint ``key``."""
    try:
        return json.loads((Path(folder) / MARKER_FILE).read_text())["fingerprint"] == key
    except (OSError, ValueError, KeyError, TypeError):  # missing or unreadable: not complete
        return False


def build_disk_cache(folder: Path, samples: Iterable[Sample], n: int, settings: Mapping[str, object],
                     progress: bool = True) -> "DiskCacheDataset":
    """The cache of ``samples`` in ``folder``, written unless it exists; returns its dataset.

    A complete cache with the same ``fingerprint(settings, n)`` is reused without reading
    ``samples`` at all (pass a generator so nothing is preprocessed then); an unfinished
    or mismatching one is rebuilt in place.

    Args:
        folder: the cache's folder (created).
        samples: exactly ``n`` samples (``Sample``) of one shape (C, H, W); read once, in order.
        n: the number of samples (the files are allocated before the first is read).
        settings: what the samples depend on (see ``fingerprint``).
        progress: show a tqdm bar over the samples while writing.

    Raises ``ValueError`` for a count other than ``n``, a sample of another shape or set
    of columns, or values that float16 cannot hold.
    """
    folder, key = Path(folder), fingerprint(settings, n)
    if not is_complete(folder, key):
        _write(folder, samples, n, {"fingerprint": key, "settings": dict(settings), "n": n}, progress)
    return DiskCacheDataset(folder)


def _write(folder: Path, samples: Iterable[Sample], n: int, marker: dict, progress: bool) -> None:
    """Write ``x.npy``, ``y.npy`` and ``index.json`` from ``samples``, then ``marker`` last."""
    if n < 1:
        raise ValueError(f"a cache needs at least one sample, not n={n}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER_FILE).unlink(missing_ok=True)  # first: an interrupted build is never complete
    x = y = None
    rows: dict[str, list] = {}
    i = -1
    for i, sample in enumerate(tqdm(samples, total=n, desc="caching", disable=not progress)):
        if i == n:
            raise ValueError(f"more than n={n} samples")
        image = _stored(sample, i, None if x is None else x.shape[1:])
        if x is None:
            x = open_memmap(folder / X_FILE, mode="w+", dtype=STORED_DTYPE, shape=(n, *image.shape))
            y = open_memmap(folder / Y_FILE, mode="w+", dtype=np.int64, shape=(n,))
            rows = {"patient_id": [], **{name: [] for name in sample.columns}}
        _append_row(rows, sample, i)
        x[i], y[i] = image, int(sample.label)
    if i + 1 != n:
        raise ValueError(f"{i + 1} samples for a cache of n={n}")
    x.flush()
    y.flush()
    (folder / INDEX_FILE).write_text(pd.DataFrame(rows).to_json(orient="table", index=False))
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=1, default=str) + "\n")


def _stored(sample: Sample, i: int, shape: tuple[int, ...] | None) -> np.ndarray:
    """Sample ``i``'s image as float16 (C, H, W), checked against the cache's ``shape``."""
    image = np.asarray(sample.x, dtype=np.float32)
    if image.ndim != 3 or (shape is not None and image.shape != tuple(shape)):
        raise ValueError(f"sample {i} (patient {sample.patient_id}) has shape {image.shape}, "
                         f"not {tuple(shape) if shape else '(C, H, W)'}")
    if not (np.isfinite(image).all() and np.abs(image).max() <= np.finfo(STORED_DTYPE).max):
        raise ValueError(f"sample {i} (patient {sample.patient_id}) has values that float16 cannot hold "
                         "(NaN, infinite or |x| > 65,504): cache preprocessed inputs, not raw HU")
    return image.astype(STORED_DTYPE)


def _append_row(rows: dict[str, list], sample: Sample, i: int) -> None:
    """Add sample ``i``'s row (patient_id and its columns) to the index table's columns."""
    if set(sample.columns) != set(rows) - {"patient_id"}:
        raise ValueError(f"sample {i} has columns {sorted(sample.columns)}, the first had "
                         f"{sorted(set(rows) - {'patient_id'})}")
    rows["patient_id"].append(str(sample.patient_id))
    for name, value in sample.columns.items():
        rows[name].append(value)


class DiskCacheDataset(Dataset):
    """A finished cache (``build_disk_cache``) as a map-style dataset of ``(x, y)`` rows.

    ``dataset[i]`` is ``(x, y)``: x a float32 tensor (C, H, W) read from the memory-mapped
    ``x.npy``, y the int label. The labels and the index table are read into memory when
    the dataset is opened (8 bytes and one table row per sample); the images are mapped
    lazily, on the first row each process reads, so a ``DataLoader``'s workers map the
    file themselves.

    Attributes:
        folder: the cache's folder.
        index: the cache rows this dataset holds, in order (all of them, or a ``subset``).

    Raises ``DataError`` naming the file when the folder has no completion marker or a
    file of it cannot be read or disagrees with the others (a truncated ``x.npy``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._marker = _read_marker(self.folder / MARKER_FILE)
        self._labels = _read_labels(self.folder / Y_FILE, self._marker["n"])
        self._table = _read_table(self.folder / INDEX_FILE, len(self._labels))
        _check_images(self.folder / X_FILE, len(self._labels))
        self._images: np.ndarray | None = None
        self.index = np.arange(len(self._labels))

    @property
    def y(self) -> np.ndarray:
        """The labels (N,) of this dataset's rows, int64."""
        return self._labels[self.index]

    @property
    def rows(self) -> pd.DataFrame:
        """The index table's rows of this dataset (patient_id and the samples' columns)."""
        return self._table.iloc[self.index].reset_index(drop=True)

    @property
    def settings(self) -> dict:
        """The settings the cache was built with."""
        return self._marker["settings"]

    def subset(self, index: np.ndarray) -> "DiskCacheDataset":
        """The rows ``index`` (positions or a boolean mask over this dataset's rows), sharing
        the files and the tables already read."""
        part = copy.copy(self)
        part.index = self.index[np.asarray(index)]
        return part

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._images is None:
            self._images = np.load(self.folder / X_FILE, mmap_mode="r")
        row = self.index[i]
        return torch.from_numpy(self._images[row].astype(np.float32)), int(self._labels[row])

    def __getstate__(self) -> dict:
        """Pickled (to a spawned worker) without the mapping: each process maps the file itself."""
        return {**self.__dict__, "_images": None}


def _read_marker(path: Path) -> dict:
    if not path.exists():
        raise DataError(path, "missing: the cache was never finished; build it again")
    try:
        marker = json.loads(path.read_text())
        return {"settings": marker["settings"], "n": int(marker["n"]), "fingerprint": marker["fingerprint"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"not a cache marker ({type(err).__name__}: {err})") from None


def _read_labels(path: Path, n: int) -> np.ndarray:
    try:
        labels = np.load(path)
    except (OSError, ValueError) as err:
        raise DataError(path, f"cannot be read ({type(err).__name__}: {err})") from None
    if labels.shape != (n,):
        raise DataError(path, f"labels of shape {labels.shape}, not ({n},) as the marker says")
    return labels


def _read_table(path: Path, n: int) -> pd.DataFrame:
    try:
        table = pd.read_json(io.StringIO(path.read_text()), orient="table")
    except (OSError, ValueError, KeyError) as err:
        raise DataError(path, f"cannot be read ({type(err).__name__}: {err})") from None
    if len(table) != n or "patient_id" not in table:
        raise DataError(path, f"{len(table)} rows (patient_id {'present' if 'patient_id' in table else 'missing'}) "
                        f"for {n} labels")
    return table


def _check_images(path: Path, n: int) -> None:
    """Map ``x.npy`` once to check its header and length against ``n`` labels."""
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:  # a truncated file: "mmap length is greater than file size"
        raise DataError(path, f"cannot be read ({type(err).__name__}: {err})") from None
    if images.ndim != 4 or len(images) != n or images.dtype != STORED_DTYPE:
        raise DataError(path, f"{images.dtype} images of shape {images.shape}, not {np.dtype(STORED_DTYPE).name} "
                        f"({n}, C, H, W)")
