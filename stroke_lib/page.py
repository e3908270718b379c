"""What a chapter page shows: its opening, numbered figures, whole tables, rounded numbers.

Every chapter opens through ``chapter_opening``: what the reader will learn, the
parameters it ran with, the device and versions, the determinism statement and where its
run record is written. Figures go to the page through ``glue_figure`` so the Markdown can
place them as numbered MyST figures with a caption and alt text::

    glue_figure("fig_dwi", fig)        # in a code cell

    ```{glue:figure} fig_dwi
    :name: fig-dwi
    :alt: DWI and ADC of three subjects ...
    Caption ...
    ```
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from stroke_lib.paths import REPO_ROOT, data_dir
from stroke_lib.runtime import RunContext, versions

DETERMINISM = (
    "Deterministic: the same parameters and seed give the same cohort bytes and, on a CPU, "
    "the same weights and metrics. On a GPU, cuDNN's convolution algorithms may differ in "
    "the last bits between runs, so metrics can differ in their third decimal."
)


def table_options() -> None:
    """Show whole table cells (no truncation at 50 characters) and every column."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.width", 200)


def record_location(path: Path) -> str:
    """``path`` as the page shows it, never a machine path: relative to the data directory,
    else to the checkout, else its name alone."""
    try:
        return f"<data directory>/{Path(path).relative_to(data_dir()).as_posix()}"
    except ValueError:
        pass
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return Path(path).name


def show_parameters(**parameters: object) -> pd.DataFrame:
    """Display the parameters a chapter ran with as a small table (and return it)."""
    table = pd.DataFrame(
        {"parameter": list(parameters), "value": [str(v) for v in parameters.values()]}
    ).set_index("parameter")
    display(table)
    return table


RUN_RECORD = "run record (parameters, versions, timings, every metric with its interval, predictions)"


def chapter_opening(learn: Sequence[str], run: RunContext, parameters: dict[str, object],
                    record: Path, record_is: str = RUN_RECORD, record_verb: str = "written to") -> None:
    """The opening every chapter shows, in one call.

    Args:
        learn: the "what you will learn" bullets (Markdown).
        run: the resolved profile, device and seed (``runtime.start_run``).
        parameters: every parameter the chapter ran with, resolved (profile defaults
            filled in).
        record: the folder or file where the chapter writes what ``record_is`` says
            (``record_verb``: "written to", or "read from" for a page that reads records).
    """
    table_options()
    bullets = "\n".join(f"- {item}" for item in learn)
    display(Markdown(f"**What you will learn**\n\n{bullets}\n\n**This run**"))
    show_parameters(**parameters)
    v = versions()
    stack = ", ".join(f"{k} {v[k]}" for k in ("torch", "monai", "numpy", "scikit-learn", "pydicom",
                                             "nibabel") if k in v)
    display(Markdown(
        f"Profile **{run.profile}** on **{run.device}**, seed {run.seed}. {DETERMINISM} "
        f"Python {v['python']}; {stack}. The {record_is} is {record_verb} "
        f"`{record_location(record)}`."))


def left_out_notes(loader_rejects: pd.DataFrame | None, unreadable: Sequence[str] = ()) -> list[str]:
    """One Markdown sentence per file a chapter could not use as it was: the loader's
    rejects (``Cohort.rejects``: patient pseudonym, file, problem, action ``skipped`` or
    ``repaired``), each by its file's name alone (folder names may carry the names or IDs
    the loaders pseudonymise), and the scans a dataset builder left out
    (``ArrayDataset.rejected``, already named so)."""
    verbs = {"skipped": "Left out by the loader", "repaired": "Repaired by the loader"}
    notes = [] if loader_rejects is None else [
        f"**{verbs.get(r.action, r.action)}**: `{Path(str(r.file)).name}` of patient {r.patient_id}, {r.problem}"
        for r in loader_rejects.itertuples()]
    return notes + [f"**Left out**, a file that could not be used: {note}" for note in unreadable]


def glue_figure(name: str, fig: plt.Figure) -> None:
    """Glue ``fig`` for a ``{glue:figure}`` directive and close it (so it shows once)."""
    glue(name, fig, display=False)
    plt.close(fig)


def decimals_for(lower: float, upper: float) -> int:
    """Decimals an estimate deserves: two significant digits of its interval's width.

    Width 0.18 -> 2 decimals, 0.04 -> 3; an undefined or zero width -> 3; at most 4.
    """
    width = upper - lower
    if not math.isfinite(width) or width <= 0:
        return 3
    return int(min(4, max(0, 1 - math.floor(math.log10(width)))))


def format_interval(estimate: float, lower: float, upper: float, style: str = "brackets") -> str:
    """``0.78 [0.69, 0.87]`` (or ``0.78 (95% CI 0.69-0.87)`` with ``style="ci"``), rounded
    to what the interval supports; an estimate without an interval keeps 3 decimals."""
    if not math.isfinite(estimate):
        return "undefined"
    d = decimals_for(lower, upper)
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return f"{estimate:.3f} (no interval)"
    if style == "ci":
        return f"{estimate:.{d}f} (95% CI {lower:.{d}f} to {upper:.{d}f})"
    return f"{estimate:.{d}f} [{lower:.{d}f}, {upper:.{d}f}]"


def interval_column(table: pd.DataFrame) -> pd.Series:
    """A metrics table (estimate, lower, upper[, method]) as one text column of rounded
    intervals; an interval whose ``method`` is Wilson's says so ("... (Wilson)"), so a page
    shows which intervals are not the patient bootstrap."""
    def cell(r: pd.Series) -> str:
        text = format_interval(r.estimate, r.lower, r.upper)
        return f"{text} (Wilson)" if str(r.get("method", "")).startswith("Wilson") else text
    return table.apply(cell, axis=1)
