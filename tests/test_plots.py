"""Figures show what their captions say: an acute infarct stays visible in the DWI
display range, each lesion type has its own outline colour and legend entry, and the
mass-effect plot shows every stroke subject over the literature's band."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from stroke_lib.plots import LESION_STYLES, ct_slices, dwi_adc, mass_effect, mri_display_range, two_acquisitions  # noqa: E402


def _head() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 24^3 toy head: brain DWI ~520 with CSF-free tissue, an acute infarct at 1.5x
    (labels 1), an old infarct (2, dark on DWI, bright on ADC) and a bright outlier voxel."""
    rng = np.random.default_rng(0)
    dwi = rng.normal(520, 20, (24, 24, 24))
    adc = rng.normal(800, 30, (24, 24, 24))
    labels = np.zeros((24, 24, 24), np.uint8)
    labels[4:9, 4:9, 10:14] = 1
    labels[14:19, 14:19, 10:14] = 2
    dwi[labels == 1], adc[labels == 1] = 780, 450
    dwi[labels == 2], adc[labels == 2] = 300, 2800
    dwi[0, 0, 0] = 5000  # one hot voxel would set a percentile-of-volume maximum
    return dwi, adc, labels


def test_acute_infarct_stays_brighter_than_normal_brain_in_the_dwi_range():
    dwi, adc, labels = _head()
    lo, hi = mri_display_range(dwi, adc > 0, 2.0)
    assert lo == 0
    assert hi > 780 > 520  # the infarct is below the white point: not clipped like normal tissue
    grey = lambda v: min(v, hi) / hi  # noqa: E731
    assert grey(780) - grey(520) > 0.2  # and clearly brighter on the screen
    lo_adc, hi_adc = mri_display_range(adc, adc > 0, 2.5)
    assert lo_adc == 0 and hi_adc > 2000  # CSF-like old infarct near white
    assert (800 - 450) / hi_adc > 0.15  # the acute infarct clearly darker than brain on ADC


def test_each_lesion_type_has_its_own_colour_and_legend_entry():
    colours = [c for _, c in LESION_STYLES.values()]
    assert len(set(colours)) == len(colours) == 3
    dwi, adc, labels = _head()
    fig = dwi_adc([("toy", dwi, adc, labels, (1, 2))], "toy")
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert texts == ["acute infarct", "old infarct"]
    drawn = {tuple(np.round(c.get_edgecolor()[0][:3], 3)) for ax in fig.axes for c in ax.collections
             if hasattr(c, "get_edgecolor") and len(c.get_edgecolor())}
    wanted = {tuple(np.round(matplotlib.colors.to_rgb(LESION_STYLES[v][1]), 3)) for v in (1, 2)}
    assert wanted <= drawn


def test_mass_effect_plots_every_stroke_subject_over_the_literature_band():
    measured = pd.DataFrame({"stroke_type": ["haemorrhagic", "haemorrhagic", "ischaemic", "none", "ischaemic",
                                             "ischaemic"],
                             "acute_lesion_ml": [10.0, 40.0, 5.0, 0.0, 80.0, 120.0],
                             "ventricle_shift_mm": [1.5, 6.0, 0.1, 0.0, np.nan, 0.5]})
    fig = mass_effect(measured, (0.1, 0.2), "t")
    ax = fig.axes[0]
    points = np.concatenate([np.asarray(c.get_offsets()) for c in ax.collections[1:]])  # [0]: the band
    assert sorted(map(tuple, points)) == [(5.0, 0.1), (10.0, 1.5), (40.0, 6.0), (120.0, 0.5)]  # no mimic, no NaN
    band = ax.collections[0].get_paths()[0].vertices
    assert np.isclose(band[:, 0].max(), 40.0) and np.isclose(band[:, 1].max(), 0.2 * 40.0)  # to the largest haematoma
    assert "0.1-0.2 mm per ml" in [t.get_text() for t in ax.get_legend().get_texts()][0]


def test_two_acquisitions_outlines_the_ct_brain_on_each_dwi_image():
    yy, xx = np.mgrid[:32, :32]
    brain = ((xx - 16) ** 2 + (yy - 16) ** 2 < 100).astype(float)
    shifted = np.roll(brain, 2, axis=1)  # the DWI's brain, displaced along phase encoding
    rows = [(f"slice {k}", 30 + 10 * brain, 2.3 * shifted, shifted, 850 * shifted, brain) for k in (1, 2)]
    fig = two_acquisitions(rows, "t")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 8
    for i, ax in enumerate(images):
        outlined = len(ax.collections) > 0
        assert outlined == (i % 4 != 0), i  # the CT's own panel carries no outline
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["the CT's brain, registered onto the DWI"]


def test_ct_slices_draws_each_slice_in_each_window_in_radiological_order():
    hu = np.full((20, 20), 40.0)
    hu[:5] = 1000.0  # bone on the patient's left (RAS axis 0 runs to the right)
    fig = ct_slices([("a", hu, None), ("b", hu, None)], [(40.0, 80.0), (600.0, 2800.0)], "t")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 4
    assert [im.get_clim() for im in images[:2]] == [(0.0, 80.0), (-800.0, 2000.0)]
    shown = images[0].get_array()
    assert shown[:, :5].mean() == 40.0 and shown[:, -5:].mean() == 1000.0  # the patient's left on the image's right
