"""Cohort measurements read back from the written files."""

from __future__ import annotations

from stroke_lib.data.cohort import load_embedded
from stroke_lib.data.summary import lesion_contrast
from stroke_lib.plots import LESION_STYLES


def test_acute_infarcts_are_bright_on_dwi_and_dark_on_adc(small_cohort):
    rows = load_embedded(small_cohort).table.query("modality == 'DWI'")
    table = lesion_contrast(rows, LESION_STYLES)
    acute = table.loc["acute infarct"]
    assert acute.subjects >= 3
    assert acute["DWI b1000 / normal brain"] > 1.5 and acute["ADC / normal brain"] < 0.8
    assert set(table.index) == {name for name, _ in LESION_STYLES.values()}


def test_severity_task_splits_sites_and_says_what_a_dataset_lacks(small_cohort):
    from stroke_lib.datasets import severity_task

    table = load_embedded(small_cohort).table
    task = severity_task(table, 3, (16, 16, 16))
    isch = table.query("modality == 'DWI' and stroke_type == 'ischaemic'")
    assert len(task.data.y) == len(isch) and task.internal_site == "A"
    assert set(task.data.rows.site.to_numpy()[task.external]) <= {"B"}
    assert (task.data.y == (task.data.rows.nihss > 3)).all()
    assert task.availability("synthetic", True, "complete") == "complete" or not task.has_external
    one_site = severity_task(table.assign(site="SOOP").drop(columns=["mask"]), 3, (16, 16, 16))
    text = one_site.availability("soop", False, "complete")
    assert not one_site.has_external and not one_site.has_masks
    assert "External evaluation skipped" in text and "Localisation skipped" in text and "Oracle" in text
