"""The execution cache of the book: what an executed chapter depends on, as one key.

A chapter is re-executed only when its key changed. The key is the SHA-256 of a JSON
object of everything the executed notebook depends on:

- ``source``: the SHA-256 of the chapter's jupytext source (``notebooks/NAME.py``);
- ``parameters``: every parameter the chapter declares, with the value it runs with (the
  one passed, else its declared default), ``profile`` and ``device`` resolved as the
  chapter resolves them (``auto`` -> ``cuda``/``cpu``, ``auto`` -> ``full``/``smoke``);
- ``code``: the SHA-256 of every ``.py`` file of the ``stroke_lib`` package (path and
  bytes), so any library change re-executes every chapter;
- ``data``: the data directory (``STROKE_DATA_DIR``), and for a real dataset its folder
  and the SHA-256 of its top-level label tables (``*.tsv``, ``*.csv``: ``participants.tsv``,
  RSNA's ``stage_2_train.csv``); images are not hashed (hundreds of GB), so a dataset
  whose images change under unchanged label tables needs ``FORCE=1``. The embedded cohort
  is a deterministic function of its parameters (``seed``, ``n_subjects``, ``in_plane``,
  already in ``parameters``) and of the generator's code (in ``code``). A chapter with a
  ``records`` parameter (the reproducibility appendix) also depends on the SHA-256 of
  each benchmark record in that folder (default ``benchmark_records.RECORD_DIR``);
- ``versions``: Python and the main packages (``stroke_lib.runtime.versions``).

The record is a small JSON beside the executed notebook, ``NAME.cache.json``: the key,
its parts, the notebook's SHA-256 (a notebook changed since, for example by ``make
chapter`` with other parameters, is not reused), when it ran and its wall time in seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from stroke_lib.paths import data_dir

PACKAGE_DIR = Path(__file__).resolve().parent
CACHE_SUFFIX = ".cache.json"


def file_hash(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 over every ``.py`` file under ``package_dir`` (relative path and bytes, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def resolved_parameters(declared: dict[str, dict[str, str]], parameters: dict[str, object]) -> dict:
    """Every declared parameter with the value the chapter runs with; ``profile`` and
    ``device`` resolved (``auto`` replaced by what it means on this machine).

    Args:
        declared: papermill's record of the chapter's parameters (name -> default, type...).
        parameters: the values passed; the rest keep their declared default (as source text).
    """
    from stroke_lib.runtime import resolve_device, resolve_profile

    out: dict[str, object] = {k: v["default"] for k, v in declared.items()}
    out.update(parameters)
    literal = {k: str(out[k]).strip("'\"") for k in ("profile", "device") if k in out}
    if "device" in literal:
        out["device"] = resolve_device(literal["device"])
    if "profile" in literal:
        out["profile"] = resolve_profile(literal["profile"], str(out.get("device", resolve_device())))
    return {k: out[k] for k in sorted(out)}


def data_fingerprint(parameters: dict[str, object]) -> dict[str, object]:
    """What the chapter's data is: the data directory, for a real dataset its folder and
    the hashes of its top-level label tables (``*.tsv``, ``*.csv``), and for a chapter
    with a ``records`` parameter the hashes of the benchmark records it reads."""
    from stroke_lib.benchmark_records import RECORD_DIR

    out: dict[str, object] = {"data_dir": str(data_dir())}
    if "records" in parameters:
        folder = Path(str(parameters["records"]).strip("'\"") or RECORD_DIR)
        out["benchmark_records"] = {p.name: file_hash(p) for p in sorted(folder.glob("*.json"))}
    dataset = str(parameters.get("dataset", "synthetic")).strip("'\"")
    if dataset != "synthetic":
        root_param = str(parameters.get("data_root", "")).strip("'\"")
        root = Path(root_param) if root_param else data_dir() / dataset
        out["root"] = str(root.resolve())
        out["tables"] = {p.name: file_hash(p) for p in sorted(root.glob("*"))
                         if p.suffix in {".tsv", ".csv"} and p.is_file()} if root.is_dir() else {}
    return out


def chapter_key(source: Path, declared: dict[str, dict[str, str]], parameters: dict[str, object],
                code: str | None = None, inputs: list[Path] | None = None) -> tuple[str, dict]:
    """The key of an execution of chapter ``source`` and the parts it is made of;
    ``inputs``: files the chapter reads that other runs write (run or benchmark records),
    whose names and contents join the key."""
    from stroke_lib.runtime import versions

    params = resolved_parameters(declared, parameters)
    parts = {"source": file_hash(source), "parameters": params, "code": code or code_hash(),
             "data": data_fingerprint(params), "versions": versions()}
    if inputs is not None:
        parts["inputs"] = tree_hash(sorted(inputs))
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), parts


def record_path(notebook: Path) -> Path:
    """``NAME.cache.json`` beside the executed ``NAME.ipynb``."""
    notebook = Path(notebook)
    return notebook.with_name(notebook.stem + CACHE_SUFFIX)


def read_record(notebook: Path) -> dict | None:
    """The cache record of an executed notebook, or None when missing or unreadable."""
    path = record_path(notebook)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_fresh(notebook: Path, key: str) -> bool:
    """Whether ``notebook`` was executed with ``key`` and is unchanged since."""
    record = read_record(notebook)
    return (record is not None and record.get("key") == key and Path(notebook).exists()
            and record.get("notebook_sha256") == file_hash(notebook))


def write_record(notebook: Path, key: str, parts: dict, seconds: float) -> Path:
    """Write the cache record of a notebook just executed in ``seconds`` (wall time)."""
    record = {"key": key, "parts": parts, "notebook_sha256": file_hash(notebook),
              "executed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "seconds": round(seconds, 2)}
    path = record_path(notebook)
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return path


def tree_hash(paths: list[Path]) -> str:
    """SHA-256 over files (path and bytes) in the given order; a missing file counts as absent."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        digest.update(Path(path).read_bytes() if Path(path).is_file() else b"<missing>")
    return digest.hexdigest()
