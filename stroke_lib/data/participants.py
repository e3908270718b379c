"""BIDS ``participants.tsv``: read, validate against the manifest's column types, match to
the image folders.

Real releases have quirks that a plain ``pd.read_csv`` turns into silent errors: SOOP
censors ages above 89 as ``"89+"``, writes ``"n/a"`` for missing values, and a hand-edited
table can hold ``"unknown"`` in a numeric column, a duplicated row, or an ID that differs
from its folder name only in case, whitespace or the ``sub-`` prefix. ``read_participants``
returns a table whose typed columns are numeric and lists every value it changed or could
not use as reject rows (``stroke_lib.data.rejects``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stroke_lib.data.rejects import reject
from stroke_lib.errors import DataError

#: Cells BIDS and common exports use for a missing value.
MISSING = {"", "n/a", "na", "nan", "none"}
_CENSORED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*\+\s*$")  # "89+"


@dataclass
class Participants:
    """A validated participants table.

    Attributes:
        table: one row per participant; ``participant_id`` is a string, every column the
            manifest types as ``number``/``integer`` is float (NaN where missing).
        rejects: rows (``stroke_lib.data.rejects.REJECT_COLUMNS``) for values read with a
            repair (``repaired``) and participants whose label cannot be used (``skipped``).
        skipped: participant IDs whose label column was unusable.
    """

    table: pd.DataFrame
    rejects: list[dict[str, object]] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)


def id_key(pid: str) -> str:
    """The form two IDs share when they differ only in case, whitespace or ``sub-``."""
    key = str(pid).strip().lower()
    return key[4:] if key.startswith("sub-") else key


def id_hint(pid: str, candidates: list[str], what: str) -> str:
    """A sentence naming a candidate that matches ``pid`` up to case, whitespace and the
    ``sub-`` prefix, or ``""`` when none does. ``what`` names the candidates' kind."""
    near = [c for c in candidates if c != pid and id_key(c) == id_key(pid)]
    if not near:
        return ""
    return (f"; hint: {what} {near[0]!r} differs only in case, whitespace or the 'sub-' "
            f"prefix: make the participant_id and the folder name identical")


def _number(value: str) -> tuple[float | None, str]:
    """Parse a cell: (number, "") or (number, repair note) or (None, "")."""
    try:
        return float(value), ""
    except ValueError:
        pass
    m = _CENSORED.match(value)
    if m:
        return float(m.group(1)), f"censored value {value!r} read as {m.group(1)}"
    return None, ""


def read_participants(
    path: str | Path, label: str, columns: dict[str, dict] | None = None
) -> Participants:
    """Read and validate a BIDS participants.tsv.

    Args:
        path: the participants.tsv.
        label: the column a participant cannot be used without (e.g. ``"nihss"``): a
            missing, non-numeric or out-of-range value there rejects the participant.
        columns: column -> ``{"type": "number"|"integer"|"string", "min": .., "max": ..}``
            (the manifest's ``participants.columns``). Typed columns absent from the file
            are ignored; a non-numeric value in a typed column other than ``label`` is
            read as missing and noted.

    A UTF-8 byte-order mark and spaces around column names are ignored; a row without a
    participant_id is rejected.

    Raises:
        DataError naming the file: missing or unreadable, no ``participant_id`` or
        ``label`` column, or duplicated participant IDs (listed).
    """
    path = Path(path)
    columns = columns or {}
    if not path.exists():
        raise DataError(path, "participants.tsv not found")
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as exc:  # pandas raises several types on a malformed table
        raise DataError(path, f"cannot be read as a tab-separated table ({exc})") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in ("participant_id", label) if c not in raw.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; found {list(raw.columns)}")
    dup = raw.participant_id[raw.participant_id.duplicated()].unique().tolist()
    if dup:
        raise DataError(path, f"participant(s) listed more than once: {dup}; keep one row each")
    no_id = raw.participant_id.str.strip() == ""
    out = Participants(raw[~no_id].reset_index(drop=True))
    for line in raw.index[no_id]:
        out.rejects.append(reject("", path, f"line {line + 2} has no participant_id", "skipped"))
    table = out.table
    for col in table.columns:
        if col != "participant_id":
            table[col] = table[col].where(~table[col].str.strip().str.lower().isin(MISSING))
    typed = {c: spec for c, spec in columns.items() if c in table.columns}
    typed.setdefault(label, {"type": "number"})
    for col, spec in typed.items():
        if spec.get("type", "string") not in ("number", "integer"):
            continue
        values = []
        for pid, cell in zip(table.participant_id, table[col]):
            values.append(_typed_cell(out, path, pid, col, cell, spec, col == label))
        table[col] = pd.Series(values, index=table.index, dtype=float)
    return out


def _typed_cell(out: Participants, path: Path, pid: str, col: str, cell: object,
                spec: dict, is_label: bool) -> float:
    """One cell of a numeric column as float (NaN when missing or unusable), with the
    repair or rejection recorded in ``out``."""
    if not isinstance(cell, str):  # missing
        return float("nan")
    number, note = _number(cell.strip())
    problem = ""
    if number is None or not math.isfinite(number):
        problem = f"{col} {cell!r} is not a number"
    elif spec.get("type") == "integer" and number != int(number):
        problem = f"{col} {cell!r} is not a whole number"
    elif ("min" in spec and number < spec["min"]) or ("max" in spec and number > spec["max"]):
        problem = f"{col} {cell!r} is outside {spec.get('min', '-inf')}..{spec.get('max', 'inf')}"
    if problem:
        if is_label:
            out.rejects.append(reject(pid, path, f"participant {pid}: {problem}; fix the value "
                                      f"or leave it n/a", "skipped"))
            out.skipped.add(pid)
        else:
            out.rejects.append(reject(pid, path, f"participant {pid}: {problem}; read as "
                                      f"missing", "repaired"))
        return float("nan")
    if note:
        out.rejects.append(reject(pid, path, f"participant {pid}: {col} {note}", "repaired"))
    return number
