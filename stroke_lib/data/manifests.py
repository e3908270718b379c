"""Dataset manifests (``data_manifests/*.yaml``) and the check of a dataset on disk.

A manifest names a dataset's source, licence, citation, modalities, size, layout, where
its labels are, which chapters can use it (``chapters``: chapter -> what that chapter
leaves out on it), how to download it, where it is read from by
default (``default_location``: ``<data directory>/<name>``) and which loader reads it
(``loader``: a function of ``stroke_lib.data``). Its ``layout`` says what must be present:
``files`` (each must exist), ``globs`` (each must match a file) and ``per_subject`` (for
each folder matching ``subjects``, every ``files`` pattern with ``{subject}`` replaced by
the folder name). A BIDS dataset's ``participants`` gives the label column and each
column's type and range, against which participants.tsv is validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from stroke_lib.errors import DataError
from stroke_lib.paths import MANIFEST_DIR


def manifest_names() -> list[str]:
    """Names of all manifests, sorted."""
    return sorted(p.stem for p in MANIFEST_DIR.glob("*.yaml"))


def load_manifest(name: str) -> dict:
    """The manifest ``name`` as a dict. Raises ``KeyError`` listing the known names."""
    path = MANIFEST_DIR / f"{name}.yaml"
    if not path.exists():
        raise KeyError(f"no manifest {name!r}; known: {', '.join(manifest_names())}")
    with open(path) as fh:
        return yaml.safe_load(fh)


def manifest_table() -> pd.DataFrame:
    """One row per dataset: name, title, modality, subjects, licence, chapters, source."""
    rows = []
    for name in manifest_names():
        m = load_manifest(name)
        rows.append(
            {
                "dataset": name,
                "title": m["title"],
                "modality": ", ".join(m["modality"]),
                "subjects": m["subjects"],
                "licence": m["licence"],
                "chapters": ", ".join(m["chapters"]) or "none (a loader only)",
                "source": m["source"]["url"],
                "doi": m["source"].get("doi", ""),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class CheckReport:
    """What a dataset folder holds against its manifest, and what its loader made of it.

    Attributes:
        present: required paths found (relative to the root).
        missing: required paths or patterns not found, each named.
        subjects: number of subject folders found.
        errors: problems that stop the whole dataset loading (e.g. duplicated
            participants), each naming its file.
        rejects: the loader's rejects table (scans skipped or repaired, with the file
            and the problem); empty when the loader did not run.
        scans: number of usable scans the loader found.
    """

    name: str
    root: Path
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    subjects: int = 0
    errors: list[str] = field(default_factory=list)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    scans: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.errors

    def __str__(self) -> str:
        lines = [f"{self.name} at {self.root}: {len(self.present)} required paths present, "
                 f"{len(self.missing)} missing, {self.subjects} subject folders"]
        lines += [f"  missing: {m}" for m in self.missing]
        lines += [f"  error: {e}" for e in self.errors]
        if not self.rejects.empty or self.scans:
            counts = self.rejects.action.value_counts() if not self.rejects.empty else {}
            lines.append(f"  loader: {self.scans} usable scans, {counts.get('skipped', 0)} "
                         f"skipped, {counts.get('repaired', 0)} repaired")
        for row in self.rejects.itertuples():
            lines.append(f"  {row.action}: {row.file}: {row.problem}")
        return "\n".join(lines)


def check_dataset(name: str, root: str | Path, read: bool = True) -> CheckReport:
    """Check a dataset folder against manifest ``name``: every missing file is named; with
    ``read`` its loader (the manifest's ``loader``) also reads every scan, and the report
    lists each scan skipped or repaired (bad participants values, ID mismatches, damaged
    files, DWI/ADC grid mismatches...) and each error that stops the whole dataset.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder does not exist")
    layout = load_manifest(name)["layout"]
    rep = CheckReport(name, root)
    for rel in layout.get("files", []):
        (rep.present if (root / rel).exists() else rep.missing).append(rel)
    for pattern in layout.get("globs", []):
        (rep.present if next(root.glob(pattern), None) else rep.missing).append(pattern)
    per = layout.get("per_subject")
    if per:
        folders = sorted(p for p in root.glob(per["subjects"]) if p.is_dir())
        rep.subjects = len(folders)
        if not folders:
            rep.missing.append(f"{per['subjects']} (no subject folder)")
        for folder in folders:
            for pattern in per["files"]:
                rel = pattern.format(subject=folder.name)
                (rep.present if (root / rel).exists() else rep.missing).append(rel)
    if read:
        _run_loader(name, root, rep)
    return rep


def _run_loader(name: str, root: Path, rep: CheckReport) -> None:
    from stroke_lib.data import load_embedded, loaders  # the loaders import this module

    loader = load_embedded if name == "synthetic" else loaders().get(name)
    if loader is None:
        return
    try:
        cohort = loader(root)
    except DataError as err:
        rep.errors.append(str(err))
        return
    rep.rejects = cohort.rejects
    rep.scans = len(cohort.table)
