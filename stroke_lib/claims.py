"""The four papers' claims, one function each, read from the chapters' run records.

Each claim function takes its chapter's run record (``stroke_lib.report.write_record``)
and returns the row of the synthesis chapter's claims table: the paper's number (from
``book/published_numbers.yaml``), ours with its interval, on which data, the verdict
(``stroke_lib.synthesis.VERDICTS``) and why. ``claims_table`` runs them all; a claim whose
record lacks what it reads (a part the chapter skips on a real dataset) is "not testable
here" and says what is missing.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from stroke_lib.report import published
from stroke_lib.synthesis import Estimate, above, best_of, difference, metric, negated, signed

#: The paper chapters, each with its key in book/published_numbers.yaml.
PAPER_CHAPTERS = {"02_tractnet": "tractnet", "03_ctnet_ht": "ctnet", "04_cnn_rnn": "waghmare",
                  "05_adaptive_transfer": "jung"}
COLUMNS = ["chapter", "paper", "claim", "published", "ours", "data", "verdict", "why"]

ClaimFn = Callable[[dict], dict]
#: (chapter, the claim in words, the function that reads it off the chapter's record).
CLAIMS: list[tuple[str, str, ClaimFn]] = []


def claim(chapter: str, text: str) -> Callable[[ClaimFn], ClaimFn]:
    """Register a claim of ``chapter``'s paper."""
    def register(fn: ClaimFn) -> ClaimFn:
        CLAIMS.append((chapter, text, fn))
        return fn
    return register


def paper_value(paper: str, cohort: str, metric_name: str) -> float:
    """One published number of book/published_numbers.yaml."""
    table = published(paper)
    hit = table[(table.cohort == cohort) & (table.metric == metric_name)]
    if hit.empty:
        raise KeyError(f"book/published_numbers.yaml: {paper} has no {metric_name} for {cohort!r}")
    return float(hit.published.iloc[0])


def data_text(record: dict, design: str) -> str:
    """On which data a number of ours stands: dataset, profile and design."""
    dataset = record.get("parameters", {}).get("dataset", "synthetic")
    return f"{dataset} ({record.get('profile')} profile), {design}"


def row(published_text: str, ours: Estimate | str, data: str, verdict: tuple[str, str]) -> dict:
    """A claims-table row (less chapter, paper and claim)."""
    return {"published": published_text, "ours": ours if isinstance(ours, str) else ours.text(),
            "data": data, "verdict": verdict[0], "why": verdict[1]}


def difference_row(published_text: str, d: Estimate, data: str, what: str) -> dict:
    """A row for a claim that a difference is above 0."""
    return row(published_text, signed(d), data, above(d, 0.0, what))


def _key(record: dict, model: str, evaluation: str) -> str:
    """The metrics-table name ``"<model>, <evaluation...>"`` of a record."""
    hits = [k for k in record["metrics"] if k.startswith(f"{model}, ") and evaluation in k]
    if not hits:
        raise KeyError(f"metrics table of {model} on {evaluation}")
    return hits[0]


# --- TRACT-NET (chapter 02) -------------------------------------------------------------

def _above_chance(model: str, evaluation: str, published_text: Callable[[], str], design: str,
                  note: str = "") -> ClaimFn:
    """A claim that ``model`` learns the task: its AUC on ``evaluation`` above 0.5."""
    def read(r: dict) -> dict:
        auc = metric(r, _key(r, model, evaluation))
        verdict, why = above(auc, 0.5, f"{model}'s AUC")
        return row(published_text(), auc, data_text(r, design), (verdict, why + note))
    return read


claim("02_tractnet", "TRACT-NET separates minor from non-minor stroke on DWI")(_above_chance(
    "TRACT-NET", "cross-validation", lambda: f"AUC {paper_value('tractnet', 'AMC (3-fold CV)', 'auc'):.4f} (AMC, 3-fold CV)",
    "cross-validated by patient", "; AMC's own value needs AMC's data"))
claim("02_tractnet", "TRACT-NET carries to an external cohort")(_above_chance(
    "TRACT-NET", "external", lambda: f"AUC {paper_value('tractnet', 'SOOP (external)', 'auc'):.4f} (SOOP, external)",
    "trained on site A, tested on the other sites"))


