"""The in-memory image every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np


@dataclass
class Volume:
    """A 3D image in canonical RAS+ voxel order.

    Attributes:
        data: float32 array (X, Y, Z): axis 0 runs to the Right, 1 to Anterior, 2 to
            Superior. CT in Hounsfield units; MRI in the scanner's units.
        affine: 4 x 4 voxel -> RAS world (mm).
        source: the file or series folder it was read from.
        notes: repairs the reader made (reorientation, non-finite voxels replaced).
    """

    data: np.ndarray
    affine: np.ndarray
    source: Path
    notes: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) along axes 0, 1, 2."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def orientation(self) -> str:
        """Axis codes of the affine, ``"RAS"`` for every loader's output."""
        return "".join(nib.aff2axcodes(self.affine))
