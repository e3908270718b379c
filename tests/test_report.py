"""Published numbers beside ours only where definitions match, ROC points only where they
are true operating points, ceilings beside AUCs, and pages that name Wilson intervals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from stroke_lib import report
from stroke_lib.metrics import metrics_table
from stroke_lib.page import format_interval, interval_column


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    return y, rng.normal(size=80) + y, np.arange(80).astype(str)


def test_tractnet_sensitivity_sits_beside_weighted_recall_only(scored):
    y, score, groups = scored
    ours = metrics_table(y, score, groups, n_boot=100)
    table = report.paper_vs_study("tractnet", "AMC (3-fold CV)", ours, "synthetic")
    column = "published (AMC (3-fold CV))"
    assert table.loc[("sensitivity", "weighted_recall"), column] == pytest.approx(0.81)
    # our positive-class sensitivity is its own row, never beside the published value
    assert table.loc[("sensitivity", "sensitivity"), column] == report.NOT_COMPARABLE
    assert table.loc[("sensitivity", "sensitivity"), "synthetic"] == format_interval(
        *ours.loc["sensitivity", ["estimate", "lower", "upper"]])
    # the published "specificity" has no metric of ours with its definition
    assert table.loc[("specificity", "-"), "synthetic"] == "no metric of the same definition"
    assert table.loc[("specificity", "specificity"), column] == report.NOT_COMPARABLE
    assert table.loc[("auc", "auc"), column] == pytest.approx(0.8137)


def test_no_published_point_is_drawn_unless_it_is_a_true_operating_point(tmp_path, monkeypatch):
    assert report.published_roc_points("tractnet") == {}  # its pairs are weighted recalls
    data = yaml.safe_load(report.PUBLISHED.read_text())
    data["tractnet"]["results"][0]["roc_point"] = True
    path = tmp_path / "published_numbers.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(report, "PUBLISHED", path)
    points = report.published_roc_points("tractnet")
    assert points == {"tractnet AMC (3-fold CV) (published, other data)": (0.81, 0.9645)}


def test_ceiling_beside_auc_measures_the_share_of_the_way(scored):
    y, score, groups = scored
    tables = {"M, cv": metrics_table(y, score, groups, n_boot=100)}
    perfect = y + np.linspace(0, 0.5, len(y))  # ranks every positive above every negative
    table = report.ceiling_beside_auc({"cv": (y, {"oracle ceiling": perfect, "image-only ceiling": score},
                                              groups)}, tables, ["M"], n_boot=100)
    auc = tables["M, cv"].loc["auc"].estimate
    assert table.loc["cv", "oracle ceiling"].startswith("1.0")
    assert float(table.loc["cv", "M: share of the way from chance to the oracle ceiling"]) == pytest.approx(
        (auc - 0.5) / 0.5, abs=0.006)
    assert table.loc["cv", "patients"] == 80
    unknown = report.ceiling_beside_auc({"cv": (y, None, groups)}, tables, ["M"], n_boot=100)
    assert unknown.loc["cv", "oracle ceiling"] == "unknown on real data"


def test_interval_column_names_wilson_intervals():
    y = np.array([0] * 6 + [1] * 6)
    score = np.where(y == 1, 0.9, 0.1)  # sensitivity 1: a Wilson interval
    table = metrics_table(y, score, np.arange(12).astype(str), n_boot=50)
    column = interval_column(table)
    assert table.loc["sensitivity", "method"].startswith("Wilson")
    assert column["sensitivity"].endswith("(Wilson)")
    assert not column["auc"].endswith("(Wilson)")
    assert isinstance(column, pd.Series)


def test_run_folder_names_the_book_run_and_gives_an_experiment_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("STROKE_DATA_DIR", str(tmp_path))
    book = tmp_path / "runs" / "03_ctnet_ht-synthetic-smoke-seed0"
    # the defaults, stated or not, and the parameters that say where and on what it runs
    assert report.run_folder("03_ctnet_ht", {}, "smoke") == book
    assert report.run_folder("03_ctnet_ht", {"lr": 1e-3, "folds": 5, "epochs": 0}, "smoke") == book
    assert report.run_folder("03_ctnet_ht", {"device": "cpu", "profile": "smoke", "unrelated": 1}, "smoke") == book
    assert report.run_folder("03_ctnet_ht", {"dataset": "cq500", "data_root": "/elsewhere", "seed": 2},
                             "smoke").name == "03_ctnet_ht-cq500-smoke-seed2"
    # any other parameter set away from its default: a folder of its own, the same for the same values
    n400 = report.run_folder("03_ctnet_ht", {"n_subjects": 400}, "smoke")
    assert n400.parent == book.parent and re.fullmatch(r"03_ctnet_ht-synthetic-[0-9a-f]{8}-smoke-seed0", n400.name)
    assert report.run_folder("03_ctnet_ht", {"n_subjects": 400, "lr": 1e-3}, "smoke") == n400
    assert report.run_folder("03_ctnet_ht", {"n_subjects": 401}, "smoke") != n400
    assert report.run_folder("03_ctnet_ht", {"n_subjects": 400, "epochs": 5}, "smoke") not in {n400, book}
    # the synthesis reads the book's run where the chapter writes it, and an experiment as "<dataset>-<digest>"
    from stroke_lib.synthesis import record_path

    assert record_path(tmp_path / "runs", "03_ctnet_ht", "synthetic", "smoke", 0) == book / "results.json"
    digest = n400.name.split("-")[2]
    assert record_path(tmp_path / "runs", "03_ctnet_ht", f"synthetic-{digest}", "smoke", 0) == n400 / "results.json"
