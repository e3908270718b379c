"""Grad-CAM (``monai.visualize.GradCAM``), LayerCAM, localisation scores and their controls.

Maps are ``(N, *spatial)``, upsampled to the input size and scaled to [0, 1] per sample,
largest evidence at 1 (MONAI's default post-processing flips them; see ``_scale_each``).

Grad-CAM weights each feature channel by its gradient averaged over the whole volume.
LayerCAM (Jiang et al., IEEE TIP 2021) weights every voxel of a channel by its own
positive gradient, which keeps small, local evidence such as an infarct of a few ml.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.transforms import ScaleIntensity
from monai.visualize import GradCAM
from scipy import stats
from torch import nn

from stroke_lib.metrics import bootstrap_ci


class LayerCAM(GradCAM):
    """LayerCAM (Jiang et al., IEEE TIP 2021) on MONAI's Grad-CAM hooks.

    The map is ReLU(sum_c ReLU(dy/dA_c) * A_c), element-wise, where Grad-CAM uses the
    channel's mean gradient; upsampling and scaling are MONAI's.
    """

    def compute_map(self, x, class_idx=None, retain_graph=False, layer_idx=-1, **kwargs):
        _, acti, grad = self.nn_module(x, class_idx=class_idx, retain_graph=retain_graph, **kwargs)
        return F.relu((F.relu(grad[layer_idx]) * acti[layer_idx]).sum(1, keepdim=True))


def _scale_each(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map ``(N, 1, *spatial)`` to [0, 1], largest evidence at 1.

    MONAI's default post-processing maps (min, max) to (1, 0), flipping the map; this
    keeps its orientation.
    """
    scale = ScaleIntensity(minv=0.0, maxv=1.0)
    return torch.stack([torch.as_tensor(scale(m)) for m in maps.detach()])


#: The saliency methods ``gradcam`` computes.
CAM_METHODS = {"Grad-CAM": GradCAM, "LayerCAM": LayerCAM}


def gradcam(model: nn.Module, x: torch.Tensor, target_layer: str, batch_size: int = 8,
            method: str = "Grad-CAM", class_idx: int | None = 0) -> np.ndarray:
    """Class activation maps of one logit: inputs ``(N, C, *spatial)`` -> maps ``(N, *spatial)``.

    Args:
        target_layer: name of the module whose output is explained.
        method: a key of ``CAM_METHODS`` ("Grad-CAM" or "LayerCAM").
        class_idx: the logit explained: 0, the positive logit of a binary model; a class
            index of a K-class model; None, each sample's most probable class.
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(CAM_METHODS)}")
    model = model.cpu().eval()
    cam = CAM_METHODS[method](nn_module=model, target_layers=target_layer, postprocessing=_scale_each)
    maps = []
    for i in range(0, len(x), batch_size):
        with torch.enable_grad():
            m = cam(x=x[i : i + batch_size].cpu(), class_idx=class_idx)
        maps.append(m.detach()[:, 0].numpy())
    return np.concatenate(maps).astype(np.float32)


def localisation_per_sample(maps: np.ndarray, masks: np.ndarray, brains: np.ndarray) -> pd.DataFrame:
    """Localisation of each map ``(N, *spatial)`` against its lesion mask, for samples with a lesion.

    Returns one row per sample with a lesion (``sample`` is its index): ``energy`` (share
    of the map's energy inside the brain that falls in the lesion), ``share`` (share of
    the brain the lesion covers: what a uniform map scores on ``energy``, and the chance
    of a random point in the brain landing in the lesion) and ``hit`` (the map's maximum
    inside the brain lies in the lesion: the pointing game).
    """
    rows = []
    for i, (m, lesion, brain) in enumerate(zip(maps, masks > 0.5, brains)):
        if not lesion.any():
            continue
        inside = np.where(brain, m, 0.0)
        rows.append({"sample": i, "energy": float(inside[lesion].sum() / max(inside.sum(), 1e-12)),
                     "share": float(lesion[brain].mean()),
                     "hit": bool(lesion.flat[int(np.argmax(inside))])})
    return pd.DataFrame(rows, columns=["sample", "energy", "share", "hit"])


def localisation(maps: np.ndarray, masks: np.ndarray, brains: np.ndarray) -> dict[str, float]:
    """How well maps point at lesions, over the samples that have a lesion.

    Returns:
        A dict of

        - ``pointing_game``: share of samples whose map maximum (inside the brain) is in the mask;
        - ``energy_in_lesion``: mean share of the map's energy (sum inside the brain) in the mask;
        - ``lesion_share_of_brain``: mean share of the brain that the mask covers (what a
          uniform map would score on ``energy_in_lesion``);
        - ``n``: samples with a lesion.
    """
    per = localisation_per_sample(maps, masks, brains)
    if per.empty:
        return {"pointing_game": float("nan"), "energy_in_lesion": float("nan"),
                "lesion_share_of_brain": float("nan"), "n": 0}
    return {"pointing_game": float(per.hit.mean()), "energy_in_lesion": float(per.energy.mean()),
            "lesion_share_of_brain": float(per.share.mean()), "n": len(per)}


def randomised_copy(model: nn.Module, modules: list[str] | None = None, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with the named modules (every module when None) re-initialised
    by their own ``reset_parameters``: the same architecture without what it learned."""
    copy_ = copy.deepcopy(model)
    torch.manual_seed(seed)
    named = dict(copy_.named_modules())
    for name in ([""] if modules is None else modules):
        for sub in named[name].modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    return copy_


