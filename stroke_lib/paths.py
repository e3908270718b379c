"""Where generated data and run outputs live.

One data directory holds everything the book generates: ``STROKE_DATA_DIR`` when set
(as MONAI tutorials honour ``MONAI_DATA_DIRECTORY``), else ``data/`` in the checkout,
which git ignores.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = REPO_ROOT / "data_manifests"


def data_dir() -> Path:
    """Return the data directory, creating it if needed."""
    root = Path(os.environ.get("STROKE_DATA_DIR", REPO_ROOT / "data")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
