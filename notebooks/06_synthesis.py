# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What reproduced, what did not, and why
#
# The four paper chapters each end with their own numbers beside their paper's. This
# chapter puts every claim of the four papers on one page, each with the paper's number,
# ours with its interval, the data ours stands on and a verdict; then what the papers'
# evaluations leave out and what that costs in our numbers, what each chapter costs to
# run, where the book answers the field's two reporting checklists, and how to run it on
# real data. It trains nothing: **every number on it is read from the run records** the
# chapters wrote (their `results.json`), and the papers' numbers from
# `book/published_numbers.yaml`. On the embedded cohort every number of ours is
# **synthetic**.

# %% tags=["parameters"]
profile: str = "auto"  # the profile whose records to read: "smoke" | "full" | "auto" (full on CUDA, smoke otherwise)
device: str = "auto"  # auto, cpu or cuda (only resolves "auto")
seed: int = 0  # the seed whose records to read
datasets: str = ""  # chapter:dataset pairs whose records to read instead of the embedded cohort's, e.g. 02_tractnet:soop,03_ctnet_ht:cq500 (an experiment: dataset-XXXXXXXX, its run folder's)
runs: str = ""  # folder of run records; "" reads <data directory>/runs

# %%
from pathlib import Path

import pandas as pd
import yaml
from IPython.display import Markdown, display
from myst_nb import glue

from stroke_lib.claims import PAPER_CHAPTERS, claims_table, shortfalls_table
from stroke_lib.data.manifests import load_manifest, manifest_names
from stroke_lib.page import chapter_opening
from stroke_lib.paths import REPO_ROOT, data_dir
from stroke_lib.runtime import start_run
from stroke_lib.synthesis import VERDICTS, ceilings_table, load_records, run_costs

run = start_run(profile, device, seed)
folder = Path(runs) if runs else data_dir() / "runs"
chosen = {ch: "synthetic" for ch in PAPER_CHAPTERS}
for pair in filter(None, (p.strip() for p in datasets.split(","))):
    chapter, _, name = pair.partition(":")
    if chapter not in chosen or not name:
        raise ValueError(f"datasets: {pair!r} is not <chapter>:<dataset> with a chapter of {sorted(chosen)}")
    chosen[chapter] = name
records = load_records(folder, chosen, run.profile, seed)
chapter_opening(
    ["which of the four papers' claims held up on this book's runs, which did not, and which cannot be "
     "tested without the papers' own data;",
     "what the papers' evaluations leave out (leaks, intervals, metric definitions, saliency controls) and "
     "how much each changes our numbers;",
     "how long each chapter takes, per profile and device;",
     "where the book answers each item of CLAIM 2024 and TRIPOD+AI;",
     "how to run each chapter on a real dataset, and what it then leaves out."],
    run, {"records of": ", ".join(f"{c} ({d})" for c, d in chosen.items()), "profile": run.profile, "seed": seed,
          "records found": f"{len(records)} of {len(chosen)}"},
    folder, record_is="folder of run records", record_verb="read from")
tags = sorted({r["parameters"].get("dataset", "synthetic") for r in records.values()})
tag = ", ".join(tags) if tags else "no records"
glue("tag", tag, display=False)
missing = [c for c in chosen if c not in records]
if missing:
    display(Markdown("**No run record** of " + ", ".join(f"`{c}` ({chosen[c]}, {run.profile} profile, seed {seed})"
                                                       for c in missing)
                     + ": its claims are marked not testable here. Execute the chapter (`make chapter NAME=...`) "
                     "and this one again."))

# %% [markdown]
# ## The claims, one by one
#
# Each row is one claim of a paper, in the paper's words as far as they go. **Published**
# is the paper's number on its own data (or what the paper offers instead of one);
# **ours** is the number of the same definition from the chapter's run, with its 95%
# interval; **data** says which cohort, profile and design ours stands on. The verdict:
#
# - **supported**: our interval lies on the claim's side: a difference above 0, an AUC
#   above 0.5, a best option above every other;
# - **not supported**: it does not, and *why* says whether the interval includes no
#   difference (not shown) or lies on the other side (the opposite);
# - **not testable here**: the claim is a placeholder the authors never measured, or
#   needs a part the run did not have.
#
# A claim that something does *not* help is supported when no gain is shown (the
# interval does not lie above 0); an interval as wide as a smoke run's cannot rule a
# gain out, and *why* says so.
#
# A number on the paper's private cohort cannot be reproduced on the embedded one; what
# can be tested is whether the method does what is claimed where the truth is known.
# So an AUC claim is judged by whether ours lies above chance, and the paper's value
# stands beside it for reference, not as a target ({glue:text}`tag`).

