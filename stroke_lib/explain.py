"""Grad-CAM (``monai.visualize.GradCAM``), LayerCAM, localisation scores and a sanity check.

Maps are (N, *spatial), upsampled to the input size and scaled to [0, 1] per sample,
largest evidence at 1 (MONAI's default post-processing flips them; see ``_scale_each``).

Grad-CAM weights each feature channel by its gradient averaged over the whole volume.
LayerCAM (Jiang et al., IEEE TIP 2021) weights every voxel of a channel by its own
positive gradient, which keeps small, local evidence such as an infarct of a few ml.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.transforms import ScaleIntensity
from monai.visualize import GradCAM
from scipy import stats
from torch import nn


class LayerCAM(GradCAM):
    """LayerCAM (Jiang et al., IEEE TIP 2021) on MONAI's Grad-CAM hooks.

    The map is ReLU(sum_c ReLU(dy/dA_c) * A_c), element-wise, where Grad-CAM uses the
    channel's mean gradient; upsampling and scaling are MONAI's.
    """

    def compute_map(self, x, class_idx=None, retain_graph=False, layer_idx=-1, **kwargs):
        _, acti, grad = self.nn_module(x, class_idx=class_idx, retain_graph=retain_graph, **kwargs)
        return F.relu((F.relu(grad[layer_idx]) * acti[layer_idx]).sum(1, keepdim=True))


def _scale_each(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map (N, 1, *spatial) to [0, 1], largest evidence at 1.

    MONAI's default post-processing maps (min, max) to (1, 0), flipping the map; this
    keeps its orientation.
    """
    scale = ScaleIntensity(minv=0.0, maxv=1.0)
    return torch.stack([torch.as_tensor(scale(m)) for m in maps.detach()])


#: The saliency methods ``gradcam`` computes.
CAM_METHODS = {"Grad-CAM": GradCAM, "LayerCAM": LayerCAM}


def gradcam(model: nn.Module, x: torch.Tensor, target_layer: str, batch_size: int = 8,
            method: str = "Grad-CAM") -> np.ndarray:
    """Class activation maps of the positive logit: inputs (N, C, *spatial) -> maps (N, *spatial).

    Args:
        target_layer: name of the module whose output is explained.
        method: a key of ``CAM_METHODS`` ("Grad-CAM" or "LayerCAM").
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(CAM_METHODS)}")
    model = model.cpu().eval()
    cam = CAM_METHODS[method](nn_module=model, target_layers=target_layer, postprocessing=_scale_each)
    maps = []
    for i in range(0, len(x), batch_size):
        with torch.enable_grad():
            m = cam(x=x[i : i + batch_size].cpu(), class_idx=0)
        maps.append(m.detach()[:, 0].numpy())
    return np.concatenate(maps).astype(np.float32)


def localisation(maps: np.ndarray, masks: np.ndarray, brains: np.ndarray) -> dict[str, float]:
    """How well maps point at lesions, over the samples that have a lesion.

    Returns:
        pointing_game: share of samples whose map maximum (inside the brain) is in the mask.
        energy_in_lesion: mean share of the map's energy (sum inside the brain) in the mask.
        lesion_share_of_brain: mean share of the brain that the mask covers (what a
            uniform map would score on ``energy_in_lesion``).
        n: samples with a lesion.
    """
    hits, energy, share = [], [], []
    for m, lesion, brain in zip(maps, masks > 0.5, brains):
        if not lesion.any():
            continue
        inside = np.where(brain, m, 0.0)
        hits.append(bool(lesion.flat[int(np.argmax(inside))]))
        energy.append(float(inside[lesion].sum() / max(inside.sum(), 1e-12)))
        share.append(float(lesion[brain].mean()))
    if not hits:
        return {"pointing_game": float("nan"), "energy_in_lesion": float("nan"),
                "lesion_share_of_brain": float("nan"), "n": 0}
    return {"pointing_game": float(np.mean(hits)), "energy_in_lesion": float(np.mean(energy)),
            "lesion_share_of_brain": float(np.mean(share)), "n": len(hits)}


def randomisation_check(
    model: nn.Module, x: torch.Tensor, target_layer: str, top_layers: list[str], seed: int = 0,
    method: str = "Grad-CAM",
) -> dict[str, float]:
    """Model-parameter randomisation test (Adebayo et al., NeurIPS 2018).

    Re-initialises the named top modules of a copy of ``model`` and compares its Grad-CAM
    maps with the trained model's by Spearman rank correlation per sample. Maps that
    barely change (correlation near 1) do not depend on what the model learned.

    Returns mean and minimum Spearman correlation, and n.
    """
    before = gradcam(model, x, target_layer, method=method)
    randomised = copy.deepcopy(model)
    torch.manual_seed(seed)
    modules = dict(randomised.named_modules())
    for name in top_layers:
        for sub in modules[name].modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    after = gradcam(randomised, x, target_layer, method=method)
    rhos = []
    for a, b in zip(before, after):
        rho = stats.spearmanr(a.ravel(), b.ravel()).statistic
        rhos.append(0.0 if np.isnan(rho) else float(rho))
    return {"spearman_mean": float(np.mean(rhos)), "spearman_min": float(np.min(rhos)), "n": len(rhos)}


def saliency_checks(
    model: nn.Module, x: torch.Tensor, masks: np.ndarray, brains: np.ndarray, target_layer: str,
    top_layers: list[str], seed: int = 0, n_random: int = 16,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Maps of every method in ``CAM_METHODS`` with their checks, as the chapters report them.

    Args:
        x: inputs (N, C, *spatial); masks: lesion masks (N, *spatial); brains: brain masks.
        n_random: samples used by the randomisation check.

    Returns:
        the maps per method (N, *spatial), and a table with one row per method: layer,
        energy in lesion, lesion share of brain, their ratio, pointing game, the mean
        Spearman correlation after randomising ``top_layers``, and the patients with a lesion.
    """
    maps, rows = {}, {}
    for method in CAM_METHODS:
        maps[method] = gradcam(model, x, target_layer, method=method)
        loc = localisation(maps[method], masks, brains)
        rand = randomisation_check(model, x[:n_random], target_layer, top_layers, seed=seed, method=method)
        rows[method] = {
            "layer": target_layer,
            "energy in lesion": loc["energy_in_lesion"],
            "lesion share of brain": loc["lesion_share_of_brain"],
            "energy / share": loc["energy_in_lesion"] / loc["lesion_share_of_brain"],
            "pointing game": loc["pointing_game"],
            "Spearman after randomising top layers": rand["spearman_mean"],
            "patients with a lesion": loc["n"]}
    return maps, pd.DataFrame(rows).T.rename_axis("method")
