"""Run records, paper-vs-study tables, glue helpers and model cards."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from myst_nb import glue

from stroke_lib.book import chapter_defaults
from stroke_lib.explain import SaliencyReport
from stroke_lib.metrics import METRIC_DEFINITIONS, bootstrap_ci
from stroke_lib.page import decimals_for, format_interval

from stroke_lib.paths import REPO_ROOT, data_dir, run_name
from stroke_lib.runtime import RunContext, versions

PUBLISHED = REPO_ROOT / "book" / "published_numbers.yaml"


#: Parameters that do not make a run another experiment: the run folder's name spells out
#: the dataset, profile and seed; ``data_root`` and ``source_root`` say where a dataset lies
#: and ``device`` where the chapter runs (the profile follows from it).
RUN_NAME_PARAMETERS = frozenset({"dataset", "data_root", "source_root", "profile", "seed", "device"})


def run_folder(chapter: str, parameters: Mapping[str, object], profile: str) -> Path:
    """Where a run of chapter ``chapter`` writes its record and predictions:
    ``<data directory>/runs/<run_name>``.

    A parameter that the chapter declares and that is set away from its default (other
    than those of ``RUN_NAME_PARAMETERS``) makes the run an experiment with a folder of its
    own (``paths.run_name`` with a digest), so that ``-p epochs 5`` never replaces the
    record that the synthesis chapter and chapter 02 read from the book's run.

    Args:
        parameters: the chapter's parameters as set: a chapter passes its ``globals()``
            before it resolves them (``epochs = epochs or ...``), a caller papermill's
            parameters; other keys are ignored and a missing parameter is at its default.
        profile: the resolved profile, ``"smoke"`` or ``"full"``.
    """
    defaults = chapter_defaults(chapter)
    values = {k: parameters.get(k, default) for k, default in defaults.items()}
    changed = {k: v for k, v in values.items() if k not in RUN_NAME_PARAMETERS and v != defaults[k]}
    return data_dir() / "runs" / run_name(chapter, str(values["dataset"]), profile, int(values["seed"]), changed)


def write_record(path: Path, run: RunContext, parameters: dict, metrics: dict[str, pd.DataFrame],
                 timings: dict[str, float], predictions: Path, extra: dict | None = None) -> Path:
    """Write the JSON record of a run: parameters, versions, device, seed, timings, the
    chapter's wall time so far (``seconds``: since ``run`` started), metrics with
    intervals (one table per model/evaluation), the predictions file and any ``extra``
    JSON-able results (saliency checks, for example)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "parameters": parameters, "profile": run.profile, "device": run.device, "seed": run.seed,
        "versions": versions(), "timings_s": timings, "seconds": round(time.time() - run.started, 1),
        "predictions": str(predictions),
        "metrics": {k: json.loads(v.to_json(orient="index")) for k, v in metrics.items()},
        **(extra or {}),
    }
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    return path


def _paper(paper: str) -> dict:
    return yaml.safe_load(PUBLISHED.read_text())[paper]


def published(paper: str) -> pd.DataFrame:
    """Published numbers of ``paper`` (a key of book/published_numbers.yaml): one row per
    cohort and metric with its definition, our metrics of that definition (``ours``), our
    metrics of another definition shown beside it for reference (``reference``) and the
    source."""
    data = _paper(paper)
    defs = data.get("definitions", {})
    rows = [{"cohort": c["cohort"], "metric": m, "published": v,
             "definition": defs.get(m, {}).get("definition", "not stated"),
             "ours": list(defs.get(m, {}).get("ours", [])),
             "reference": list(defs.get(m, {}).get("reference", [])), "source": data["source"]}
            for c in data["results"] for m, v in c["metrics"].items()]
    return pd.DataFrame(rows)


def published_roc_points(paper: str) -> dict[str, tuple[float, float]]:
    """``{"<paper> <cohort> (published, other data)": (sensitivity, specificity)}`` for the
    cohorts whose pair is a true positive-class operating point (``roc_point: true``)."""
    data = _paper(paper)
    return {f"{paper} {c['cohort']} (published, other data)":
            (c["metrics"]["sensitivity"], c["metrics"]["specificity"])
            for c in data["results"] if c.get("roc_point")}


#: The published column of a row whose metric of ours has another definition.
NOT_COMPARABLE = "not comparable: another definition"


