"""The in-memory cache of decoded CT series (``stroke_lib.data.read_cache``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from stroke_lib.data import dicom, read_ct_series
from stroke_lib.data.read_cache import RACY_SECONDS, ReadCache, file_stamps
from stroke_lib.data.synthetic.writers import write_ct_series
from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError


def _series(folder: Path, seed: int, n: int = 4) -> list[Path]:
    """A small CT series, its files dated a minute back (older than the racy window)."""
    hu = np.random.default_rng(seed).integers(-1000, 1500, (8, 8, n)).astype(float)
    paths = write_ct_series(folder, hu, (0.5, 0.5, 5.0), np.zeros(3), f"P{seed}", f"key{seed}", "A")
    _age(paths)
    return paths


def _age(paths: list[Path], seconds: float = 60.0) -> None:
    old = time.time() - seconds
    for p in paths:
        os.utime(p, (old, old))


@pytest.fixture
def counted_reads(monkeypatch) -> list[Path]:
    """An empty series cache, and the list of every DICOM file decoded from disk."""
    monkeypatch.setattr(dicom, "SERIES_CACHE", ReadCache(max_bytes=1 << 20))
    decoded: list[Path] = []
    real = dicom.read_dicom

    def counting(path, header_only=False):
        decoded.append(Path(path))
        return real(path, header_only)

    monkeypatch.setattr(dicom, "read_dicom", counting)
    return decoded


def test_a_second_read_of_an_unchanged_series_decodes_no_file_and_equals_the_first(tmp_path, counted_reads):
    paths = _series(tmp_path / "s", 1)
    first = read_ct_series(tmp_path / "s")
    assert len(counted_reads) == len(paths)
    second = read_ct_series(tmp_path / "s")
    assert len(counted_reads) == len(paths)  # nothing decoded again
    assert np.array_equal(first.data, second.data) and np.array_equal(first.affine, second.affine)
    assert dicom.SERIES_CACHE.hits == 1


def test_the_caller_gets_a_copy(tmp_path, counted_reads):
    _series(tmp_path / "s", 2)
    first = read_ct_series(tmp_path / "s")
    kept = first.data.copy()
    first.data[:] = 0.0
    first.affine[0, 0] = 99.0
    again = read_ct_series(tmp_path / "s")
    assert np.array_equal(again.data, kept) and again.affine[0, 0] != 99.0


def test_a_rewritten_file_is_read_again(tmp_path, counted_reads):
    paths = _series(tmp_path / "s", 3)
    before = read_ct_series(tmp_path / "s")
    _series(tmp_path / "s", 4)  # other values in the same files, dated otherwise
    _age(paths, seconds=30.0)
    after = read_ct_series(tmp_path / "s")
    assert len(counted_reads) == 2 * len(paths)
    assert not np.array_equal(before.data, after.data)


def test_a_file_changed_just_now_is_never_cached(tmp_path, counted_reads):
    paths = _series(tmp_path / "s", 5)
    os.utime(paths[0])  # modified now: its stamp cannot be trusted yet
    assert file_stamps(paths) is None
    read_ct_series(tmp_path / "s")
    read_ct_series(tmp_path / "s")
    assert len(counted_reads) == 2 * len(paths) and len(dicom.SERIES_CACHE) == 0
    assert file_stamps(paths, racy_seconds=0.0) is not None
    assert RACY_SECONDS > 0


def test_a_damaged_series_raises_every_time(tmp_path, counted_reads):
    paths = _series(tmp_path / "s", 6)
    paths[1].write_bytes(paths[1].read_bytes()[:200])
    _age(paths)
    for _ in range(2):
        with pytest.raises(DataError) as err:
            read_ct_series(tmp_path / "s")
        assert Path(err.value.path).name == paths[1].name
    assert len(dicom.SERIES_CACHE) == 0


def test_a_full_cache_keeps_what_it_holds():
    cache = ReadCache(max_bytes=100)
    vol = lambda v: Volume(np.full((5,), v, np.float32), np.eye(4), Path("x"))  # noqa: E731  20 bytes
    stamps = [(f"s{k}",) for k in range(8)]
    for k, stamp in enumerate(stamps):
        cache.put(stamp, vol(k))
    assert len(cache) == 5 and cache.bytes == 100
    assert cache.get(stamps[0]).data[0] == 0 and cache.get(stamps[7]) is None
    assert cache.get(None) is None

