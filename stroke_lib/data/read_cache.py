"""Decoded volumes kept in memory while their files are unchanged.

A chapter reads each CT series at least twice: once when the cohort is loaded (every
series is validated, so a bad file is rejected before training) and again to prepare the
model's inputs, and some chapters a third time for their measurements. Decoding a
30-slice series with pydicom takes about 50 ms; copying it back from memory well under
one. ``ReadCache`` keeps what a reader decoded, keyed by the files it read and their
stamps (size, modification time in ns, inode), so a file rewritten since is read again.

Two rules keep it correct:

- **Racy stamps are never cached.** A file modified within ``RACY_SECONDS`` of the read
  may change again without its stamp changing (file systems keep times in coarse steps),
  as git's index treats such files; it is read from disk every time until it has aged.
- **Callers get copies.** A caller that changes its array in place cannot change what the
  next caller reads.

The cache fills until it holds ``max_bytes`` and then keeps what it has (no eviction): a
cohort larger than the cache, read twice in the same order, still finds its first part,
where a least-recently-used cache would miss every time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Hashable, Iterable

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
        max_bytes: the most bytes of voxel data held (per process).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._volumes: dict[Stamp, Volume] = {}
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, stamp: Stamp | None) -> Volume | None:
        """A copy of the volume read under ``stamp``, or ``None``."""
        vol = self._volumes.get(stamp) if stamp is not None else None
        if vol is None:
            self.misses += 1
            return None
        self.hits += 1
        return _copy(vol)

    def put(self, stamp: Stamp | None, vol: Volume) -> None:
        """Keep a copy of ``vol`` under ``stamp`` if it fits (nothing under ``None``)."""
        if stamp is None or stamp in self._volumes or self.bytes + vol.data.nbytes > self.max_bytes:
            return
        self._volumes[stamp] = _copy(vol)
        self.bytes += vol.data.nbytes

    def clear(self) -> None:
        """Forget every volume (and the counts)."""
        self._volumes.clear()
        self.bytes = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._volumes)
