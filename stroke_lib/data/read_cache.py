"""Decoded volumes kept, in memory and on disk for other processes, while their files are
unchanged.

A chapter reads each CT series at least twice: once when the cohort is loaded (every
series is validated, so a bad file is rejected before training) and again to prepare the
model's inputs, and some chapters a third time for their measurements. Decoding a
30-slice series with pydicom takes about 50 ms; copying it back from memory well under
one. ``ReadCache`` keeps what a reader decoded, keyed by the files it read and their
stamps (size, modification time in ns, inode), so a file rewritten since is read again.
(Not the status-change time: hard-linking a cohort's images into a sibling cohort, as
``generate_cohort`` does for another HT rate, changes it without changing a byte.)

Two rules keep it correct:

- **Racy stamps are never cached.** A file modified within ``RACY_SECONDS`` of the read
  may change again without its stamp changing (file systems keep times in coarse steps),
  as git's index treats such files; it is read from disk every time until it has aged.
- **Callers get copies.** A caller that changes its array in place cannot change what the
  next caller reads.

The cache fills until it holds ``max_bytes`` and then keeps what it has (no eviction): a
cohort larger than the cache, read twice in the same order, still finds its first part,
where a least-recently-used cache would miss every time.

Each chapter runs in a process of its own, so a memory cache alone decodes the cohort once
per chapter. Given a ``folder``, the cache also keeps each volume there as one ``.npz`` file
(voxels, affine, source and notes; no pickle) named by a hash of its stamp and the reader's
``version``, so the next process copies it from disk instead of decoding it. The same two
rules hold, and two more:

- **A reader that changes misses.** ``version`` names the reader's code and libraries; a
  file written under another version is never read.
- **A bad cache file is a miss.** One that cannot be loaded, or whose stored stamp and
  version are not the ones asked for, is removed and the volume read from its source again.

Files are written whole (to a temporary name, then renamed), so concurrent processes never
read half a file; the folder, like memory, fills to ``max_disk_bytes`` and keeps what it has.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Hashable, Iterable

import numpy as np

from stroke_lib.data.volume import Volume

#: A file changed this recently (seconds) is read from disk, never from the cache.
RACY_SECONDS = 2.0

#: Stamp of a set of files: (path, size in bytes, modification time in ns, inode) each.
Stamp = tuple[Hashable, ...]


def file_stamps(paths: Iterable[Path], racy_seconds: float = RACY_SECONDS) -> Stamp | None:
    """The stamps of ``paths`` in their order, or ``None`` when one was modified within
    ``racy_seconds`` of now (or cannot be stat-ed): such files are not cached."""
    now = time.time_ns()
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None
        if now - st.st_mtime_ns < racy_seconds * 1e9:
            return None
        out.append((str(p), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def _copy(vol: Volume) -> Volume:
    return Volume(data=vol.data.copy(), affine=vol.affine.copy(), source=vol.source, notes=list(vol.notes))


class ReadCache:
    """Volumes by stamp (``file_stamps`` of the files read, plus the reader's own key).

    Args:
        max_bytes: the most bytes of voxel data held in memory (per process).
        folder: where volumes are also kept on disk, for other processes; a function, so
            the folder follows ``STROKE_DATA_DIR`` when it is set after import. ``None``:
            memory only.
        version: the reader's code and library versions; part of every file's name.
        max_disk_bytes: the most bytes of files kept in ``folder``.
    """

    def __init__(self, max_bytes: int, folder: Callable[[], Path] | None = None, version: str = "",
                 max_disk_bytes: int = 8 << 30) -> None:
        self.max_bytes = max_bytes
        self.folder = folder
        self.version = version
        self.max_disk_bytes = max_disk_bytes
        self._volumes: dict[Stamp, Volume] = {}
        self._disk_bytes: dict[Path, int] = {}  # folder -> bytes of its files, counted on first use
        self.bytes = 0
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0

    def get(self, stamp: Stamp | None) -> Volume | None:
        """A copy of the volume read under ``stamp``, from memory or else from the folder,
        or ``None``."""
        if stamp is None:
            self.misses += 1
            return None
        vol = self._volumes.get(stamp)
        if vol is None:
            vol = self._load(stamp)
            if vol is None:
                self.misses += 1
                return None
            self.disk_hits += 1
            self._keep(stamp, vol)
            return vol
        self.hits += 1
        return _copy(vol)

    def put(self, stamp: Stamp | None, vol: Volume) -> None:
        """Keep a copy of ``vol`` under ``stamp`` if it fits, in memory and in the folder
        (nothing under ``None``)."""
        if stamp is None or stamp in self._volumes:
            return
        self._keep(stamp, vol)
        self._save(stamp, vol)

    def clear(self) -> None:
        """Forget every volume held in memory (and the counts); files in the folder stay."""
        self._volumes.clear()
        self._disk_bytes.clear()
        self.bytes = self.hits = self.disk_hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._volumes)

    def _keep(self, stamp: Stamp, vol: Volume) -> None:
        if self.bytes + vol.data.nbytes <= self.max_bytes:
            self._volumes[stamp] = _copy(vol)
            self.bytes += vol.data.nbytes

    def _key(self, stamp: Stamp) -> str:
        return json.dumps([self.version, [list(s) if isinstance(s, tuple) else s for s in stamp]])

    def _file(self, stamp: Stamp) -> Path | None:
        if self.folder is None:
            return None
        return Path(self.folder()) / f"{hashlib.sha256(self._key(stamp).encode()).hexdigest()[:40]}.npz"

    def _load(self, stamp: Stamp) -> Volume | None:
        path = self._file(stamp)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta["key"] != self._key(stamp):
                    raise ValueError("another stamp or version")
                return Volume(data=z["data"], affine=z["affine"], source=Path(meta["source"]),
                              notes=list(meta["notes"]))
        except Exception:  # damaged, cut short or not ours: read from the source instead
            path.unlink(missing_ok=True)
            return None

    def _save(self, stamp: Stamp, vol: Volume) -> None:
        path = self._file(stamp)
        if path is None or path.exists():
            return
        folder, tmp = path.parent, path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder not in self._disk_bytes:
                self._disk_bytes[folder] = sum(p.stat().st_size for p in folder.glob("*.npz"))
            if self._disk_bytes[folder] + vol.data.nbytes > self.max_disk_bytes:
                return
            meta = json.dumps({"key": self._key(stamp), "source": str(vol.source), "notes": list(vol.notes)})
            with open(tmp, "wb") as f:
                np.savez(f, data=vol.data, affine=vol.affine, meta=np.array(meta))
            os.replace(tmp, path)
            self._disk_bytes[folder] += path.stat().st_size
        except OSError:  # a full or read-only disk: the volume stays in memory only
            tmp.unlink(missing_ok=True)