def paper_vs_study(paper: str, cohort: str, ours: pd.DataFrame, label: str) -> pd.DataFrame:
    """Each published metric of one cohort beside our metric(s) of the same definition.

    Columns: the paper's metric, its definition, the published value, our metric with
    its 95% interval (one row per metric of ours that matches; "no metric of the same
    definition" where none does) and the source. A metric of ours with another
    definition (the yaml's ``reference``, e.g. the positive-class sensitivity beside a
    class-weighted "sensitivity") gets a row of its own whose published column says
    that it is not comparable. Published and ours are never mixed.

    Args:
        ours: a ``metrics_table`` (index: metric; estimate, lower, upper).
        label: the column title of our numbers (say "synthetic" there).
    """
    pub = published(paper)
    pub = pub[pub.cohort == cohort]
    if pub.empty:
        raise KeyError(f"{PUBLISHED}: {paper} has no cohort {cohort!r}")
    rows = []
    for r in pub.itertuples():
        keyed = [(k, r.published, r.definition) for k in r.ours or [None]]
        keyed += [(k, NOT_COMPARABLE, f"ours, for reference: {METRIC_DEFINITIONS.get(k, k)}")
                  for k in r.reference]
        for key, value_published, definition in keyed:
            value = (format_interval(*ours.loc[key, ["estimate", "lower", "upper"]])
                     if key in ours.index else "no metric of the same definition")
            rows.append({"published metric": r.metric, "definition": definition,
                         f"published ({cohort})": value_published, "our metric": key or "-",
                         label: value, "source": r.source})
    return pd.DataFrame(rows).set_index(["published metric", "our metric"])


def paper_table(paper: str, ours: dict[str, pd.DataFrame], label: str,
                metrics: list[str] | None = None) -> pd.DataFrame:
    """A published table beside ours, one row per published cohort (a row of the paper's
    table) found in ``ours``: for each published metric, the paper's value and our metric
    of the same definition (the first key of its ``ours``) with its 95% interval.

    Args:
        ours: published cohort -> our ``metrics_table`` for that row.
        label: what our columns are (say "synthetic" there).
        metrics: the published metrics to show, in order (None: all the paper has).
    """
    pub = published(paper)
    pub = pub[pub.cohort.isin(list(ours))]
    if pub.empty:
        raise KeyError(f"{PUBLISHED}: {paper} has none of the rows {sorted(ours)}")
    metrics = metrics or list(dict.fromkeys(pub.metric))
    rows = {}
    for cohort in dict.fromkeys(pub.cohort):
        row: dict[str, object] = {}
        for r in pub[pub.cohort == cohort].set_index("metric").reindex(metrics).itertuples():
            key = (r.ours or [None])[0]
            row[f"{r.Index}: paper"] = r.published
            row[f"{key or r.Index} ({label})"] = (
                format_interval(*ours[cohort].loc[key, ["estimate", "lower", "upper"]])
                if key in ours[cohort].index else "no metric of the same definition")
        rows[cohort] = row
    return pd.DataFrame(rows).T.rename_axis("row of the paper's table")


def ceiling_beside_auc(evaluations: dict[str, tuple[np.ndarray, object, np.ndarray]],
                       tables: dict[str, pd.DataFrame], models: list[str], n_boot: int = 1000,
                       seed: int = 0) -> pd.DataFrame:
    """Each evaluation's oracle ceiling(s) beside the models' AUCs, and how close they come.

    A ceiling is the AUC of a true latent risk against the label on the same patients
    (known on the embedded cohort only), with a patient-bootstrap interval. "Share of the
    way" is (AUC - 0.5) / (ceiling - 0.5) against the first ceiling: 0 is chance, 1 the
    ceiling.

    Args:
        evaluations: name -> (y (N,), latent, patient IDs (N,)); latent is None on real
            data, one array (N,) (the "oracle ceiling"), or a dict of named arrays, e.g.
            ``{"oracle ceiling": nihss_latent, "image-only ceiling": nihss_image_latent}``.
        tables: ``metrics_table`` per ``f"{model}, {evaluation}"``.
    """
    rows = {}
    for name, (y, latent, groups) in evaluations.items():
        row: dict[str, object] = {"patients": len(np.unique(groups))}
        latents = ({} if latent is None else latent if isinstance(latent, dict)
                   else {"oracle ceiling": latent})
        ceilings = {k: bootstrap_ci(y, v, groups, n_boot=n_boot, seed=seed) for k, v in latents.items()}
        for k, c in ceilings.items():
            row[k] = format_interval(*c)
        if not ceilings:
            row["oracle ceiling"] = "unknown on real data"
        first = next(iter(ceilings.values()), None)
        for m in models:
            auc = tables[f"{m}, {name}"].loc["auc"]
            row[f"{m} AUC"] = format_interval(auc.estimate, auc.lower, auc.upper)
            row[f"{m}: share of the way from chance to the {next(iter(ceilings), 'ceiling')}"] = (
                f"{(auc.estimate - 0.5) / (first[0] - 0.5):.2f}" if first else "-")
        rows[name] = row
    return pd.DataFrame(rows).T.rename_axis("evaluation")


def glue_metrics(prefix: str, table: pd.DataFrame, metrics: list[str]) -> None:
    """Glue ``{prefix}_{metric}`` as "0.81 (95% CI 0.74 to 0.87)" for each metric, rounded
    to what its interval supports."""
    for m in metrics:
        r = table.loc[m]
        glue(f"{prefix}_{m}", format_interval(r.estimate, r.lower, r.upper, style="ci"), display=False)


