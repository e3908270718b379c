"""Executing chapters with papermill and building the Jupyter Book.

Chapter sources are jupytext percent-format scripts in ``notebooks/``. A chapter run
pairs the script to ``notebooks/NAME.ipynb`` (which plain papermill can run too),
refuses parameters the chapter does not declare, executes it with papermill into
``book/chapters/NAME.ipynb`` (or another folder: tests never write into ``book/``) and
tags the parameter cells ``remove-cell`` so the page shows the chapter's own parameter
table instead. ``build_html`` builds the HTML from executed notebooks without executing.

Every execution writes ``NAME.cache.json`` beside the executed notebook (its key and wall
time; see ``stroke_lib.cache``). ``build_book`` re-executes a chapter only when its key
changed ("unchanged, reused" otherwise; ``force=True`` re-executes all; the key of a
chapter that reads other runs' records, ``CHAPTER_INPUTS``, includes those records),
skips the HTML build when no chapter and no page changed and the HTML exists, prints
each chapter's time and the total, and writes them to ``BOOK/_build/build_log.json``. ``execute_chapter``
always re-executes unless called with ``cache=True``.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import json

import jupytext
import nbformat
import papermill
import yaml

from stroke_lib import cache as exec_cache
from stroke_lib.paths import REPO_ROOT

BOOK_DIR = REPO_ROOT / "book"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
CHAPTER_DIR = BOOK_DIR / "chapters"
PARAMETER_TAGS = {"parameters", "injected-parameters"}


def _run_records() -> list[Path]:
    from stroke_lib.paths import data_dir

    return sorted((data_dir() / "runs").glob("*/results.json"))


def _benchmark_records() -> list[Path]:
    from stroke_lib.benchmark_records import RECORD_DIR

    return sorted(Path(RECORD_DIR).glob("*.json"))


#: Chapters that read what other runs wrote, with the files they read: their cache key
#: includes those files, so a re-executed paper chapter (a new run record) or a new
#: benchmark record re-executes the chapter that reads it.
CHAPTER_INPUTS = {"06_synthesis": _run_records, "90_reproducibility": _benchmark_records}


def chapter_names() -> list[str]:
    """Chapters in table-of-contents order (the ``chapters/NAME`` entries of _toc.yml)."""
    toc = yaml.safe_load((BOOK_DIR / "_toc.yml").read_text())
    names: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            entry = node.get("file", "")
            if entry.startswith("chapters/"):
                names.append(entry.split("/", 1)[1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return names


def pair_notebook(name: str) -> Path:
    """Write ``notebooks/NAME.ipynb`` from ``notebooks/NAME.py``; returns its path."""
    src = NOTEBOOK_DIR / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such chapter source; chapters: {chapter_names()}")
    out = src.with_suffix(".ipynb")
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(nb, out)
    return out


class UnknownParameterError(ValueError):
    """A parameter that the chapter's parameters cell does not declare."""


def declared_parameters(name: str) -> dict[str, dict[str, str]]:
    """The parameters chapter ``name`` declares: name -> papermill's record (type, default, help)."""
    return papermill.inspect_notebook(str(pair_notebook(name)))


def chapter_defaults(name: str) -> dict[str, object]:
    """The default value of each parameter chapter ``name`` declares, as Python values."""
    return {k: ast.literal_eval(v["default"]) for k, v in declared_parameters(name).items()}


def check_parameters(name: str, parameters: dict[str, object]) -> None:
    """Raise ``UnknownParameterError`` for a parameter ``name`` does not declare, naming
    the ones it does (papermill itself only warns and runs on with the defaults)."""
    _check_declared(name, declared_parameters(name), parameters)


def _check_declared(name: str, declared: dict[str, dict[str, str]], parameters: dict[str, object]) -> None:
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        listing = ", ".join(f"{k} ({v['inferred_type_name']}, default {v['default']})"
                            for k, v in declared.items())
        raise UnknownParameterError(
            f"chapter {name} has no parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {listing}")