# %%
claims = claims_table(records)
published_yaml = yaml.safe_load((REPO_ROOT / "book" / "published_numbers.yaml").read_text())
SHOWN = {"published": "published (the paper's data)", "ours": "ours [95% CI]", "data": "our cohort and design"}
for chapter, part in claims.groupby("chapter", sort=False):
    ours_on = (f"ours on {records[chapter]['parameters'].get('dataset', 'synthetic')}, {run.profile} profile"
               if chapter in records else "no run record of ours")
    display(Markdown(f"**{chapter}** ({ours_on}). Published: {published_yaml[PAPER_CHAPTERS[chapter]]['source']}"))
    display(part.drop(columns=["chapter", "paper"]).set_index("claim").rename(columns=SHOWN))
counts = claims.verdict.value_counts().reindex(list(VERDICTS), fill_value=0)
glue("n_claims", f"{len(claims)}", display=False)
glue("verdict_counts", ", ".join(f"{n} {v}" for v, n in counts.items()), display=False)


def listing(verdict: str) -> str:
    """The claims of one verdict as a sentence: "chapter: claim; ..."."""
    part = claims[claims.verdict == verdict]
    return "; ".join(f"{r.claim} ({r.chapter[:2]})" for r in part.itertuples()) or "none"


glue("supported_list", listing("supported"), display=False)
glue("untestable_list", listing("not testable here"), display=False)

# %% [markdown]
# Of {glue:text}`n_claims` claims: {glue:text}`verdict_counts` (all of ours on
# {glue:text}`tag`).
# Supported here: {glue:text}`supported_list`. Not testable here:
# {glue:text}`untestable_list`. Every other claim is not supported by this run: its
# interval includes no difference or lies on the other side, as *why* says for each. A
# smoke run has few patients and few epochs, so "not shown" is the common verdict; the
# full profile narrows every interval.
#
# ### The ceilings beside them
#
# What the best possible model reaches on each chapter's own task and population: the
# AUC of the truth the generator knows (the latent risk behind each label, what of it
# the image shows, or the true lesion share of each region), from each chapter's
# record. The **oracle ceiling** is the AUC of the true latent risk of each label (or
# of the true lesion share of each region); the **image-only ceiling** that of the part
# of the risk the image itself shows; the **mask reader** reads the true lesion masks at
# the model's input size. A published AUC means little without the ceiling of its task:
# a label that depends on what the image cannot show caps every model, and ours stand
# beside them in the claims above.

# %%
ceilings = ceilings_table(records)
if len(ceilings):
    view = ceilings.set_index(["chapter", "task", "ceiling"])
    view.columns.name = tag
    display(view)
else:
    display(Markdown("No record holds a ceiling: real data has no known truth behind its labels."))

# %% [markdown]
# ## Where the papers' evaluations fall short
#
# Each practice below is one the papers followed or a check they left out; each chapter
# measured what it does to the numbers, on its own patients ({glue:text}`tag`). With a
# smoke run's few patients an interval is wide: "not shown" there means too few
# patients to tell, not that the practice is harmless.

# %%
shortfalls = shortfalls_table(records).set_index(["chapter", "practice"])
shortfalls.columns.name = tag
display(shortfalls)

# %% [markdown]
# ## What each chapter costs
#
# Every run record under the records folder, whichever dataset, profile and device it
# ran on: the chapter's wall time in seconds, from its start to writing its record, on
# the machine named by its device.
# The smoke profile is the book's default on a CPU; the full profile is the study
# proper, on a GPU. A row appears for each combination that has been run on this
# machine; a run with other parameters (an experiment, with a record folder of its own)
# has its own row, and the claims above never read it.

