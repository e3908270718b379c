"""Executing chapters with papermill and building the Jupyter Book.

Chapter sources are jupytext percent-format scripts in ``notebooks/``. A chapter run
pairs the script to ``notebooks/NAME.ipynb`` (which plain papermill can run too),
refuses parameters the chapter does not declare, executes it with papermill into
``book/chapters/NAME.ipynb`` (or another folder: tests never write into ``book/``) and
tags the parameter cells ``remove-cell`` so the page shows the chapter's own parameter
table instead. ``build_html`` builds the HTML from executed notebooks without executing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

from stroke_lib.paths import REPO_ROOT

BOOK_DIR = REPO_ROOT / "book"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
CHAPTER_DIR = BOOK_DIR / "chapters"
PARAMETER_TAGS = {"parameters", "injected-parameters"}


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


def check_parameters(name: str, parameters: dict[str, object]) -> None:
    """Raise ``UnknownParameterError`` for a parameter ``name`` does not declare, naming
    the ones it does (papermill itself only warns and runs on with the defaults)."""
    declared = declared_parameters(name)
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
    name: str, parameters: dict[str, object] | None = None, output: Path | None = None
) -> Path:
    """Execute chapter ``name`` with papermill; returns the executed notebook.

    Args:
        name: notebook stem, e.g. ``"00_cohort"``.
        parameters: papermill parameters (``profile``, ``dataset``, ``data_root``, ...).
        output: where to write; default ``book/chapters/NAME.ipynb``.
    """
    check_parameters(name, parameters or {})
    src = pair_notebook(name)
    out = Path(output) if output else CHAPTER_DIR / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Progress bars inside the kernel would end up on the page; papermill's own bar
    # (one step per cell) shows progress in the terminal instead.
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        papermill.execute_notebook(
            str(src), str(out), parameters=parameters or {}, kernel_name="python3",
            cwd=str(REPO_ROOT), progress_bar=True, log_output=False,
        )
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE")
        else:
            os.environ["TQDM_DISABLE"] = previous
    hide_parameter_cells(out)
    return out


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


def build_book(parameters: dict[str, object] | None = None, book_dir: Path = BOOK_DIR) -> Path:
    """Execute every chapter in table-of-contents order into ``book_dir/chapters``, then
    build the HTML."""
    names = chapter_names()
    for name in names:  # a misspelt parameter fails before minutes of work, not after
        check_parameters(name, parameters or {})
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(names)}] executing {name} ...", flush=True)
        execute_chapter(name, parameters, Path(book_dir) / "chapters" / f"{name}.ipynb")
        print(f"[{i}/{len(names)}] {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("building HTML with jupyter-book ...", flush=True)
    index = build_html(book_dir)
    print(f"book built in {time.perf_counter() - start:.0f} s: {index}", flush=True)
    return index
