"""The cache of decoded CT series (``stroke_lib.data.read_cache``): in memory, and in a folder
that other processes read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def _count_reads(monkeypatch) -> list[Path]:
    """The list of every DICOM file decoded from disk from now on."""
    decoded: list[Path] = []
    real = dicom.read_dicom

    def counting(path, header_only=False):
        decoded.append(Path(path))
        return real(path, header_only)

    monkeypatch.setattr(dicom, "read_dicom", counting)
    return decoded


@pytest.fixture
def counted_reads(monkeypatch) -> list[Path]:
    """An empty series cache in memory only, and the list of every DICOM file decoded."""
    monkeypatch.setattr(dicom, "SERIES_CACHE", ReadCache(max_bytes=1 << 20))
    return _count_reads(monkeypatch)


@pytest.fixture
def disk_reads(monkeypatch, tmp_path) -> list[Path]:
    """An empty series cache that also keeps volumes in ``tmp_path/cache``, and the list
    of every DICOM file decoded."""
    monkeypatch.setattr(dicom, "SERIES_CACHE", ReadCache(max_bytes=1 << 20, folder=lambda: tmp_path / "cache",
                                                         version="v1"))
    return _count_reads(monkeypatch)


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


def test_a_hard_link_to_a_cached_series_elsewhere_reads_the_same_volume(tmp_path, disk_reads):
    """As a sibling cohort links the images of another: the original's entry still serves
    the original (the link changed no stamp of it), and the link's folder is its own entry."""
    paths = _series(tmp_path / "s", 14)
    first = read_ct_series(tmp_path / "s")
    (tmp_path / "t").mkdir()
    for p in paths:
        os.link(p, tmp_path / "t" / p.name)
    dicom.SERIES_CACHE.clear()
    assert np.array_equal(read_ct_series(tmp_path / "s").data, first.data)
    assert dicom.SERIES_CACHE.disk_hits == 1 and len(disk_reads) == len(paths)
    linked = read_ct_series(tmp_path / "t")
    assert np.array_equal(linked.data, first.data) and linked.source == tmp_path / "t"


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



def test_a_series_kept_in_the_folder_is_read_back_without_decoding(tmp_path, disk_reads):
    paths = _series(tmp_path / "s", 7)
    first = read_ct_series(tmp_path / "s")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    dicom.SERIES_CACHE.clear()  # memory forgotten, as in the next process
    second = read_ct_series(tmp_path / "s")
    assert len(disk_reads) == len(paths) and dicom.SERIES_CACHE.disk_hits == 1
    assert second.data.dtype == first.data.dtype and np.array_equal(first.data, second.data)
    assert np.array_equal(first.affine, second.affine)
    assert second.source == first.source and second.notes == first.notes
    third = read_ct_series(tmp_path / "s")  # now from memory
    assert dicom.SERIES_CACHE.hits == 1 and np.array_equal(third.data, first.data)


def test_a_rewritten_file_is_decoded_again_despite_the_folder(tmp_path, disk_reads):
    paths = _series(tmp_path / "s", 8)
    before = read_ct_series(tmp_path / "s")
    _series(tmp_path / "s", 9)
    _age(paths, seconds=30.0)
    dicom.SERIES_CACHE.clear()
    after = read_ct_series(tmp_path / "s")
    assert len(disk_reads) == 2 * len(paths) and not np.array_equal(before.data, after.data)


def test_a_file_of_another_reader_version_is_never_read(tmp_path, disk_reads, monkeypatch):
    paths = _series(tmp_path / "s", 10)
    read_ct_series(tmp_path / "s")
    monkeypatch.setattr(dicom, "SERIES_CACHE", ReadCache(max_bytes=1 << 20, folder=lambda: tmp_path / "cache",
                                                         version="v2"))
    read_ct_series(tmp_path / "s")
    assert len(disk_reads) == 2 * len(paths) and dicom.SERIES_CACHE.disk_hits == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # one per version


@pytest.mark.parametrize("damage", ["cut short", "another stamp"])
def test_a_bad_cache_file_is_a_miss_and_is_replaced(tmp_path, disk_reads, damage):
    paths = _series(tmp_path / "s", 11)
    first = read_ct_series(tmp_path / "s")
    (kept,) = (tmp_path / "cache").glob("*.npz")
    if damage == "cut short":
        kept.write_bytes(kept.read_bytes()[:300])
    else:  # a valid file of another series under this series' name
        _series(tmp_path / "t", 12)
        read_ct_series(tmp_path / "t")
        (other,) = set((tmp_path / "cache").glob("*.npz")) - {kept}
        os.replace(other, kept)
    dicom.SERIES_CACHE.clear()
    again = read_ct_series(tmp_path / "s")
    assert np.array_equal(again.data, first.data)
    assert len([p for p in disk_reads if p.parent == tmp_path / "s"]) == 2 * len(paths)
    dicom.SERIES_CACHE.clear()
    read_ct_series(tmp_path / "s")  # the file written again is good
    assert dicom.SERIES_CACHE.disk_hits == 1


def test_a_full_folder_keeps_what_it_holds(tmp_path):
    vol = lambda v: Volume(np.full((100,), v, np.float32), np.eye(4), Path("x"))  # noqa: E731  400 bytes
    probe = ReadCache(max_bytes=0, folder=lambda: tmp_path / "probe")
    probe.put(("p",), vol(0))
    (one,) = (tmp_path / "probe").glob("*.npz")
    cache = ReadCache(max_bytes=0, folder=lambda: tmp_path / "cache", max_disk_bytes=2 * one.stat().st_size + 100)
    for k in range(6):
        cache.put((f"s{k}",), vol(k))
    kept = [k for k in range(6) if cache.get((f"s{k}",)) is not None]
    assert kept == [0, 1] and len(cache) == 0  # two files fit; nothing is held in memory
    assert cache.get(("s1",)).data[0] == 1


def test_the_next_process_reads_the_cohort_s_series_from_the_data_directory(tmp_path):
    """The library's own cache, across two processes: the second decodes no file."""
    _series(tmp_path / "s", 13)
    script = (
        "import json, sys\n"
        "from stroke_lib.data import dicom, read_ct_series\n"
        "v = read_ct_series(sys.argv[1])\n"
        "c = dicom.SERIES_CACHE\n"
        "print(json.dumps([c.disk_hits, c.misses, float(v.data.sum())]))\n"
    )
    env = {**os.environ, "STROKE_DATA_DIR": str(tmp_path / "data")}
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, str(tmp_path / "s")], env=env, check=True,
                                      capture_output=True, text=True).stdout) for _ in range(2)]
    assert runs[0][:2] == [0, 1] and runs[1][:2] == [1, 0] and runs[0][2] == runs[1][2]
    assert len(list((tmp_path / "data" / "cache" / "ct-series").glob("*.npz"))) == 1
