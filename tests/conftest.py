"""Shared fixtures: a small embedded cohort generated once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stroke_lib.data.synthetic import CohortSpec, generate_cohort

SMALL = CohortSpec(n_subjects=16, in_plane=64, seed=3)


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory) -> None:
    """Keep test outputs out of the checkout's data directory unless one is set."""
    os.environ.setdefault("STROKE_DATA_DIR", str(tmp_path_factory.mktemp("stroke-data")))
    os.environ["TQDM_DISABLE"] = "1"


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """A 16-subject cohort (64 px slices), generated once."""
    return generate_cohort(SMALL, root=tmp_path_factory.mktemp("cohort") / "c", progress=False)
