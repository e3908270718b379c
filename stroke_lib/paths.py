"""Where generated data and run outputs live.

One data directory holds everything the book generates: ``STROKE_DATA_DIR`` when set
(as MONAI tutorials honour ``MONAI_DATA_DIRECTORY``), else ``data/`` in the checkout,
which git ignores.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = REPO_ROOT / "data_manifests"


def data_dir() -> Path:
    """Return the data directory, creating it if needed."""
    root = Path(os.environ.get("STROKE_DATA_DIR", REPO_ROOT / "data")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_name(chapter: str, dataset: str, profile: str, seed: int,
             changed: Mapping[str, object] | None = None) -> str:
    """``<chapter>-<dataset>-<profile>-seed<seed>``, the name of the book's own run; when
    ``changed`` (parameter -> value) is not empty, 8 hex digits of its JSON follow the
    dataset (``<chapter>-<dataset>-<digest>-<profile>-seed<seed>``), so that
    ``<dataset>-<digest>`` names the experiment wherever a dataset's name is asked for (the
    synthesis's ``datasets`` parameter)."""
    if changed:
        digest = hashlib.sha1(json.dumps(dict(changed), sort_keys=True, default=str).encode()).hexdigest()
        dataset = f"{dataset}-{digest[:8]}"
    return f"{chapter}-{dataset}-{profile}-seed{seed}"
