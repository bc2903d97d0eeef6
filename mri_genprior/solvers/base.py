"""The reconstructor interface every method implements.

A reconstructor is a dataclass of hyper-parameters (its fields are recorded as the
settings of every output) with one method::

    reconstruct(y, mps, weights, device) -> images

where, for a batch of B slices of a volume,

* ``y``: ``(B, C, H, W)`` complex64 k-space, already masked and scaled,
* ``mps``: ``(B, C, H, W)`` complex64 sensitivity maps (None if ``needs_maps`` is False),
* ``weights``: ``(B, H, W)`` float32 sampling mask,
* ``images``: ``(B, H, W)`` complex64 (or real) reconstructions on the same scale as ``y``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, List, Optional

import numpy as np
import torch


@dataclasses.dataclass
class Reconstructor:
    """Base class: see the module docstring for the contract."""

    name: ClassVar[str] = ""
    needs_maps: ClassVar[bool] = True

    def __post_init__(self):
        self.diagnostics: List[dict] = []  # per-slice records of the last reconstruct call
        self.uncertainty: Optional[np.ndarray] = None  # (B, H, W) per-pixel std of the last call, if any

    def settings(self) -> dict:
        """Hyper-parameters as a JSON-able dict (recorded in outputs)."""
        return {"method": self.name, **dataclasses.asdict(self)}

    def reconstruct(self, y: np.ndarray, mps: Optional[np.ndarray], weights: np.ndarray,
                    device: torch.device) -> np.ndarray:
        raise NotImplementedError
