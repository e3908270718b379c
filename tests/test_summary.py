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
