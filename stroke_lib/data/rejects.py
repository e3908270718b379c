"""The rejects table: scans skipped or repaired while a cohort was loaded.

Every row names the file, the problem in words a user can act on, and the action taken
(``skipped``: the scan is not in the cohort; ``repaired``: it is, with the change noted).
Readers raise ``DataError`` for anything wrong with a file; ``Collector`` turns those into
rows, so one bad scan never sinks a cohort. Any other exception is a bug in this project
and propagates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from stroke_lib.data.volume import Volume
from stroke_lib.errors import DataError

REJECT_COLUMNS = ["patient_id", "file", "problem", "action"]


def reject(patient_id: str, path: str | Path, problem: str, action: str) -> dict[str, object]:
    """One rejects-table row."""
    return {"patient_id": patient_id, "file": str(path), "problem": problem, "action": action}


class Collector:
    """Checks scans, keeping rejects instead of raising.

    Every path must exist; with ``validate`` each is also read once through its reader, so
    unreadable files are rejected now (not mid-training) and repairs are listed.
    """

    def __init__(self, validate: bool) -> None:
        self.validate = validate
        self.rows: list[dict[str, object]] = []

    def add(self, patient_id: str, path: str | Path, problem: str, action: str = "skipped") -> None:
        """Record a row."""
        self.rows.append(reject(patient_id, path, problem, action))

    def read(self, patient_id: str, path: Path, reader: Callable[[Path], Volume]) -> Volume | None:
        """Read one scan; ``None`` (and a reject row) when the file cannot be used."""
        if not path.exists():
            self.add(patient_id, path, "file not found")
            return None
        try:
            vol = reader(path)
        except DataError as err:
            self.add(patient_id, err.path, err.problem)
            return None
        for note in vol.notes:
            self.add(patient_id, path, note, "repaired")
        return vol

    def check(self, patient_id: str, paths: list[Path], reader: Callable[[Path], Volume]) -> bool:
        """Whether every one of ``paths`` exists and (with ``validate``) reads."""
        for path in paths:
            if not path.exists():
                self.add(patient_id, path, "file not found")
                return False
            if self.validate and self.read(patient_id, path, reader) is None:
                return False
        return True

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=REJECT_COLUMNS)
