"""Dataset manifests (``data_manifests/*.yaml``) and the check of a dataset on disk.

A manifest names a dataset's source, licence, citation, modalities, size, layout, where
its labels are, which chapters can use it and how to download it. Its ``layout`` says
what must be present: ``files`` (each must exist), ``globs`` (each must match a file)
and ``per_subject`` (for each folder matching ``subjects``, every ``files`` pattern with
``{subject}`` replaced by the folder name).
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
                "chapters": ", ".join(m["chapters"]),
                "source": m["source"]["url"],
                "doi": m["source"].get("doi", ""),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class CheckReport:
    """What a dataset folder holds against its manifest.

    Attributes:
        present: required paths found (relative to the root).
        missing: required paths or patterns not found, each named.
        subjects: number of subject folders found.
    """

    name: str
    root: Path
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    subjects: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing

    def __str__(self) -> str:
        lines = [f"{self.name} at {self.root}: {len(self.present)} required paths present, "
                 f"{len(self.missing)} missing, {self.subjects} subject folders"]
        lines += [f"  missing: {m}" for m in self.missing]
        return "\n".join(lines)


def check_dataset(name: str, root: str | Path) -> CheckReport:
    """Check a dataset folder against manifest ``name``; every missing file is named."""
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
    return rep