@claim("02_tractnet", "TRACT-NET outperforms other classification models")
def _tractnet_vs_cnns(r: dict) -> dict:
    tests = {k: difference(v) for k, v in r["paired_delong_vs_tractnet"].items()
             if "cross-validation" in k and "logistic regression" not in k}
    name = min(tests, key=lambda k: tests[k].value)
    return difference_row("outperformed (no number for the others)", tests[name],
                          data_text(r, "same folds, paired DeLong"),
                          f"the AUC difference, TRACT-NET minus the stronger baseline CNN ({name.split(',')[0]})")


@claim("02_tractnet", "Each module (coordinate attention, efficient attention, Mamba) adds to TRACT-NET")
def _tractnet_ablations(r: dict) -> dict:
    tests = {k.removeprefix("without "): difference(v) for k, v in r["ablation_delong"].items()}
    ours = "; ".join(f"without {k}: {signed(d)}" for k, d in tests.items())
    lower = [k for k, d in tests.items() if d.lower > 0]
    higher = [k for k, d in tests.items() if d.upper < 0]
    if len(lower) == len(tests):
        verdict = ("supported", "removing any one module lowers the AUC, each interval of the full network "
                   "minus the variant above 0")
    elif higher:
        verdict = ("not supported", f"the opposite for {', '.join(higher)}: removing it raises the AUC; "
                   f"{len(lower)} of {len(tests)} removals lower it with an interval above 0")
    else:
        verdict = ("not supported", f"{len(lower)} of {len(tests)} removals lower the AUC with an interval above 0; "
                   "the others are not shown to matter")
    return row("the design (the abstract gives no ablation)", f"AUC, full minus variant: {ours}",
               data_text(r, f"{len(tests)} ablations on the first fold's test patients, paired DeLong"), verdict)


# --- CTNet (chapter 03) -----------------------------------------------------------------

claim("03_ctnet_ht", "CTNet predicts haemorrhagic transformation from plain CT")(_above_chance(
    "CTNet", "fold CV",
    lambda: f"AUC {paper_value('ctnet', 'CTNet, Tiantan test set', 'auc'):.3f} (Tiantan, 61 patients)",
    "cross-validated by patient", "; Tiantan's own value needs its data"))


@claim("03_ctnet_ht", "CTNet is better than neurologists reading the CT")
def _ctnet_vs_readers(r: dict) -> dict:
    tests = r["paired_delong_vs_ctnet"]
    name = "reader's record (logistic regression)"
    if name not in tests:
        return row("-", "-", data_text(r, "-"), ("not testable here", "no reader's record on this dataset"))
    return difference_row(f"neurologists' mean AUC {paper_value('ctnet', 'neurologists, mean', 'auc'):.3f} "
                          f"against CTNet's {paper_value('ctnet', 'CTNet, Tiantan test set', 'auc'):.3f}",
                          difference(tests[name]),
                          data_text(r, "a logistic regression on the signs a reader records stands in for the "
                                       "readers; same folds, paired DeLong"),
                          "the AUC difference, CTNet minus the reader's record")


def _ctnet_vs(label: str, paper_row: str) -> ClaimFn:
    def read(r: dict) -> dict:
        sens = paper_value("ctnet_table3", paper_row, "sensitivity")
        spec = paper_value("ctnet_table3", paper_row, "specificity")
        ctnet = paper_value("ctnet", "CTNet, Tiantan test set", "auc")
        return difference_row(f"{paper_row.split(' (')[0]}: sensitivity {sens:.2f}, specificity {spec:.2f} (it "
                              f"calls every image HT); CTNet's AUC {ctnet:.3f}",
                              difference(r["paired_delong_vs_ctnet"][label]), data_text(r, "same folds, paired DeLong"),
                              f"the AUC difference, CTNet minus the {label}")
    return read


claim("03_ctnet_ht", "CTNet beats Wozniak et al.'s correlation-learning network")(
    _ctnet_vs("correlation learning CNN", "Wozniak et al. (re-implemented by Zhang et al.)"))
