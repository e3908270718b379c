"""Smoke run of the book: every chapter executes with papermill into a temporary copy of
the book (never into book/), its pages are clean, and the HTML builds."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from stroke_lib.book import BOOK_DIR, UnknownParameterError, execute_chapter
from stroke_lib.claims import PAPER_CHAPTERS, claims_table
from stroke_lib.data.faults import EXAMPLE_PATIENT_NAME
from stroke_lib.paths import REPO_ROOT, data_dir, run_name
from stroke_lib.report import run_folder
from stroke_lib.synthesis import VERDICTS, load_records
from tests.conftest import book_state

pytestmark = pytest.mark.notebook

#: Text that must never reach a page: progress bars, warnings, tracebacks.
DIRT = re.compile(r"\d+%\|| it/s|s/it\]|Warning:|Warning\b.*\n|Traceback \(most recent call last\)")


def test_book_dir_is_left_as_it_was(built_book):
    _, index, before = built_book
    assert BOOK_DIR not in index.parents
    assert book_state() == before


def test_every_chapter_executes(built_book):
    executed, _, _ = built_book
    for name, path in executed.items():
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, name
        hidden = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert all("remove-cell" in c.metadata.tags for c in hidden)


def test_pages_carry_no_progress_bars_warnings_or_tracebacks(built_book):
    executed, _, _ = built_book
    for name, path in executed.items():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                assert not (out.output_type == "stream" and out.name == "stderr"), (name, out.text[:300])
                texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items()
                                                  if k.startswith("text/") and isinstance(v, str)]
                for text in texts:
                    assert not DIRT.search(text), (name, DIRT.search(text).group(0), text[:300])


def test_tables_show_whole_cells(built_book):
    executed, _, _ = built_book
    for name, path in executed.items():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                html = out.get("data", {}).get("text/html", "")
                assert not re.search(r"<td>[^<]*\.\.\.</td>", html), (name, html[:300])


def test_html_pages_have_numbered_captioned_figures(built_book):
    _, index, _ = built_book
    assert index.exists()
    for name, least in (("00_cohort", 4), ("01_evaluation", 5)):
        page = (index.parent / "chapters" / f"{name}.html").read_text()
        numbers = re.findall(r'<span class="caption-number">Fig\. (\d+)', page)
        assert len(numbers) >= least, (name, numbers)
        alts = re.findall(r'<img alt="([^"]*)"', page)
        assert len([a for a in alts if len(a) > 40]) >= least, (name, alts)
        assert "synthetic" in page
        assert "injected-parameters" not in page
        assert not DIRT.search(re.sub(r"<[^>]+>", "", page))


def test_patient_name_not_in_built_html(built_book):
    _, index, _ = built_book
    parts = EXAMPLE_PATIENT_NAME.split("^")
    for page in index.parent.rglob("*.html"):
        text = page.read_text(errors="ignore")
        for part in parts:
            assert part not in text, page


def test_chapter_01_saliency_is_set_against_its_controls(built_book):
    record = json.loads((data_dir() / "runs" / "01_evaluation-synthetic-smoke-seed0" / "results.json").read_text())
    for key, checks in record["saliency"].items():
        assert checks["localisation"] in {"localises better than its random-weight control",
                                          "no better than its random-weight control",
                                          "localises worse than its random-weight control"}, key
        assert checks["difference lower"] <= checks["energy in lesion, trained minus random"] <= checks["difference upper"]
        for network in ("trained", "random weights"):
            loc = checks[network]
            assert loc["energy lower"] <= loc["energy in lesion"] <= loc["energy upper"], (key, network)
    assert set(record["ceiling"]) == {"site A cross-validation", "external sites"}


def test_chapter_01_rerun_with_the_same_seed_gives_identical_metrics(tmp_path):
    """Two CPU runs of chapter 01 (short: 1 epoch, 50 bootstrap replicates), same seed.
    Their parameters make them an experiment: both write to a run folder of its own, never
    to the book run's, which chapter 02 and the synthesis read."""
    params = {"profile": "smoke", "epochs": 1, "n_bootstrap": 50, "seed": 0}
    folder = run_folder("01_evaluation", params, "smoke")
    book_run = data_dir() / "runs" / run_name("01_evaluation", "synthetic", "smoke", 0) / "results.json"
    assert folder.name != book_run.parent.name and folder.name.startswith("01_evaluation-synthetic-")
    book_before = book_run.read_bytes() if book_run.exists() else None
    records = []
    for run in range(2):
        execute_chapter("01_evaluation", params, output=tmp_path / f"run{run}.ipynb")
        records.append(json.loads((folder / "results.json").read_text()))
    assert (book_run.read_bytes() if book_run.exists() else None) == book_before
    assert records[0]["parameters"]["epochs"] == 1
    same = [json.dumps([r["metrics"], r["saliency"]], sort_keys=True) for r in records]  # NaN-safe
    assert records[0]["metrics"] and same[0] == same[1]