# %%
costs = run_costs(folder)
if len(costs):
    display(costs.rename(columns={"seconds": "wall time (s)"}).set_index(["chapter", "dataset", "profile", "device",
                                                                         "seed", "run"]))
else:
    display(Markdown("No run record yet."))
if not (costs.profile == "full").any():
    display(Markdown("No full-profile record here: the full profile runs on a GPU (`make book PROFILE=full`), "
                     "and its times appear in this table once it has."))
read = [r["seconds"] for r in records.values() if isinstance(r.get("seconds"), (int, float))]
glue("read_total", f"{sum(read) / 60:.1f} minutes for the {len(read)} records this page read "
     f"({run.profile} profile, seed {seed})" if read else "no time: the records this page read predate it",
     display=False)

# %% [markdown]
# The paper chapters took {glue:text}`read_total`. The appendix gives the speed of each
# network on the machines that measured it.
#
# ## Reporting checklists
#
# CLAIM 2024 {cite:p}`tejani2024claim` for imaging AI and TRIPOD+AI
# {cite:p}`collins2024tripodai` for prediction models are what reviewers hold such a
# study against. Each item below names the chapter sections that answer it, or why the
# book does not (`book/reporting_checklist.yaml`).

# %%
checklists = yaml.safe_load((REPO_ROOT / "book" / "reporting_checklist.yaml").read_text())["checklists"]
summary = []
for checklist in checklists:
    rows = [{"item": it["item"], "topic": it["topic"],
             "where": "; ".join(f"{c['chapter']}: {c['section']}" for c in it["covered"]) or "not covered",
             "how, or why not": it.get("note") or it.get("why")} for it in checklist["items"]]
    covered = sum(bool(it["covered"]) for it in checklist["items"])
    moot = sum(not it["covered"] and it["why"].startswith("Not applicable") for it in checklist["items"])
    summary.append({"checklist": checklist["name"], "items": len(rows), "covered": covered,
                    "not applicable": moot, "not covered": len(rows) - covered - moot})
    display(Markdown(f"**{checklist['name']}**: {checklist['source']}"))
    display(pd.DataFrame(rows).set_index("item"))
display(pd.DataFrame(summary).set_index("checklist"))

# %% [markdown]
# ## Running on real data
#
# Every chapter that trains switches to a public dataset with one parameter. The manifest of each
# dataset (`data_manifests/`) says where to get it, its licence, the layout it must have
# on disk and which chapters read it; the table gives, for each, the command and what
# that chapter leaves out on it. Each of these pairs is tested on a small fixture
# written in the dataset's own layout.

# %%
real = []
for name in manifest_names():
    m = load_manifest(name)
    if name == "synthetic":
        continue
    for chapter, skips in m["chapters"].items():
        option = "source" if chapter == "05_adaptive_transfer" and name == "rsna_ich_2019" else "dataset"
        real.append({"dataset": name, "licence": m["licence"], "chapter": chapter,
                     "command": f"make chapter NAME={chapter} PARAMS=\"-p {option} {name}\"",
                     "what the chapter leaves out": skips})
display(pd.DataFrame(real).set_index(["dataset", "chapter"]))
loader_only = [n for n in manifest_names() if n != "synthetic" and not load_manifest(n)["chapters"]]
if loader_only:
    display(Markdown(f"{', '.join(loader_only)}: a loader, tested on fixtures, but no chapter's task (no label a "
                     "chapter predicts); chapter 00 reads any dataset with a loader (`-p dataset <name>`)."))

# %% [markdown]
# The data folder defaults to `<data directory>/<dataset>` (`STROKE_DATA_DIR`, else
# `data/` in the checkout); `-p data_root /path` points elsewhere (`-p source_root` for
# chapter 05's source). To read the records of real-data runs here, name them:
# `-p datasets 02_tractnet:soop,03_ctnet_ht:cq500`.
#
# ## The library
#
# Every function and class the chapters call is documented in the
# [library reference](../api.md), generated from `stroke_lib`'s docstrings and grouped as
# the data flows: data, preprocessing, models, training, metrics, explanation, plots and
# reports.
