"""The one exception type for bad input data."""

from __future__ import annotations

import re
from pathlib import Path

#: A DICOM UID (dotted digits, at least five parts): never shown in a message.
_UID = re.compile(r"\b[0-2](?:\.(?:0|[1-9]\d*)){4,}\b")


def scrub_uids(text: str) -> str:
    """``text`` with every DICOM UID replaced by ``<UID>``."""
    return _UID.sub("<UID>", text)


class DataError(ValueError):
    """A file that cannot be used, with the file named in the message.

    Attributes:
        path: the offending file or folder.
        problem: what is wrong with it, in words; any DICOM UID in it (e.g. quoted from
            a pydicom error) is replaced by ``<UID>``, so no UID reaches a page.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = scrub_uids(problem)
        super().__init__(f"{self.path}: {self.problem}")
