"""Benchmark records: what each script under ``benchmarks/`` measured, where and when.

Each benchmark writes one JSON file, ``RECORD_DIR/NAME.json`` by default (the book's
reproducibility appendix reads that folder), replaced by its next run:

- ``benchmark``: the script's name; ``command``: how it was run;
- ``device``: ``"cuda"`` or ``"cpu"``; ``device_name``: the GPU's name or the CPU's
  threads; a figure measured on a CPU is never read as a GPU figure;
- ``date`` (UTC, ISO 8601), ``versions`` (``runtime.versions``), ``settings``;
- ``rows``: the script's table, one dict per printed row.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from stroke_lib.errors import DataError
from stroke_lib.paths import REPO_ROOT

#: Where the benchmarks write their records and the appendix reads them.
RECORD_DIR = REPO_ROOT / "benchmarks" / "records"


def device_name(device: str) -> str:
    """The GPU's name on ``"cuda"``, else ``"CPU, N threads"`` (torch's intra-op threads)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"CPU, {torch.get_num_threads()} threads"


def measured_on_gpu(record: dict) -> bool:
    """Whether a benchmark record's figures were measured on a GPU."""
    return str(record["device"]).startswith("cuda")


def write_benchmark(name: str, rows: list[dict], device: str, settings: dict | None = None,
                    folder: Path | None = None) -> Path:
    """Write the record of benchmark ``name`` (its printed rows) into ``folder``
    (default ``RECORD_DIR``); returns its path."""
    from stroke_lib.runtime import versions

    folder = Path(folder or RECORD_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "command": " ".join(["python", *sys.argv]), "device": device,
              "device_name": device_name(device), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "versions": versions(), "settings": settings or {}, "rows": rows}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    return path


def read_benchmarks(folder: Path | None = None) -> tuple[dict[str, dict], list[str]]:
    """Every record in ``folder`` (default ``RECORD_DIR``), by benchmark name, and a
    sentence for each file that is not a record (naming it); an unreadable file never
    hides the others."""
    records, bad = {}, []
    for path in sorted(Path(folder or RECORD_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict) or not {"benchmark", "device", "rows"} <= record.keys():
                raise DataError(path, "not a benchmark record (no benchmark, device or rows)")
            records[record["benchmark"]] = record
        except DataError as err:
            bad.append(f"{path.name} left out: {err.problem}")
        except (OSError, ValueError) as err:
            bad.append(f"{path.name} left out: {err}")
    return records, bad
