"""Executing chapters with papermill and building the Jupyter Book.

Chapter sources are jupytext percent-format scripts in ``notebooks/``. A chapter run
pairs the script to ``notebooks/NAME.ipynb`` (which plain papermill can run too),
executes it with papermill into ``book/chapters/NAME.ipynb`` and tags the parameter
cells ``remove-cell`` so the page shows the chapter's own parameter table instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import papermill
import pandas as pd
import yaml
from IPython.display import display

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


def build_html(strict: bool = True) -> Path:
    """Run ``jupyter-book build`` (warnings are errors when ``strict``); returns index.html."""
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(BOOK_DIR),
           "--config", str(REPO_ROOT / "_config.yml"), "--toc", str(BOOK_DIR / "_toc.yml"),
           "--path-output", str(BOOK_DIR)]
    if strict:
        cmd += ["-W", "--keep-going"]
    subprocess.run(cmd, check=True)
    return BOOK_DIR / "_build" / "html" / "index.html"


def build_book(parameters: dict[str, object] | None = None) -> Path:
    """Execute every chapter in table-of-contents order, then build the HTML."""
    names = chapter_names()
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(names)}] executing {name} ...", flush=True)
        execute_chapter(name, parameters)
        print(f"[{i}/{len(names)}] {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    print("building HTML with jupyter-book ...", flush=True)
    index = build_html()
    print(f"book built in {time.perf_counter() - start:.0f} s: {index}", flush=True)
    return index


def show_parameters(**parameters: object) -> pd.DataFrame:
    """Display the parameters a chapter ran with as a small table (and return it)."""
    table = pd.DataFrame(
        {"parameter": list(parameters), "value": [str(v) for v in parameters.values()]}
    ).set_index("parameter")
    display(table)
    return table
