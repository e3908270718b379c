"""The synthesis chapter's machinery: verdicts from intervals, records found by their
chapter's name, claims that say what is missing, costs and ceilings read off records."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd

from stroke_lib.claims import CLAIMS, PAPER_CHAPTERS, claims_table, shortfalls_table
from stroke_lib.synthesis import (Estimate, above, best_of, ceilings_table, difference, load_records, negated,
                                  record_path, run_costs)


def test_above_needs_the_whole_interval_on_the_claims_side():
    assert above(Estimate(0.7, 0.55, 0.85), 0.5, "x")[0] == "supported"
    verdict, why = above(Estimate(0.6, 0.45, 0.75), 0.5, "x")
    assert verdict == "not supported" and "includes 0.5" in why
    verdict, why = above(Estimate(-0.2, -0.3, -0.1), 0.0, "x")
    assert verdict == "not supported" and why.startswith("the opposite")
    assert above(Estimate(0.7), 0.5, "x")[0] == "not supported"  # no interval, no support


def test_best_of_asks_for_separated_intervals_not_only_the_highest_estimate():
    separated = {"a": Estimate(0.8, 0.75, 0.85), "b": Estimate(0.6, 0.55, 0.65)}
    overlapping = {"a": Estimate(0.8, 0.6, 0.9), "b": Estimate(0.7, 0.5, 0.85)}
    assert best_of(separated, "a")[0] == "supported"
    assert best_of(overlapping, "a") == ("not supported",
                                         "highest here by its estimate, but the intervals overlap: not shown")
    verdict, why = best_of(separated, "b")
    assert verdict == "not supported" and why.startswith("a is highest")


def test_difference_reads_both_kinds_of_paired_test():
    boot = difference({"difference": 0.1, "lower": 0.02, "upper": 0.2, "p": 0.01})
    assert (boot.value, boot.lower, boot.upper) == (0.1, 0.02, 0.2)
    delong = difference({"difference": 0.1, "se": 0.05, "p": 0.04})
    assert math.isclose(delong.lower, 0.1 - 0.098) and math.isclose(delong.upper, 0.1 + 0.098)
    assert negated(boot) == Estimate(-0.1, -0.2, -0.02)


def _record(tmp_path, chapter: str, body: dict, dataset: str = "synthetic") -> None:
    path = record_path(tmp_path, chapter, dataset, "smoke", 0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"parameters": {"dataset": dataset}, "profile": "smoke", "device": "cpu",
                                "seed": 0, "timings_s": {"a": 2.0, "b": 5.0}, "metrics": {}} | body))


def test_records_are_found_by_chapter_dataset_profile_and_seed(tmp_path):
    _record(tmp_path, "03_ctnet_ht", {"seconds": 12.5})
    _record(tmp_path, "02_tractnet", {}, dataset="soop")
    found = load_records(tmp_path, {"02_tractnet": "synthetic", "03_ctnet_ht": "synthetic"}, "smoke", 0)
    assert set(found) == {"03_ctnet_ht"}
    assert set(load_records(tmp_path, {"02_tractnet": "soop"}, "smoke", 0)) == {"02_tractnet"}
    assert load_records(tmp_path, {"03_ctnet_ht": "synthetic"}, "full", 0) == {}
    costs = run_costs(tmp_path).set_index("chapter")
    assert costs.loc["03_ctnet_ht", "seconds"] == 12.5 and costs.loc["02_tractnet", "seconds"] == "-"
    assert set(costs.run) == {"book"}
    # an experiment's record (other parameters, a folder of its own) is a cost row, never the book's record
    experiment = record_path(tmp_path, "03_ctnet_ht", "synthetic-0a1b2c3d", "smoke", 0).parent
    shutil.copytree(record_path(tmp_path, "03_ctnet_ht", "synthetic", "smoke", 0).parent, experiment)
    (experiment / "results.json").write_text((experiment / "results.json").read_text().replace("12.5", "99.0"))
    assert load_records(tmp_path, {"03_ctnet_ht": "synthetic"}, "smoke", 0)["03_ctnet_ht"]["seconds"] == 12.5
    costs = run_costs(tmp_path)
    assert costs[costs.chapter == "03_ctnet_ht"][["run", "seconds"]].values.tolist() == [
        ["book", 12.5], ["experiment 0a1b2c3d", 99.0]]
    # and the synthesis reads the experiment when asked for it by "<dataset>-<digest>"
    picked = load_records(tmp_path, {"03_ctnet_ht": "synthetic-0a1b2c3d"}, "smoke", 0)
    assert picked["03_ctnet_ht"]["seconds"] == 99.0


def test_every_claim_without_its_record_is_not_testable_and_says_so():
    table = claims_table({})
    assert len(table) == len(CLAIMS) >= 15
    assert set(table.verdict) == {"not testable here"}
    assert all("no run record of" in why for why in table.why)
    assert set(table.chapter) == set(PAPER_CHAPTERS)
    assert set(shortfalls_table({})["measured here"]) == {"-"}


def test_a_record_without_the_part_a_claim_reads_names_the_part():
    record = {"parameters": {"dataset": "aisd"}, "profile": "smoke", "metrics": {}, "concatenation": {}}
    rows = claims_table({"05_adaptive_transfer": record}).query("chapter == '05_adaptive_transfer'")
    old = rows.set_index("claim").loc["Lesion concatenation helps on old infarcts"]
    assert old.verdict == "not testable here" and "no old-infarct task" in old.why
    early = rows.set_index("claim").loc["Lesion concatenation does not help on early signs"]
    assert early.verdict == "not testable here" and "'early'" in early.why


def test_the_claims_verdict_follows_the_record():
    """The same claim, two records: a transfer gain above 0 is supported, one whose
    interval includes 0 is not."""
    base = {"parameters": {"dataset": "synthetic"}, "profile": "smoke", "metrics": {}}
    gain = {"transfer_vs_scratch": {"difference": 0.05, "lower": 0.01, "upper": 0.09}}
    none = {"transfer_vs_scratch": {"difference": 0.05, "lower": -0.01, "upper": 0.09}}
    claim = "Adaptive transfer improves on the model without it"
    yes = claims_table({"05_adaptive_transfer": base | gain}).set_index("claim").loc[claim]
    no = claims_table({"05_adaptive_transfer": base | none}).set_index("claim").loc[claim]
    assert (yes.verdict, no.verdict) == ("supported", "not supported")
    assert yes.ours == "+0.050 [0.010, 0.090]" and yes.published.startswith("+3.43%")


def test_ceilings_come_from_each_kind_of_record():
    records = {
        "02_tractnet": {"ceiling": {"site A": {"oracle ceiling": "0.99 [0.97, 1.00]", "TRACT-NET AUC": "0.7",
                                               "TRACT-NET: share of the way from chance to the oracle ceiling": "0.4"}}},
        "05_adaptive_transfer": {"ceiling": {"early sign": {"estimate": 0.9, "lower": 0.85, "upper": 0.95}}},
        "04_cnn_rnn": {"metrics": {"truth (oracle ceiling)": {"macro_auc": {"estimate": 1.0, "lower": 1.0,
                                                                            "upper": 1.0}}}},
    }
    table = ceilings_table(records)
    assert isinstance(table, pd.DataFrame) and len(table) == 3
    assert list(table[table.chapter == "02_tractnet"].ceiling) == ["oracle ceiling"]
    assert table.set_index("chapter").loc["05_adaptive_transfer", "AUC [95% CI]"] == "0.90 [0.85, 0.95]"


def test_the_skull_claim_names_only_the_bars_its_interval_does_not_clear():
    """Above a uniform map but not above the random-weight control: the reason says so."""
    def shares(lower: float, upper: float) -> dict:
        rows = [{"input": "CT", "method": "Grad-CAM", "tissue": "skull", "network": network, "share": share,
                 "lower": lo, "upper": up, "uniform map": 0.084}
                for network, share, lo, up in (("trained", (lower + upper) / 2, lower, upper),
                                               ("random weights", 0.133, 0.12, 0.14))]
        return {"parameters": {"dataset": "synthetic"}, "profile": "smoke", "metrics": {}, "tissue_shares": rows}

    claim = "CTNet's attention falls on the skull (its stated limitation)"
    between = claims_table({"03_ctnet_ht": shares(0.121, 0.137)}).set_index("claim").loc[claim]
    assert between.verdict == "not supported"
    assert between.why == "no more than the same network with random weights (0.133) puts there, although above a uniform map"
    below = claims_table({"03_ctnet_ht": shares(0.05, 0.07)}).set_index("claim").loc[claim]
    assert below.why.startswith("less than a uniform map (0.084) puts there and less than the same network")
    above_both = claims_table({"03_ctnet_ht": shares(0.2, 0.3)}).set_index("claim").loc[claim]
    assert above_both.verdict == "supported"