claim("03_ctnet_ht", "CTNet beats a plain 2D CNN (Soundari et al.'s model, approximated)")(
    _ctnet_vs("plain 2D CNN (approximation)", "Soundari et al. (re-implemented by Zhang et al.)"))


@claim("03_ctnet_ht", "CTNet's attention falls on the skull (its stated limitation)")
def _ctnet_skull(r: dict) -> dict:
    shares = pd.DataFrame(r.get("tissue_shares", []))
    if shares.empty:
        return row("-", "-", data_text(r, "-"), ("not testable here", "no tissue shares in this record"))
    shares = shares[~shares.input.str.contains("strip") & (shares.method == shares.method.iloc[0])]
    skull = shares[shares.tissue.str.contains("skull")].set_index("network")
    trained, random = skull.loc["trained"], skull.loc["random weights"]
    uniform = float(trained["uniform map"])
    bar = max(uniform, float(random.share))
    lower, upper = float(trained["lower"]), float(trained["upper"])
    bars = {f"a uniform map ({uniform:.3f})": uniform,
            f"the same network with random weights ({float(random.share):.3f})": float(random.share)}
    if lower > bar:
        verdict = ("supported", f"its interval lies above both a uniform map's share ({uniform:.3f}) and the same "
                   f"network's with random weights ({float(random.share):.3f})")
    else:  # name only the bars the interval does not clear, and say how it stands to each
        missed = [f"{'less' if upper < v else 'no more'} than {name} puts there"
                  for name, v in bars.items() if lower <= v]
        cleared = [name.split(" (")[0] for name, v in bars.items() if lower > v]
        verdict = ("not supported", " and ".join(missed)
                   + (f", although above {cleared[0]}" if cleared else ""))
    share = Estimate(float(trained["share"]), float(trained["lower"]), float(trained["upper"]))
    return row("stated in the paper's limitations (no number)",
               f"{share.text()} of the {trained.method} energy on the skull",
               data_text(r, "without skull stripping, against its random-weight control"), verdict)


# --- Waghmare et al. (chapter 04) -------------------------------------------------------

def _placeholder(cohort: str, table: str) -> ClaimFn:
    def read(r: dict) -> dict:
        ours = metric(r, table, "auc") if table in r["metrics"] else "-"
        return row(f"AUC {paper_value('waghmare', cohort, 'auc'):.2f} (a placeholder, by the authors' own words)", ours,
                   data_text(r, "one class against the rest, cross-validated by patient"),
                   ("not testable here", "a placeholder the authors never measured: there is nothing to reproduce"))
    return read


claim("04_cnn_rnn", "The ischaemic stroke model: accuracy 0.92, AUC 0.96")(
    _placeholder("ischaemic stroke model (placeholder)", "ischaemic stroke model (binary)"))
claim("04_cnn_rnn", "The haemorrhagic stroke model: accuracy 0.87, AUC 0.91")(
    _placeholder("haemorrhagic stroke model (placeholder)", "haemorrhagic stroke model (binary)"))


@claim("04_cnn_rnn", "A recurrent network across the slices adds to the CNN")
def _rnn_adds(r: dict) -> dict:
    tests = {k: difference(v) for k, v in r["paired_vs_reference"].items()
             if k.startswith("CNN,") and "over slices" in k}
    if not tests:
        return row("-", "-", data_text(r, "-"), ("not testable here", "single slices: no sequence to read"))
    best = max(tests, key=lambda k: tests[k].value)
    return difference_row("no number (methods section)", negated(tests[best]),
                          data_text(r, "same folds, paired bootstrap of the macro AUC"),
                          f"the macro AUC difference, CNN + GRU minus the best CNN without it "
                          f"({best.removeprefix('CNN, ')})")


@claim("04_cnn_rnn", "Transfer learning helps where data are few")
def _transfer_few(r: dict) -> dict:
    gains = sorted(r["transfer_gain"], key=lambda g: g["training patients (%)"])
    if not gains:
        return row("-", "-", data_text(r, "-"), ("not testable here", "no transfer experiment in this record"))
    g = gains[0]
    return difference_row("no number (methods section)", difference(g),
                          data_text(r, f"{g['training patients (%)']}% of the target patients, paired bootstrap"),
                          "the macro AUC difference, fine-tuned minus from scratch")


