"""Smoke run of the book: every chapter executes with papermill, then the HTML builds."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from stroke_lib.book import BOOK_DIR, build_html, chapter_names, execute_chapter
from stroke_lib.data.faults import EXAMPLE_PATIENT_NAME
from stroke_lib.paths import data_dir

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def built_book():
    executed = {name: execute_chapter(name, {"profile": "smoke"}) for name in chapter_names()}
    return executed, build_html()


def test_every_chapter_executes(built_book):
    executed, _ = built_book
    for name, path in executed.items():
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, name
        hidden = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert all("remove-cell" in c.metadata.tags for c in hidden)


def test_html_has_chapter_pages_with_figures(built_book):
    _, index = built_book
    assert index.exists()
    page = (BOOK_DIR / "_build/html/chapters/00_cohort.html").read_text()
    assert len(re.findall(r"<img ", page)) >= 4
    assert "synthetic" in page
    assert "injected-parameters" not in page


def test_patient_name_not_in_built_html(built_book):
    parts = EXAMPLE_PATIENT_NAME.split("^")
    for html in (BOOK_DIR / "_build/html").rglob("*.html"):
        text = html.read_text(errors="ignore")
        for part in parts:
            assert part not in text, html


def test_chapter_01_rerun_with_the_same_seed_gives_identical_metrics(tmp_path):
    """Two CPU runs of chapter 01 (short: 2 epochs, 50 bootstrap replicates), same seed."""
    params = {"profile": "smoke", "epochs": 2, "n_bootstrap": 50, "seed": 0}
    records = []
    for run in range(2):
        execute_chapter("01_evaluation", params, output=tmp_path / f"run{run}.ipynb")
        record = data_dir() / "runs" / "01_evaluation-smoke-seed0" / "results.json"
        records.append(json.loads(record.read_text()))
    assert records[0]["parameters"]["epochs"] == 2
    same = [json.dumps([r["metrics"], r["saliency"]], sort_keys=True) for r in records]  # NaN-safe
    assert records[0]["metrics"] and same[0] == same[1]