def _spearman_each(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each pair of maps ``(N, *spatial)``; 0 where a map is constant
    (a constant map keeps none of the other's rank order)."""
    rhos = []
    for x, y in zip(a, b):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            rhos.append(0.0)
        else:
            rhos.append(float(stats.spearmanr(x.ravel(), y.ravel()).statistic))
    return np.asarray(rhos)


def randomisation_check(
    model: nn.Module, x: torch.Tensor, target_layer: str, top_layers: list[str], seed: int = 0,
    method: str = "Grad-CAM", class_idx: int | None = 0,
) -> dict[str, float]:
    """Model-parameter randomisation test (Adebayo et al., NeurIPS 2018).

    Re-initialises the named top modules of a copy of ``model`` and compares its maps
    with the trained model's by Spearman rank correlation per sample. Maps that barely
    change (correlation near 1) do not depend on what the model learned.

    Returns mean and minimum Spearman correlation, n, and the per-sample values (``rho``).
    """
    before = gradcam(model, x, target_layer, method=method, class_idx=class_idx)
    after = gradcam(randomised_copy(model, top_layers, seed), x, target_layer, method=method, class_idx=class_idx)
    rhos = _spearman_each(before, after)
    return {"spearman_mean": float(rhos.mean()), "spearman_min": float(rhos.min()), "n": len(rhos),
            "rho": rhos}


def _mean_ci(values: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of per-sample values with a 95% interval that resamples patients (``groups``)."""
    return bootstrap_ci(np.ones(len(values), int), np.asarray(values, float), groups,
                        lambda _y, v: float(np.mean(v)), n_boot=n_boot, seed=seed)


#: The rule behind the randomisation verdict: mean Spearman correlation between the
#: trained model's maps and those after randomising its top layers.
RANDOMISATION_RULE = 0.5


@dataclass
class SaliencyReport:
    """What ``saliency_checks`` measured.

    Attributes:
        maps: (method, network) -> maps ``(N, *spatial)``; network is "trained" or "random weights".
        localisation: one row per (method, network): energy in lesion with its interval,
            lesion share of brain, their ratio, pointing game with its Wilson interval and
            its chance level (Wilson over scans), scans and patients with a lesion.
        verdicts: one row per method: trained minus random-weight energy in lesion with its
            interval and the verdict in words; mean Spearman after randomising the top
            layers with its interval and the verdict in words.
    """

    maps: dict[tuple[str, str], np.ndarray]
    localisation: pd.DataFrame
    verdicts: pd.DataFrame


def _localisation_verdict(lo: float, hi: float) -> str:
    if lo > 0:
        return "localises better than its random-weight control"
    if hi < 0:
        return "localises worse than its random-weight control"
    return "no better than its random-weight control"


def _randomisation_verdict(lo: float, hi: float) -> str:
    if hi < RANDOMISATION_RULE:
        return "passes: maps change when the top layers are randomised"
    if lo > RANDOMISATION_RULE:
        return "fails: maps survive randomisation of the top layers"
    return "inconclusive"


def saliency_checks(
    model: nn.Module, x: torch.Tensor, masks: np.ndarray, brains: np.ndarray, target_layer: str,
    top_layers: list[str], groups: np.ndarray | None = None, seed: int = 0, n_random: int = 16,
    n_boot: int = 1000, localise: bool = True, class_idx: int | None = 0,
) -> SaliencyReport:
    """Maps of every method in ``CAM_METHODS`` with their controls, as the chapters report them.

    Two controls: **localisation against the same architecture with random weights**
    (a map's energy can sit in a lesion for reasons that have nothing to do with what the
    model learned: bright voxels, the layer's receptive field), compared patient by patient
    with a bootstrap interval of the difference; and the **randomisation check** of the
    top layers (Adebayo et al. 2018), with a bootstrap interval of the mean Spearman
    correlation and the verdict rule ``RANDOMISATION_RULE``.

    Args:
        x: inputs ``(N, C, *spatial)``; masks: lesion masks ``(N, *spatial)``; brains: brain masks.
        groups: patient ID per sample (default: each sample its own patient).
        n_random: samples used by the randomisation check (the first ``n_random``).
        localise: False on data without lesion masks: only the randomisation check runs.
        class_idx: the logit explained (``gradcam``); None: each sample's most probable class.
    """
    groups = np.arange(len(x)) if groups is None else np.asarray(groups)
    control = randomised_copy(model, None, seed)
    maps, loc_rows, verdicts = {}, [], {}
    for method in CAM_METHODS:
        verdict: dict[str, object] = {}
        if localise:
            per = {}
            for network, net in (("trained", model), ("random weights", control)):
                maps[method, network] = gradcam(net, x, target_layer, method=method, class_idx=class_idx)
                per[network] = localisation_per_sample(maps[method, network], masks, brains)
                p = per[network]
                g = groups[p["sample"].to_numpy()]
                energy = _mean_ci(p.energy.to_numpy(), g, n_boot, seed)
                hits = int(p.hit.sum())
                pointing = stats.binomtest(hits, len(p)).proportion_ci(method="wilson")
                loc_rows.append({
                    "method": method, "network": network, "layer": target_layer,
                    "energy in lesion": energy[0], "energy lower": energy[1], "energy upper": energy[2],
                    "lesion share of brain": float(p.share.mean()),
                    "energy / share": energy[0] / float(p.share.mean()),
                    "pointing game": hits / len(p), "pointing lower": pointing.low,
                    "pointing upper": pointing.high, "pointing by chance": float(p.share.mean()),
                    "scans with a lesion": len(p), "patients with a lesion": int(len(np.unique(g)))})
            diff = per["trained"].energy.to_numpy() - per["random weights"].energy.to_numpy()
            est, lo, hi = _mean_ci(diff, groups[per["trained"]["sample"].to_numpy()], n_boot, seed)
            verdict |= {"energy in lesion, trained minus random": est, "difference lower": lo,
                        "difference upper": hi, "localisation": _localisation_verdict(lo, hi)}
        else:
            maps[method, "trained"] = gradcam(model, x, target_layer, method=method, class_idx=class_idx)
        rand = randomisation_check(model, x[:n_random], target_layer, top_layers, seed=seed, method=method,
                                   class_idx=class_idx)
        rho = _mean_ci(rand["rho"], groups[:n_random], n_boot, seed)
        verdict |= {"Spearman after randomising top layers": rho[0], "Spearman lower": rho[1],
                    "Spearman upper": rho[2], "randomisation check": _randomisation_verdict(rho[1], rho[2])}
        verdicts[method] = verdict
    localisation_table = (pd.DataFrame(loc_rows).set_index(["method", "network"]) if loc_rows
                          else pd.DataFrame())
    return SaliencyReport(maps, localisation_table, pd.DataFrame(verdicts).T.rename_axis("method"))


def overlay_cases(masks: np.ndarray) -> list[tuple[str, int]]:
    """Which samples a saliency figure shows, and why: the largest and the median lesion
    of ``masks`` ``(N, *spatial)``, or the first two samples when no sample has a lesion."""
    size = masks.reshape(len(masks), -1).sum(axis=1)
    with_lesion = np.flatnonzero(size > 0)
    if not len(with_lesion):
        return [("first patient", 0), ("second patient", min(1, len(masks) - 1))]
    return [("largest lesion", int(with_lesion[np.argmax(size[with_lesion])])),
            ("median lesion", int(with_lesion[np.argsort(size[with_lesion])[len(with_lesion) // 2]]))]


def tissue_shares(maps: np.ndarray, tissues: dict[str, np.ndarray], groups: np.ndarray | None = None,
                  n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Share of each map's energy that falls on each tissue, with patient-bootstrap intervals.

    A map (``*S``) shorter than the tissue masks (``*S, Z``) is read across every slice of
    the trailing axis: the in-plane map of a network that takes the slices as channels
    covers each slice alike, so a pixel's weight for a tissue is the share of its slices
    that are that tissue. The tissues should cover every voxel once (for example brain,
    bone and the rest).

    Args:
        maps: ``(N, *S)`` non-negative maps.
        tissues: name -> ``(N, *S)`` or ``(N, *S, Z)`` bool masks.
        groups: patient ID per sample (default: each sample its own patient).
    Returns:
        One row per tissue: ``share`` (mean over samples) with ``lower``/``upper``, and
        ``uniform map`` (the share a map that is the same everywhere would get).
    """
    groups = np.arange(len(maps)) if groups is None else np.asarray(groups)
    energy = np.asarray(maps, float).reshape(len(maps), -1)
    total = np.maximum(energy.sum(1), 1e-12)
    rows = []
    for name, mask in tissues.items():
        weight = np.asarray(mask, float)
        if weight.ndim == maps.ndim + 1:
            weight = weight.mean(-1)
        weight = weight.reshape(len(maps), -1)
        share = (energy * weight).sum(1) / total
        est, lo, hi = _mean_ci(share, groups, n_boot, seed)
        rows.append({"tissue": name, "share": est, "lower": lo, "upper": hi,
                     "uniform map": float(weight.mean())})
    return pd.DataFrame(rows).set_index("tissue")