# --- Jung and Whangbo (chapter 05) ------------------------------------------------------

def _jung_auc(cohort: str) -> float:
    return paper_value("jung", cohort, "auc")


@claim("05_adaptive_transfer", "Lesion concatenation helps on old infarcts")
def _concat_old(r: dict) -> dict:
    if "old" not in r["concatenation"]:
        return row("-", "-", data_text(r, "-"), ("not testable here", "no old-infarct task on this dataset"))
    a, b = _jung_auc("Table 1 #2: old infarct, lesion concatenation"), _jung_auc("Table 1 #1: old infarct, single slice")
    return difference_row(f"AUC {a:.4f} against {b:.4f} ({a - b:+.4f})", difference(r["concatenation"]["old"]),
                          data_text(r, "regions, paired patient bootstrap"),
                          "the AUC difference, concatenation minus single slice")


@claim("05_adaptive_transfer", "Lesion concatenation does not help on early signs")
def _concat_early(r: dict) -> dict:
    a, b = _jung_auc("Table 1 #4: early sign, lesion concatenation"), _jung_auc("Table 1 #3: early sign, single slice")
    d = difference(r["concatenation"]["early"])
    verdict = ("not supported", "the interval lies above 0: concatenation helps here") if d.lower > 0 else \
        ("supported", "no gain shown (the interval's lower end is at or below 0): a claim of no effect is "
         "supported when no effect is shown, though an interval this wide cannot rule one out")
    return row(f"AUC {a:.4f} against {b:.4f} ({a - b:+.4f})", signed(d), data_text(r, "regions, paired patient bootstrap"),
               verdict)


def _window(state: str, table: str, claimed: str) -> ClaimFn:
    def read(r: dict) -> dict:
        names = [k for k in r["metrics"] if k.startswith(f"{table}: {state}, ")]
        if not names:
            return row("-", "-", data_text(r, "-"), ("not testable here", f"no {state} task on this dataset"))
        ests = {k.split(", ")[-1]: metric(r, k) for k in names}
        paper = {k.split(", ")[-1]: _jung_auc(k) for k in names}
        return row(f"AUC {paper[claimed]:.4f} at {claimed}, the highest of {len(paper)}", f"{ests[claimed].text()} at {claimed}",
                   data_text(r, "regions, cross-validated by patient"), best_of(ests, claimed))
    return read


claim("05_adaptive_transfer", "WC40/WW30 is the best window for old infarcts")(
    _window("old infarct", "Table 2", "WC40/WW30"))
claim("05_adaptive_transfer", "WC40/WW20 is the best window for early signs")(
    _window("early sign", "Table 3", "WC40/WW20"))


@claim("05_adaptive_transfer", "Freezing layer #0 alone is the best depth")
def _freeze0(r: dict) -> dict:
    names = [k for k in r["metrics"] if k.startswith("Table 4: ") and "all conv-pooling" not in k]
    ests = {k.removeprefix("Table 4: "): metric(r, k) for k in names}
    return row(f"AUC {_jung_auc('Table 4: freeze #0'):.4f}, the highest of Table 4", ests["freeze #0"].text(),
               data_text(r, "early sign, cross-validated by patient"), best_of(ests, "freeze #0"))


@claim("05_adaptive_transfer", "f(theta) picks the best freezing depth")
def _f_theta(r: dict) -> dict:
    f = r["f_theta"]
    share = Estimate(f["picked_best"] / f["folds"], f["lower"], f["upper"])
    verdict, why = above(share, 1 / f["depths"], "the share of folds where it picked the best depth")
    return row("picked #0, the best of Table 4", f"{f['picked_best']} of {f['folds']} folds ({share.text()})",
               data_text(r, "every fold and repeat, Wilson interval"),
               (verdict, why.replace(f"{1 / f['depths']:g}", f"1/{f['depths']} (a random pick)")))


