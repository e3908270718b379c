"""Chapter 05 (adaptive transfer) on folders in two real datasets' layouts, each reached by
one parameter: AISD as the target (CT series and one PNG mask per slice) and RSNA ICH 2019
as the source (a flat folder of slices with a label table)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stroke_lib.data import read_nifti
from stroke_lib.report import run_folder
from tests.conftest import run_chapter_text
from tests.test_chapter_04 import write_rsna_fixture

pytestmark = pytest.mark.notebook


def write_aisd_fixture(source: Path, dest: Path) -> int:
    """Each baseline CT series of an embedded cohort in AISD's layout (``image/<case>/CT/``,
    numeric case folders) with its acute-infarct mask as one PNG per slice, numbered from
    the bottom (``mask/<case>/<k>.png``, 255 = lesion); returns the cases with a lesion."""
    with_lesion = 0
    for series in sorted((source / "sourcedata" / "ct").glob("*/NCCT_HEAD")):
        subject = series.parent.name
        case = f"{1000000 + int(subject.removeprefix('sub-'))}"
        shutil.copytree(series, dest / "image" / case / "CT")
        acute = read_nifti(source / "derivatives" / "masks" / subject / f"{subject}_desc-lesion_mask.nii.gz").data == 1
        (dest / "mask" / case).mkdir(parents=True)
        for z in range(acute.shape[2]):  # read back transposed: (columns, rows) of the CT grid
            Image.fromarray((acute[:, :, z] * 255).astype(np.uint8).T).save(dest / "mask" / case / f"{z}.png")
        with_lesion += int(acute.any())
    return with_lesion


def test_chapter_05_runs_on_aisd_with_rsna_as_source(small_cohort, tmp_path):
    aisd, rsna = tmp_path / "aisd", tmp_path / "rsna_ich_2019"
    assert write_aisd_fixture(small_cohort, aisd) >= 4
    scans = write_rsna_fixture(small_cohort, rsna, copies=1)
    cut = scans.cut.dropna().tolist()
    params = {"profile": "smoke", "dataset": "aisd", "data_root": str(aisd), "source": "rsna_ich_2019",
              "source_root": str(rsna), "epochs": 1, "folds": 2, "n_bootstrap": 30, "crop": 16, "f_epochs": 1}
    text = run_chapter_text("05_adaptive_transfer", params, tmp_path / "05.ipynb")
    for note in ("**Old-infarct task skipped**", "**Regions simplified**", "**Ceiling and cascade skipped**",
                 "**Source from rsna_ich_2019**", "**Cascade skipped**"):
        assert note in text, note
    assert len(cut) == 1 and cut[0] in text  # the cut RSNA slice sinks its scan alone, named
    assert str(tmp_path) not in text
    record = json.loads((run_folder("05_adaptive_transfer", params, "smoke") / "results.json").read_text())
    m = record["metrics"]
    assert {"Table 1 #3: early sign, single slice", "Table 1 #4: early sign, lesion concatenation",
            "Table 3: early sign, WC40/WW20", "Table 4: freeze #0", "source task"} <= set(m)
    assert not any("old infarct" in k for k in m)
    assert 0 <= m["Table 4: freeze #0"]["auc"]["estimate"] <= 1
    assert record["cascade"] is None and len(record["picks"]) == 2  # one pick per fold


def test_chapter_05_refuses_a_dataset_without_region_labels(tmp_path):
    with pytest.raises(Exception, match="reads its target from 'synthetic' or 'aisd'"):
        run_chapter_text("05_adaptive_transfer", {"profile": "smoke", "dataset": "soop"}, tmp_path / "05.ipynb")
