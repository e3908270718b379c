"""Profiles, device choice, determinism and the versions a chapter ran with."""

from __future__ import annotations

import importlib.metadata
import platform
import random
import time
from dataclasses import dataclass, field

import numpy as np

#: What the two profiles mean. "smoke" runs a chapter on 2 CPU cores in minutes;
#: "full" is the study proper, on a GPU.
PROFILES: dict[str, dict[str, object]] = {
    "smoke": {"n_subjects": 200, "in_plane": 64, "input_shape": (48, 48, 48), "epochs": 40,
              "lr": 3e-3, "folds": 3, "bootstrap": 300, "batch_size": 8},
    "full": {"n_subjects": 1000, "in_plane": 128, "input_shape": (128, 128, 64), "epochs": 60,
             "lr": 1e-3, "folds": 3, "bootstrap": 2000, "batch_size": 8},
}

PACKAGES = ("stroke-lib", "torch", "monai", "numpy", "pandas", "scikit-learn", "scipy",
            "nibabel", "pydicom", "nilearn", "matplotlib", "seaborn", "papermill")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_profile(profile: str, device: str) -> str:
    """``"auto"`` -> ``"full"`` on CUDA, ``"smoke"`` otherwise."""
    if profile == "auto":
        return "full" if device.startswith("cuda") else "smoke"
    if profile not in PROFILES:
        raise ValueError(f"profile must be smoke, full or auto, got {profile!r}")
    return profile


def set_seed(seed: int) -> None:
    """Seed Python, NumPy, PyTorch and MONAI (``monai.utils.set_determinism``)."""
    from monai.utils import set_determinism

    random.seed(seed)
    np.random.seed(seed)
    set_determinism(seed=seed)


def versions() -> dict[str, str]:
    """Python and package versions, for the record of a run."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True)
class RunContext:
    """A chapter's resolved settings: profile name and its settings, device, seed, and
    when it started (``time.time()``, seconds), from which its run record takes the
    chapter's wall time."""

    profile: str
    device: str
    seed: int
    settings: dict[str, object]
    started: float = field(default_factory=time.time, compare=False)


def start_run(profile: str = "auto", device: str = "auto", seed: int = 0) -> RunContext:
    """Resolve ``profile`` and ``device``, seed everything, and return the context."""
    dev = resolve_device(device)
    prof = resolve_profile(profile, dev)
    set_seed(seed)
    return RunContext(profile=prof, device=dev, seed=seed, settings=dict(PROFILES[prof]))