@claim("05_adaptive_transfer", "Adaptive transfer improves on the model without it")
def _adaptive_gain(r: dict) -> dict:
    gain = paper_value("jung", "adaptive transfer against the model without it (section 3.4)", "relative_gain_pct")
    return difference_row(f"+{gain:.2f}% (the metric, and relative or absolute, not stated)",
                          difference(r["transfer_vs_scratch"]),
                          data_text(r, "early sign, paired patient bootstrap; tested as an AUC difference"),
                          "the AUC difference (transferred minus not transferred)")


@claim("05_adaptive_transfer", "The whole system improves on a plain SE-ResNeXt by 18.72%")
def _system_gain(r: dict) -> dict:
    gain = paper_value("jung", "the whole system against SE-ResNeXt on the original images (abstract, conclusion)",
                       "relative_gain_pct")
    return difference_row(f"+{gain:.2f}% (the metric, and relative or absolute, not stated)",
                          difference(r["system_vs_plain"]),
                          data_text(r, "early sign, paired patient bootstrap; tested as an AUC difference"),
                          "the AUC difference (the system minus the plain model)")


def claims_table(records: dict[str, dict]) -> pd.DataFrame:
    """One row per claim in ``CLAIMS``: chapter, paper, claim, published, ours, data,
    verdict, why. A chapter without a record in ``records`` (chapter -> record), or a
    record without the part a claim reads, gives "not testable here" and says why."""
    rows = []
    for chapter, text, fn in CLAIMS:
        base = {"chapter": chapter, "paper": PAPER_CHAPTERS[chapter], "claim": text}
        if chapter not in records:
            rows.append(base | row("-", "-", "-", ("not testable here",
                                                   f"no run record of {chapter} for these settings: execute it first")))
            continue
        try:
            rows.append(base | fn(records[chapter]))
        except KeyError as missing:
            rows.append(base | row("-", "-", data_text(records[chapter], "-"),
                                   ("not testable here", f"the run record holds no {missing}")))
    return pd.DataFrame(rows, columns=COLUMNS)


# --- Where the papers' evaluations fall short -------------------------------------------

SHORTFALL_COLUMNS = ["chapter", "practice", "measured here", "what it costs", "data"]


def compared(d: Estimate, a: str, b: str) -> str:
    """``d`` (a minus b, with its interval) in words."""
    if d.lower > 0:
        return f"{a} scores higher than {b}"
    if d.upper < 0:
        return f"{b} scores higher than {a}"
    return f"{a} is not shown to differ from {b} (the interval includes 0)"


def _leak_scan(r: dict) -> tuple[str, str, str]:
    d = r.get("leak_difference")
    if d is None:
        return "-", r.get("leak_summary", "not measured"), data_text(r, "-")
    return (f"scan-level minus patient-level split, AUC ({d['repeats']} repeats): {signed(difference(d))}",
            compared(difference(d), "the scan-level split", "the patient-level one"),
            data_text(r, "several scans per patient"))


def _leak_image(r: dict) -> tuple[str, str, str]:
    d = difference(r["split"])
    return (f"split by image minus by patient, AUC: {signed(d)}", compared(d, "the split by image", "the split by patient"),
            data_text(r, "early sign, several regions per patient"))


def _one_test_set(r: dict) -> tuple[str, str, str]:
    aucs = {k: v for k, v in r["fold_aucs"].items() if "fold" in k.lower()}
    lo, hi = min(aucs.values()), max(aucs.values())
    return (f"AUC on each of {len(aucs)} patient folds: {lo:.2f} to {hi:.2f}",
            f"one test fold alone could have reported anything from {lo:.2f} to {hi:.2f}",
            data_text(r, "patient folds of a fifth of the cohort each"))


def _weighted_recall(r: dict) -> tuple[str, str, str]:
    key = _key(r, "TRACT-NET", "cross-validation")
    sens, wrec, acc = (metric(r, key, m) for m in ("sensitivity", "weighted_recall", "accuracy"))
    return (f"sensitivity {sens.text()}, class-weighted recall {wrec.text()}, accuracy {acc.value:.3f}",
            f"a class-weighted recall always equals accuracy; the positive-class sensitivity differs from it "
            f"by {sens.value - wrec.value:+.3f} here", data_text(r, "TRACT-NET, cross-validated"))