def test_a_misspelt_parameter_fails_at_once_naming_the_accepted_ones(tmp_path):
    with pytest.raises(UnknownParameterError, match="n_subjects"):
        execute_chapter("01_evaluation", {"n_subject": 60}, output=tmp_path / "never.ipynb")
    assert not (tmp_path / "never.ipynb").exists()
    cli = subprocess.run([sys.executable, "-m", "stroke_lib", "chapter", "01_evaluation", "-p", "n_subject", "60",
                          "--output", str(tmp_path / "never.ipynb")],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert cli.returncode == 2
    assert "n_subject" in cli.stderr and "n_subjects (int" in cli.stderr and "Traceback" not in cli.stderr


def test_chapter_03_shows_the_leak_the_skull_shares_and_the_baseline(built_book):
    record = json.loads((data_dir() / "runs" / "03_ctnet_ht-synthetic-smoke-seed0" / "results.json").read_text())
    leak = record["leak"]
    assert {r["split"] for r in leak} == {"scan-level", "patient-level"}
    assert all(r["test scans whose patient is in training"] == 0 for r in leak if r["split"] == "patient-level")
    assert any(r["test scans whose patient is in training"] > 0 for r in leak if r["split"] == "scan-level")
    assert "Scan-level minus patient-level AUC" in record["leak_summary"]
    shares = {(r["input"], r["network"], r["tissue"]) for r in record["tissue_shares"]}
    assert {("CTNet skull-stripped", "trained", "bone (skull)"), ("CTNet", "random weights", "brain")} <= shares
    cv = record["metrics"]
    for model in ("CTNet", "CTNet skull-stripped", "CT measurements (logistic regression)",
                  "reader's record (logistic regression)", "correlation learning CNN"):
        assert 0 <= cv[f"{model}, 5-fold CV"]["auc"]["estimate"] <= 1
    assert {"oracle ceiling", "image-only ceiling"} <= set(record["ceiling"]["5-fold CV"])
    assert len(record["fold_aucs"]) == 6  # five folds and the 9:1 split


def test_chapter_05_shows_tables_1_to_4_the_selection_and_the_cascade(built_book):
    executed, _, _ = built_book
    record = json.loads((data_dir() / "runs" / "05_adaptive_transfer-synthetic-smoke-seed0" / "results.json").read_text())
    m = record["metrics"]
    old = m["Table 1 #2: old infarct, lesion concatenation"]["auc"]
    assert old["lower"] > 0.5  # the old-infarct task is learnt: its interval lies above chance
    rows = set(m)
    assert {f"Table 1 #{k}" for k in "1234"} <= {r.split(":")[0] for r in rows}
    assert {"Table 4: not frozen", "Table 4: freeze #0", "Table 4: freeze #0-4",
            "Table 4: not transferred (ImageNet weights)"} <= rows
    assert {"Table 2: old infarct, WC40/WW30", "Table 3: early sign, WC40/WW20"} <= rows
    picks = record["picks"]
    assert len(picks) == 3 and all(p["AUC lost by the pick"] >= 0 for p in picks)  # one pick per fold
    assert -1 <= record["cascade"]["kappa"] <= 1 and record["cascade"]["scans"] > 0
    nb = nbformat.read(executed["05_adaptive_transfer"], as_version=4)
    text = "\n".join(str(o.get("data", {}).get("text/html", o.get("data", {}).get("text/plain", "")))
                     for c in nb.cells for o in c.get("outputs", []))
    for shown in ("Table 1 #4: early sign, lesion concatenation", "Table 3: early sign, WC40/WW40",
                  "Table 4: freeze #0-4 (= all conv-pooling layers here)", "f(theta) picks", "weighted kappa"):
        assert shown in text, shown


def _output_text(path) -> str:
    """Every HTML, Markdown and plain-text output of an executed notebook, unescaped."""
    nb = nbformat.read(path, as_version=4)
    return html.unescape("\n".join(str(o.get("data", {}).get(kind, "")) + str(o.get("text", ""))
                                   for c in nb.cells for o in c.get("outputs", [])
                                   for kind in ("text/html", "text/markdown", "text/plain")))


def test_chapter_06_reads_every_claim_from_the_run_records(built_book, tmp_path):
    """At least fifteen claims with a verdict each, every one on the page as the records
    give it; a changed record changes the page."""
    executed, index, _ = built_book
    runs = data_dir() / "runs"
    chapters = {c: "synthetic" for c in PAPER_CHAPTERS}
    claims = claims_table(load_records(runs, chapters, "smoke", 0))
    assert len(claims) >= 15 and set(claims.verdict) <= set(VERDICTS)
    assert (claims.why != "").all() and "no run record" not in " ".join(claims.why)
    text = _output_text(executed["06_synthesis"])
    for _, row in claims.iterrows():
        assert row.claim in text and row.ours in text, row.claim
    assert "CLAIM 2024" in text and "TRIPOD+AI" in text and "make chapter NAME=03_ctnet_ht" in text
    assert (index.parent / "api.html").exists()

    copy = tmp_path / "runs"
    for chapter in chapters:
        shutil.copytree(runs / f"{chapter}-synthetic-smoke-seed0", copy / f"{chapter}-synthetic-smoke-seed0")
    path = copy / "03_ctnet_ht-synthetic-smoke-seed0" / "results.json"
    record = json.loads(path.read_text())
    key = next(k for k in record["metrics"] if k.startswith("CTNet, ") and "fold CV" in k)
    record["metrics"][key]["auc"] |= {"estimate": 0.123, "lower": 0.111, "upper": 0.135}
    path.write_text(json.dumps(record))
    changed = _output_text(execute_chapter("06_synthesis", {"profile": "smoke", "runs": str(copy)},
                                           output=tmp_path / "06.ipynb"))
    assert "0.123 [0.111, 0.135]" in changed and "0.123 [0.111, 0.135]" not in text
    assert "the opposite: the interval of CTNet's AUC lies below 0.5" in changed