def model_card(folder: Path, name: str, task: str, data: str, metrics: pd.DataFrame,
               limits: list[str], inputs: dict, run: RunContext) -> pd.DataFrame:
    """Write a model card (``model_card.md``) and MONAI-bundle-style ``metadata.json``;
    return the card as a one-column table for the chapter."""
    folder.mkdir(parents=True, exist_ok=True)
    auc = metrics.loc["auc"]
    card = {
        "model": name,
        "task": task,
        "intended use": "research and teaching only; not a medical device, not for diagnosis",
        "data": data,
        "AUC (95% CI)": format_interval(auc.estimate, auc.lower, auc.upper),
        "limits": "; ".join(limits),
    }
    (folder / "model_card.md").write_text(
        f"# Model card: {name}\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in card.items()) + "\n")
    meta = {
        "version": "0.1.0", "monai_version": versions()["monai"],
        "pytorch_version": versions()["torch"], "name": name, "task": task,
        "description": card["intended use"], "data_source": data,
        "network_data_format": {"inputs": {"image": inputs}, "outputs": {"pred": {
            "type": "probabilities", "format": "classification", "num_channels": 1,
            "spatial_shape": [1], "dtype": "float32"}}},
        "intended_use": card["intended use"], "device": run.device, "seed": run.seed,
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=1))
    return pd.Series(card, name=name).to_frame()


def _pointing(row: pd.Series) -> tuple[str, str]:
    """(pointing game with its interval, chance level) at one precision, fine enough that
    the printed lower bound and chance compare as the values do (at most 4 decimals)."""
    lo, chance = float(row["pointing lower"]), float(row["pointing by chance"])
    d = decimals_for(lo, float(row["pointing upper"]))
    while d < 4 and (round(lo, d) == round(chance, d) or (round(lo, d) > round(chance, d)) != (lo > chance)):
        d += 1
    return (f"{row['pointing game']:.{d}f} [{lo:.{d}f}, {row['pointing upper']:.{d}f}]", f"{chance:.{d}f}")


def saliency_views(reports: dict[str, SaliencyReport], tag: str) -> tuple[pd.DataFrame | None, pd.DataFrame, str]:
    """The saliency tables and sentences a chapter shows, from ``explain.saliency_checks``.

    Args:
        reports: model name -> its ``SaliencyReport``.
        tag: the data's name for the column titles ("synthetic" on the embedded cohort).

    Returns:
        the localisation table (None when no report localised: data without masks), the
        verdict table, and one Markdown bullet per model and method saying both verdicts.
    """
    localised = all(not r.localisation.empty for r in reports.values())
    loc_view = None
    if localised:
        loc = pd.concat({m: r.localisation for m, r in reports.items()}, names=["model"])
        loc_view = pd.DataFrame({
            "energy in lesion [95% CI]": [format_interval(r["energy in lesion"], r["energy lower"],
                                                          r["energy upper"]) for _, r in loc.iterrows()],
            "lesion share of brain": loc["lesion share of brain"].map("{:.4f}".format),
            "energy / share": loc["energy / share"].map("{:.1f}".format),
            "pointing game [Wilson 95% CI over scans]": [_pointing(r)[0] for _, r in loc.iterrows()],
            "pointing by chance": [_pointing(r)[1] for _, r in loc.iterrows()],
            "scans (patients)": [f"{r['scans with a lesion']} ({r['patients with a lesion']})"
                                 for _, r in loc.iterrows()]}, index=loc.index)
        loc_view.columns.name = f"localisation ({tag})"
    verdicts = pd.concat({m: r.verdicts for m, r in reports.items()}, names=["model"])
    view = pd.DataFrame(index=verdicts.index)
    difference = [format_interval(r["energy in lesion, trained minus random"], r["difference lower"],
                                  r["difference upper"]) for _, r in verdicts.iterrows()] if localised else []
    if localised:
        view["energy in lesion, trained minus random weights [95% CI]"] = difference
        view["localisation verdict"] = verdicts["localisation"]
    view["Spearman after randomising top layers [95% CI]"] = [
        format_interval(r["Spearman after randomising top layers"], r["Spearman lower"], r["Spearman upper"])
        for _, r in verdicts.iterrows()]
    view["randomisation check"] = verdicts["randomisation check"]
    view.columns.name = f"verdicts ({tag})"
    sentences = []
    for i, ((model, method), r) in enumerate(verdicts.iterrows()):
        parts = ([f"{r['localisation']} (difference in energy in lesion {difference[i]})"] if localised else [])
        if localised:
            trained = loc.loc[(model, method, "trained")]
            above = trained["pointing lower"] > trained["pointing by chance"]
            game, chance = _pointing(trained)
            parts.append(f"pointing game {game} against {chance} by chance: "
                         + ("its brightest voxel falls in the lesion more often than chance" if above
                            else "its brightest voxel is no more often in the lesion than by chance"))
        parts.append(f"randomisation check {r['randomisation check'].split(':')[0]}")
        sentences.append(f"- **{model}, {method}**: " + "; ".join(parts) + ".")
    return loc_view, view, "\n".join(sentences)
