"""Execution cache of the book: a chapter is re-executed only when what it depends on changed.

A temporary book of two trivial jupytext chapters stands in for the real one (never
written to); the HTML build is replaced by a stand-in that writes an index page and counts
its calls, so the tests measure the cache, not Sphinx.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stroke_lib import book, cache

CHAPTER = """# %% [markdown]
# # Chapter {name}

# %% tags=["parameters"]
profile: str = "auto"
x: int = 1

# %%
print("{name}", profile, x)
"""


@pytest.fixture()
def tmp_book(tmp_path, monkeypatch):
    notebooks, book_dir = tmp_path / "notebooks", tmp_path / "book"
    notebooks.mkdir()
    (book_dir / "chapters").mkdir(parents=True)
    for name in ("c1", "c2"):
        (notebooks / f"{name}.py").write_text(CHAPTER.format(name=name))
    (book_dir / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n- file: chapters/c1\n- file: chapters/c2\n")
    (book_dir / "intro.md").write_text("# Intro\n")
    monkeypatch.setattr(book, "NOTEBOOK_DIR", notebooks)
    monkeypatch.setattr(book, "BOOK_DIR", book_dir)
    html_builds = []

    def fake_html(book_dir: Path, strict: bool = True) -> Path:
        index = Path(book_dir) / "_build" / "html" / "index.html"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text("<html></html>")
        html_builds.append(book_dir)
        return index

    monkeypatch.setattr(book, "build_html", fake_html)
    return book_dir, notebooks, html_builds


def _log(book_dir: Path) -> dict:
    return json.loads((book_dir / "_build" / "build_log.json").read_text())


def _status(book_dir: Path) -> dict[str, str]:
    return {k: v["status"] for k, v in _log(book_dir)["chapters"].items()}


def test_only_what_changed_is_re_executed(tmp_book, capsys):
    book_dir, notebooks, html_builds = tmp_book
    book.build_book({"profile": "smoke"}, book_dir)
    assert _status(book_dir) == {"c1": "executed", "c2": "executed"}
    assert len(html_builds) == 1
    first = {n: (book_dir / "chapters" / f"{n}.ipynb").stat().st_mtime_ns for n in ("c1", "c2")}

    capsys.readouterr()
    book.build_book({"profile": "smoke"}, book_dir)  # nothing changed
    out = capsys.readouterr().out
    assert _status(book_dir) == {"c1": "reused", "c2": "reused"}
    assert out.count("unchanged, reused") == 3  # two chapters and the HTML
    assert len(html_builds) == 1
    assert {n: (book_dir / "chapters" / f"{n}.ipynb").stat().st_mtime_ns for n in ("c1", "c2")} == first
    log = _log(book_dir)
    assert log["total_seconds"] < 10
    assert all(v["execution_seconds"] > 0 for v in log["chapters"].values())  # times kept from the run
    assert "book built in" in out

    src = notebooks / "c2.py"
    src.write_text(src.read_text().replace('print("c2"', 'print("c2 changed"'))
    book.build_book({"profile": "smoke"}, book_dir)  # one chapter's source changed
    assert _status(book_dir) == {"c1": "reused", "c2": "executed"}
    assert "c2 changed" in (book_dir / "chapters" / "c2.ipynb").read_text()
    assert len(html_builds) == 2  # a chapter changed: the HTML is rebuilt

    book.build_book({"profile": "smoke", "x": 2}, book_dir)  # a parameter both declare changed
    assert _status(book_dir) == {"c1": "executed", "c2": "executed"}

    book.build_book({"profile": "smoke", "x": 2}, book_dir, force=True)
    assert _status(book_dir) == {"c1": "executed", "c2": "executed"}
    assert len(html_builds) == 4


def test_one_chapter_parameter_and_edited_notebook(tmp_book):
    book_dir, _, _ = tmp_book
    out = book_dir / "chapters" / "c1.ipynb"
    book.execute_chapter("c1", {"profile": "smoke"}, output=out)
    record = cache.read_record(out)
    assert record["parts"]["parameters"]["profile"] == "smoke" and record["seconds"] > 0
    mtime = out.stat().st_mtime_ns
    book.execute_chapter("c1", {"profile": "smoke"}, output=out, cache=True)  # same key: reused
    assert out.stat().st_mtime_ns == mtime
    book.execute_chapter("c1", {"profile": "smoke"}, output=out)  # the cache is off by default
    assert out.stat().st_mtime_ns > mtime
    mtime = out.stat().st_mtime_ns
    book.execute_chapter("c1", {"profile": "smoke", "x": 5}, output=out, cache=True)  # parameter changed
    assert out.stat().st_mtime_ns > mtime and cache.read_record(out)["parts"]["parameters"]["x"] == 5
    mtime = out.stat().st_mtime_ns
    out.write_text(out.read_text().replace("Chapter c1", "Chapter c1 edited"))  # changed by hand
    book.execute_chapter("c1", {"profile": "smoke", "x": 5}, output=out, cache=True)
    assert "Chapter c1 edited" not in out.read_text()


def test_profile_auto_is_keyed_by_what_it_resolves_to(tmp_book):
    book_dir, notebooks, _ = tmp_book
    declared = book.declared_parameters("c1")
    key_auto, parts = cache.chapter_key(notebooks / "c1.py", declared, {"profile": "auto", "device": "cpu"})
    key_smoke, _ = cache.chapter_key(notebooks / "c1.py", declared, {"profile": "smoke", "device": "cpu"})
    key_full, _ = cache.chapter_key(notebooks / "c1.py", declared, {"profile": "full", "device": "cpu"})
    assert parts["parameters"]["profile"] == "smoke"
    assert key_auto == key_smoke != key_full


def test_code_hash_follows_every_module(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "sub" / "b.py").write_text("B = 1\n")
    before = cache.code_hash(pkg)
    (pkg / "notes.txt").write_text("not code")
    assert cache.code_hash(pkg) == before
    (pkg / "sub" / "b.py").write_text("B = 2\n")
    assert cache.code_hash(pkg) != before


def test_real_data_key_follows_its_label_table(tmp_path):
    root = tmp_path / "soop"
    root.mkdir()
    (root / "participants.tsv").write_text("participant_id\tnihss\nsub-1\t3\n")
    params = {"dataset": "soop", "data_root": str(root)}
    before = cache.data_fingerprint(params)
    assert before["root"] == str(root.resolve()) and "participants.tsv" in before["tables"]
    (root / "participants.tsv").write_text("participant_id\tnihss\nsub-1\t4\n")
    assert cache.data_fingerprint(params) != before
    assert "root" not in cache.data_fingerprint({"dataset": "synthetic"})


def test_a_chapter_that_reads_records_is_re_executed_when_a_record_changes(tmp_book, tmp_path, monkeypatch):
    """c2 stands for the synthesis chapter: it reads a record another run writes; a new
    record re-executes it (and only it), an unchanged one does not."""
    book_dir, _, _ = tmp_book
    record = tmp_path / "runs" / "results.json"
    record.parent.mkdir()
    record.write_text('{"auc": 0.7}')
    monkeypatch.setattr(book, "CHAPTER_INPUTS", {"c2": lambda: [record]})
    book.build_book({"profile": "smoke"}, book_dir)
    book.build_book({"profile": "smoke"}, book_dir)
    assert _status(book_dir) == {"c1": "reused", "c2": "reused"}
    record.write_text('{"auc": 0.8}')
    book.build_book({"profile": "smoke"}, book_dir)
    assert _status(book_dir) == {"c1": "reused", "c2": "executed"}
