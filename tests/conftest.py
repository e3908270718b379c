"""Shared fixtures: a small embedded cohort generated once per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from stroke_lib.data.synthetic import CohortSpec, generate_cohort
from stroke_lib.paths import data_dir

SMALL = CohortSpec(n_subjects=16, in_plane=64, seed=3)


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory) -> None:
    """Tests write into a temporary data directory, never into the user's (a fixture
    replaces ``<data directory>/soop``, which may hold a real download)."""
    os.environ["STROKE_DATA_DIR"] = str(tmp_path_factory.mktemp("stroke-data"))
    os.environ["TQDM_DISABLE"] = "1"


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """A 16-subject cohort (64 px slices), generated once."""
    return generate_cohort(SMALL, root=tmp_path_factory.mktemp("cohort") / "c", progress=False)


# A folder in SOOP's real layout, as OpenNeuro ds004889 lays it out: BIDS ``sub-X/dwi``
# folders with the TRACE and ADC NIfTI files and a participants.tsv with SOOP's own
# columns (``age`` "89+" included, ``n/a`` cells, no site, no stroke type, no lesion
# masks). The images are copied from a small embedded cohort.
SOOP_COLUMNS = ["participant_id", "sex", "age", "race", "acuteischaemicstroke", "priorstroke", "bmi",
                "nihss", "gs_rankin_6isdeath", "etiology"]


def write_soop_fixture(source: Path, dest: Path) -> pd.DataFrame:
    """Copy the DWI and ADC of every stroke subject of an embedded cohort into SOOP's
    layout at ``dest`` with a participants.tsv of SOOP's columns; returns that table."""
    labels = pd.read_csv(source / "derivatives" / "labels.tsv", sep="\t", dtype={"participant_id": str})
    labels = labels[labels.stroke_type != "none"].reset_index(drop=True)
    for pid in labels.participant_id:
        shutil.copytree(source / pid / "dwi", dest / pid / "dwi")
    part = pd.DataFrame({
        "participant_id": labels.participant_id,
        "sex": labels.sex.map({"F": "F", "M": "M"}).fillna("n/a"),
        "age": [("89+" if i == 0 or a >= 89 else str(int(a))) for i, a in enumerate(labels.age)],  # as SOOP caps it
        "race": ["w" if i % 3 else "n/a" for i in range(len(labels))],
        "acuteischaemicstroke": (labels.stroke_type == "ischaemic").astype(int),
        "priorstroke": [i % 2 for i in range(len(labels))],
        "bmi": ["n/a" if i % 4 == 0 else f"{24 + i % 7}.5" for i in range(len(labels))],
        "nihss": labels.nihss.astype(int),
        "gs_rankin_6isdeath": [i % 7 for i in range(len(labels))],
        "etiology": ["cardioembolic" if i % 2 else "n/a" for i in range(len(labels))],
    })
    assert list(part.columns) == SOOP_COLUMNS
    part.to_csv(dest / "participants.tsv", sep="\t", index=False)
    return part


@pytest.fixture(scope="session")
def soop_folder(tmp_path_factory) -> Path:
    """A SOOP-layout folder at the default place, ``<data directory>/soop``."""
    cohort = generate_cohort(CohortSpec(n_subjects=40, in_plane=64, seed=5),
                             root=tmp_path_factory.mktemp("embedded") / "c", progress=False)
    dest = data_dir() / "soop"
    shutil.rmtree(dest, ignore_errors=True)
    write_soop_fixture(cohort, dest)
    return dest


def run_chapter_text(name: str, params: dict, output: Path) -> str:
    """Execute chapter ``name`` with ``params`` into ``output`` and return the text of its
    outputs (Markdown and streams), after asserting that no cell raised and nothing was
    written to stderr (a page carries no warnings or tracebacks)."""
    from stroke_lib.book import execute_chapter

    nb = nbformat.read(execute_chapter(name, params, output=output), as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    return "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", "")) for o in outputs)


def book_state() -> dict[str, float]:
    """Every file under book/chapters and book/_build with its modification time."""
    from stroke_lib.book import BOOK_DIR

    return {str(p): p.stat().st_mtime for d in ("chapters", "_build") if (BOOK_DIR / d).exists()
            for p in (BOOK_DIR / d).rglob("*") if p.is_file()}


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Every chapter executed (smoke profile) into a temporary copy of the book, never into
    book/, and its HTML built with warnings as errors, once per session: the executed
    notebooks by chapter, the index page, and book/'s state before."""
    from stroke_lib.book import build_html, chapter_names, copy_book_sources, execute_chapter

    before = book_state()
    book = copy_book_sources(tmp_path_factory.mktemp("book") / "book")
    executed = {name: execute_chapter(name, {"profile": "smoke"}, output=book / "chapters" / f"{name}.ipynb")
                for name in chapter_names()}
    index = build_html(book)
    return executed, index, before