def hide_parameter_cells(path: Path) -> None:
    """Tag the parameters and injected-parameters cells ``remove-cell`` in place."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", []))
        if tags & PARAMETER_TAGS:
            cell.metadata["tags"] = sorted(tags | {"remove-cell"})
    nbformat.write(nb, path)


def execute_chapter(
    name: str, parameters: dict[str, object] | None = None, output: Path | None = None,
    cache: bool = False,
) -> Path:
    """Execute chapter ``name`` with papermill; returns the executed notebook.

    Args:
        name: notebook stem, e.g. ``"00_cohort"``.
        parameters: papermill parameters (``profile``, ``dataset``, ``data_root``, ...).
        output: where to write; default ``book/chapters/NAME.ipynb``.
        cache: reuse ``output`` when its cache record (``NAME.cache.json`` beside it) has
            the key of this execution (``stroke_lib.cache``); off by default, so a call
            always re-executes. The record is written after every execution either way.
    """
    return _run_chapter(name, parameters or {}, output, use_cache=cache)[0]


def _run_chapter(name: str, parameters: dict[str, object], output: Path | None, use_cache: bool,
                 code: str | None = None) -> tuple[Path, bool, float]:
    """Execute (or, with ``use_cache`` and an unchanged key, reuse) one chapter.

    Returns the notebook, whether it was reused, and the execution's wall time in seconds
    (for a reused chapter, the time recorded when it was executed).
    """
    src = pair_notebook(name)
    declared = papermill.inspect_notebook(str(src))
    _check_declared(name, declared, parameters)
    out = Path(output) if output else CHAPTER_DIR / f"{name}.ipynb"
    inputs = CHAPTER_INPUTS[name]() if name in CHAPTER_INPUTS else None
    key, parts = exec_cache.chapter_key(NOTEBOOK_DIR / f"{name}.py", declared, parameters, code, inputs)
    if use_cache and exec_cache.is_fresh(out, key):
        return out, True, float(exec_cache.read_record(out).get("seconds", 0.0))
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # Progress bars inside the kernel would end up on the page; papermill's own bar
    # (one step per cell) shows progress in the terminal instead.
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        papermill.execute_notebook(
            str(src), str(out), parameters=parameters, kernel_name="python3",
            cwd=str(REPO_ROOT), progress_bar=True, log_output=False,
        )
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE")
        else:
            os.environ["TQDM_DISABLE"] = previous
    hide_parameter_cells(out)
    seconds = time.perf_counter() - start
    exec_cache.write_record(out, key, parts, seconds)
    return out, False, seconds


def copy_book_sources(dest: Path) -> Path:
    """Copy the book's sources (pages, table of contents, bibliography, published numbers;
    no executed chapter, no build) to ``dest``; returns ``dest``. Tests build the book there."""
    dest = Path(dest)
    shutil.copytree(BOOK_DIR, dest, ignore=shutil.ignore_patterns("_build", "*.ipynb"),
                    dirs_exist_ok=True)
    return dest


def build_html(book_dir: Path = BOOK_DIR, strict: bool = True) -> Path:
    """Build the HTML of ``book_dir`` from its executed chapters (never executes one);
    warnings are errors when ``strict``. Returns ``book_dir/_build/html/index.html``."""
    book_dir = Path(book_dir)
    missing = [n for n in chapter_names() if not (book_dir / "chapters" / f"{n}.ipynb").exists()]
    if missing:
        raise FileNotFoundError(f"{book_dir / 'chapters'}: no executed chapter {missing}; "
                                "execute them first (make book, or make chapter NAME=...)")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(book_dir),
           "--config", str(REPO_ROOT / "_config.yml"), "--toc", str(book_dir / "_toc.yml"),
           "--path-output", str(book_dir)]
    if strict:
        cmd += ["-W", "--keep-going"]
    subprocess.run(cmd, check=True)
    return book_dir / "_build" / "html" / "index.html"


def _html_sources(book_dir: Path) -> list[Path]:
    """Every file the HTML is built from: the book folder (less ``_build``) and _config.yml."""
    files = sorted(p for p in Path(book_dir).rglob("*")
                   if p.is_file() and "_build" not in p.relative_to(book_dir).parts
                   and not p.name.endswith(exec_cache.CACHE_SUFFIX))
    return files + [REPO_ROOT / "_config.yml"]


def build_book(parameters: dict[str, object] | None = None, book_dir: Path = BOOK_DIR,
               force: bool = False) -> Path:
    """Execute every chapter in table-of-contents order into ``book_dir/chapters``, then
    build the HTML.

    A chapter whose cache key is unchanged (``stroke_lib.cache``) is reused, not
    re-executed; the HTML build is skipped when every chapter was reused, no page changed
    and the HTML exists. ``force`` re-executes every chapter and rebuilds the HTML. Each
    chapter's time and the total are printed and written to ``book_dir/_build/build_log.json``
    (chapter -> executed or reused, seconds of its execution, seconds this build spent).
    """
    parameters = parameters or {}
    book_dir = Path(book_dir)
    names = chapter_names()
    for name in names:  # a misspelt parameter fails before minutes of work, not after
        check_parameters(name, parameters)
    start = time.perf_counter()
    code = exec_cache.code_hash()
    log: dict[str, dict] = {}
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        _, reused, seconds = _run_chapter(name, parameters, book_dir / "chapters" / f"{name}.ipynb",
                                          use_cache=not force, code=code)
        spent = time.perf_counter() - t0
        log[name] = {"status": "reused" if reused else "executed", "execution_seconds": round(seconds, 2),
                     "build_seconds": round(spent, 2)}
        state = (f"unchanged, reused (executed earlier in {seconds:.0f} s)" if reused
                 else f"executed in {seconds:.0f} s")
        print(f"[{i}/{len(names)}] {name} {state}", flush=True)
    index = book_dir / "_build" / "html" / "index.html"
    key_file = book_dir / "_build" / "html_key.json"
    html_key = exec_cache.tree_hash(_html_sources(book_dir))
    previous = json.loads(key_file.read_text()).get("key") if key_file.exists() else None
    if not force and index.exists() and previous == html_key:
        print("HTML: unchanged, reused", flush=True)
        html_state = "reused"
    else:
        print("building HTML with jupyter-book ...", flush=True)
        t0 = time.perf_counter()
        index = build_html(book_dir)
        key_file.write_text(json.dumps({"key": html_key}) + "\n")
        html_state = f"built in {time.perf_counter() - t0:.0f} s"
    total = time.perf_counter() - start
    executed = sum(v["execution_seconds"] for v in log.values() if v["status"] == "executed")
    (book_dir / "_build" / "build_log.json").write_text(json.dumps(
        {"chapters": log, "html": html_state, "total_seconds": round(total, 2), "force": force},
        indent=1) + "\n")
    n_reused = sum(v["status"] == "reused" for v in log.values())
    print(f"book built in {total:.0f} s ({len(names) - n_reused} chapter(s) executed in "
          f"{executed:.0f} s, {n_reused} reused; HTML {html_state}): {index}", flush=True)
    return index