def _weighted_f1(r: dict) -> tuple[str, str, str]:
    key = "Table 1 #1: old infarct, single slice" if "Table 1 #1: old infarct, single slice" in r["metrics"] else \
        "Table 1 #3: early sign, single slice"
    f1, wf1 = metric(r, key, "f1"), metric(r, key, "weighted_f1")
    return (f"F1 of the lesion class {f1.text()}, class-weighted F1 {wf1.text()}",
            f"the class-weighted F1 reads {wf1.value - f1.value:+.3f} higher at this prevalence",
            data_text(r, key.split(": ")[1]))


def _no_interval(r: dict) -> tuple[str, str, str]:
    key = "Table 3: early sign, WC40/WW20"
    e = metric(r, key)
    paper = [_jung_auc(f"Table 3: early sign, {w}") for w in ("WC40/WW40", "WC40/WW30", "WC40/WW20")]
    return (f"our AUC {e.text()}", f"an interval {e.upper - e.lower:.2f} wide on this cohort; the paper's Table 3 "
            f"rows differ by at most {max(paper) - min(paper):.3f}", data_text(r, "early sign, regions of the test patients"))


def _saliency(r: dict) -> tuple[str, str, str]:
    checks = r.get("saliency", {})
    passed = [k for k, v in checks.items() if str(v.get("randomisation check", "")).startswith("pass")]
    localises = [k for k, v in checks.items() if str(v.get("localisation", "")).startswith("localises better")]
    return (f"{len(passed)} of {len(checks)} maps pass the randomisation check; {len(localises)} localise better "
            "than the same network with random weights",
            "a map shown without its control may show the network's structure, not what it learned",
            data_text(r, "Grad-CAM and LayerCAM against random weights"))


def _no_simple_baseline(r: dict) -> tuple[str, str, str]:
    key = next(k for k in r["paired_delong_vs_tractnet"] if k.startswith("lesion volume (logistic regression)")
               and "cross-validation" in k)
    d = difference(r["paired_delong_vs_tractnet"][key])
    return (f"TRACT-NET minus lesion volume alone, AUC: {signed(d)}",
            compared(d, "TRACT-NET", "a logistic regression on the lesion volume"),
            data_text(r, "same folds, paired DeLong"))


SHORTFALLS: list[tuple[str, str, Callable[[dict], tuple[str, str, str]]]] = [
    ("03_ctnet_ht", "a random 9:1 split of scans: a patient's scans can sit on both sides", _leak_scan),
    ("05_adaptive_transfer", "images split at random, not patients", _leak_image),
    ("03_ctnet_ht", "one test set of 61 patients", _one_test_set),
    ("02_tractnet", "a class-weighted recall reported as sensitivity", _weighted_recall),
    ("05_adaptive_transfer", "an F1 above its own precision and recall (a class-weighted F1)", _weighted_f1),
    ("05_adaptive_transfer", "no interval on any number", _no_interval),
    ("03_ctnet_ht", "attention maps shown without a control", _saliency),
    ("02_tractnet", "no baseline without deep learning", _no_simple_baseline),
]


def shortfalls_table(records: dict[str, dict]) -> pd.DataFrame:
    """One row per practice in ``SHORTFALLS``, by chapter: the practice, what its chapter
    measured of it, what that costs, on which data; "-" where the chapter has no record
    or its record lacks the part."""
    rows = []
    for chapter, practice, fn in SHORTFALLS:
        if chapter not in records:
            measured, cost, data = "-", f"not measured: no run record of {chapter} for these settings", "-"
        else:
            try:
                measured, cost, data = fn(records[chapter])
            except KeyError as missing:
                measured, cost, data = "-", f"not measured: the run record holds no {missing}", "-"
        rows.append({"chapter": chapter, "practice": practice, "measured here": measured, "what it costs": cost,
                     "data": data})
    return pd.DataFrame(rows, columns=SHORTFALL_COLUMNS).sort_values("chapter", kind="stable", ignore_index=True)
