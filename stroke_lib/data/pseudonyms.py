"""Stable pseudonyms for patient IDs taken from folder names.

A folder of DICOM series may be named after the patient (a name, a hospital number). Such
IDs never enter a cohort table: ``Pseudonyms.of(name)`` gives a salted hash (HMAC-SHA256
with a random salt kept under the data directory), the same for the same name on this
machine, and the map back to the folder names is written under the data directory
(``pseudonyms/<dataset>.tsv``), never into the book.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

import pandas as pd

from stroke_lib.paths import data_dir

#: Hex digits of the hash kept in a pseudonym (40 bits: no collision in any real cohort).
DIGITS = 10


def _salt(folder: Path) -> bytes:
    path = folder / "salt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


class Pseudonyms:
    """Pseudonyms of one dataset's folder-derived IDs; ``save()`` writes the map.

    Args:
        dataset: the dataset name (the map's file name, and part of the hash so that one
            name gets different pseudonyms in different datasets).
        prefix: the start of every pseudonym, e.g. ``"P"`` gives ``"P-3f2a9c01de"``.
    """

    def __init__(self, dataset: str, prefix: str = "P") -> None:
        self.folder = data_dir() / "pseudonyms"
        self.dataset = dataset
        self.prefix = prefix
        self._key = _salt(self.folder)
        self.mapping: dict[str, str] = {}

    def of(self, original: str) -> str:
        """The pseudonym of ``original``."""
        digest = hmac.new(self._key, f"{self.dataset}\0{original}".encode(), hashlib.sha256)
        alias = f"{self.prefix}-{digest.hexdigest()[:DIGITS]}"
        self.mapping[alias] = original
        return alias

    def save(self) -> Path:
        """Merge this run's pseudonyms into ``<data dir>/pseudonyms/<dataset>.tsv``
        (columns ``pseudonym``, ``original``) and return its path."""
        path = self.folder / f"{self.dataset}.tsv"
        new = pd.DataFrame(sorted(self.mapping.items()), columns=["pseudonym", "original"])
        if path.exists():
            old = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
            new = pd.concat([old, new]).drop_duplicates("pseudonym").sort_values("pseudonym")
        new.to_csv(path, sep="\t", index=False)
        path.chmod(0o600)
        return path
