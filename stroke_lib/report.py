"""Run records, paper-vs-study tables, glue helpers and model cards."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml
from myst_nb import glue

from stroke_lib.paths import REPO_ROOT
from stroke_lib.runtime import RunContext, versions

PUBLISHED = REPO_ROOT / "book" / "published_numbers.yaml"


def write_record(path: Path, run: RunContext, parameters: dict, metrics: dict[str, pd.DataFrame],
                 timings: dict[str, float], predictions: Path, extra: dict | None = None) -> Path:
    """Write the JSON record of a run: parameters, versions, device, seed, timings,
    metrics with intervals (one table per model/evaluation), the predictions file and any
    ``extra`` JSON-able results (saliency checks, for example)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "parameters": parameters, "profile": run.profile, "device": run.device, "seed": run.seed,
        "versions": versions(), "timings_s": timings, "predictions": str(predictions),
        "metrics": {k: json.loads(v.to_json(orient="index")) for k, v in metrics.items()},
        **(extra or {}),
    }
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    return path


def published(paper: str) -> pd.DataFrame:
    """Published numbers of ``paper`` (a key of book/published_numbers.yaml) with sources."""
    data = yaml.safe_load(PUBLISHED.read_text())[paper]
    rows = [{"cohort": c["cohort"], "metric": m, "published": v, "source": data["source"]}
            for c in data["results"] for m, v in c["metrics"].items()]
    return pd.DataFrame(rows)


def paper_vs_study(paper: str, cohort: str, ours: pd.DataFrame, label: str) -> pd.DataFrame:
    """Published metrics of one cohort beside ours (estimate [lower, upper]), never mixed."""
    pub = published(paper)
    pub = pub[pub.cohort == cohort].set_index("metric")
    text = {m: f"{r.estimate:.3f} [{r.lower:.3f}, {r.upper:.3f}]" for m, r in ours.iterrows()}
    return pd.DataFrame({f"published ({cohort})": pub.published,
                         label: [text.get(m, "-") for m in pub.index],
                         "source": pub.source})


def glue_metrics(prefix: str, table: pd.DataFrame, metrics: list[str]) -> None:
    """Glue ``{prefix}_{metric}`` as "0.812 (95% CI 0.74-0.87)" for each metric."""
    for m in metrics:
        r = table.loc[m]
        glue(f"{prefix}_{m}", f"{r.estimate:.3f} (95% CI {r.lower:.3f}-{r.upper:.3f})", display=False)


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
        "AUC (95% CI)": f"{auc.estimate:.3f} [{auc.lower:.3f}, {auc.upper:.3f}]",
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
