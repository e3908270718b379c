"""Grad-CAM (``monai.visualize.GradCAM``), its localisation scores and a sanity check.

Maps are (N, *spatial), upsampled to the input size and scaled to [0, 1] per sample.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from monai.visualize import GradCAM
from scipy import stats
from torch import nn


def gradcam(model: nn.Module, x: torch.Tensor, target_layer: str, batch_size: int = 8) -> np.ndarray:
    """Grad-CAM of the positive logit for inputs (N, C, *spatial) -> maps (N, *spatial)."""
    model = model.cpu().eval()
    cam = GradCAM(nn_module=model, target_layers=target_layer)
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
    model: nn.Module, x: torch.Tensor, target_layer: str, top_layers: list[str], seed: int = 0
) -> dict[str, float]:
    """Model-parameter randomisation test (Adebayo et al., NeurIPS 2018).

    Re-initialises the named top modules of a copy of ``model`` and compares its Grad-CAM
    maps with the trained model's by Spearman rank correlation per sample. Maps that
    barely change (correlation near 1) do not depend on what the model learned.

    Returns mean and minimum Spearman correlation, and n.
    """
    before = gradcam(model, x, target_layer)
    randomised = copy.deepcopy(model)
    torch.manual_seed(seed)
    modules = dict(randomised.named_modules())
    for name in top_layers:
        for sub in modules[name].modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()
    after = gradcam(randomised, x, target_layer)
    rhos = []
    for a, b in zip(before, after):
        rho = stats.spearmanr(a.ravel(), b.ravel()).statistic
        rhos.append(0.0 if np.isnan(rho) else float(rho))
    return {"spearman_mean": float(np.mean(rhos)), "spearman_min": float(np.min(rhos)), "n": len(rhos)}
