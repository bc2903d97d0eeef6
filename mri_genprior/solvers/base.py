"""The interface every reconstruction method implements.

A method is a dataclass of hyper-parameters (its fields are recorded as the settings of
every output) with one call::

    method.reconstruct(y, physics) -> Result

where, for a batch of B slices,

* ``y``: ``(B, *physics.oshape)`` complex64 torch tensor on ``physics.device`` (for
  Cartesian SENSE ``(B, C, H, W)`` k-space, masked and scaled),
* ``physics``: the :class:`~mri_genprior.physics.Physics` built once for the batch by
  the pipeline (or by the caller, e.g. a non-Cartesian SigPy ``Sense``),
* the :class:`Result` holds ``(B, H, W)`` complex64 images (a maps-free method's: ``(B, C,
  H, W)`` coil images) on the same scale as ``y``,
  an optional per-pixel standard deviation and per-slice diagnostics.

``reconstruct`` leaves no state on the method: the same method object may serve any
number of batches, threads or processes. A method whose data-driven choices (a
regularisation weight) hold for a whole volume may make them once: the pipeline calls
``method.for_volume(y, physics)`` on a volume's central slice and runs the method it
returns on every slice.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, List, Optional, Tuple

import numpy as np

from .. import MriGenpriorError


DIAGNOSTICS = {
    "method": "the registry name",
    "steps": "iterations of the final solve, optimiser steps of a fit (a list: one per ensemble member), "
             "or network evaluations of a sampler",
    "stopped_by": "'steps' (the budget ran out) or 'validation' (held-out samples stopped it); "
                  "a list for an ensemble",
    "seconds": "wall time of the slice (its batch's time over its slices where they were solved together)",
}  # the keys every method's per-slice diagnostics hold


def stopped_by(steps: int, budget: int) -> str:
    """The ``stopped_by`` of :data:`DIAGNOSTICS` for a loop that ran ``steps`` of ``budget``."""
    return "steps" if steps >= budget else "validation"


@dataclasses.dataclass
class Result:
    """What a method returns for a batch of B slices.

    Attributes
    ----------
    images : ``(B, H, W)`` complex64 reconstructions (scaled like ``y``), or ``(B, C, H, W)``
        coil images from a maps-free method (the physics' output
        convention, :meth:`~mri_genprior.physics.Physics.output`, makes the written magnitude).
    std : ``(B, H, W)`` per-pixel standard deviation of the magnitude, or None.
    diagnostics : one JSON-able dict per slice. Every method's hold the keys of
        :data:`DIAGNOSTICS` (``seconds`` is added by the pipeline where the method has not
        timed the slice itself); the rest are its own (losses, chosen restart, λ ladder, ...).
    shrink : ``(B, C, H, W)`` factors in [0, 1] on the unmeasured coil k-space of ``images``
        that the output convention applies (an ensemble's shrinkage), or None.
    """

    images: np.ndarray
    std: Optional[np.ndarray] = None
    diagnostics: List[dict] = dataclasses.field(default_factory=list)
    shrink: Optional[np.ndarray] = None


@dataclasses.dataclass
class Method:
    """Base class: see the module docstring for the contract.

    Class attributes: ``needs_maps`` (the pipeline estimates coil maps for it; a method
    may make it a property of its settings),
    ``takes_prior`` (it reads a trained generator checkpoint, ``prior``) and
    ``noise_floor`` (its written RSS carries the unmeasured samples' noise power, see
    :meth:`mri_genprior.physics.SensePhysics.output`). The registry
    (:mod:`mri_genprior.solvers`) sets ``name``.
    """

    needs_maps: ClassVar[bool] = True
    takes_prior: ClassVar[bool] = False
    noise_floor: ClassVar[bool] = True
    name = ""  # set by the registry; not a hyper-parameter

    def settings(self) -> dict:
        """Hyper-parameters as a JSON-able dict (recorded in outputs)."""
        return {"method": self.name, **dataclasses.asdict(self)}

    def reconstruct(self, y, physics) -> Result:
        raise NotImplementedError

    def replace(self, **changes) -> Method:
        """A copy with ``changes`` to its hyper-parameters (checked again), under the same
        registry name (``dataclasses.replace`` alone would drop it)."""
        copy = dataclasses.replace(self, **changes)
        copy.name = self.name
        return copy

    @property
    def chooses_per_volume(self) -> bool:
        """Whether :meth:`for_volume` makes a choice (the pipeline then prepares the central
        slice's batch first); False by default."""
        return False

    def for_volume(self, y, physics) -> Tuple[Method, dict]:
        """The method to run on every slice of a volume of several slices, given its central
        slice ``y`` ``(1, *physics.oshape)`` and physics, and a JSON-able record of what was
        chosen (the pipeline keeps it in the provenance); by default itself and ``{}``."""
        return self, {}


def number_or_auto(name: str, value) -> "float | str":
    """A hyper-parameter that is a finite number >= 0 (a weight or a noise level) or
    ``"auto"`` (chosen from the data)."""
    if value == "auto":
        return value
    try:
        number = float(value)
    except ValueError:
        raise MriGenpriorError(f"parameter {name}: expected a number or 'auto', got {value!r}") from None
    if not 0 <= number < float("inf"):
        raise MriGenpriorError(f"parameter {name}: expected a finite number >= 0 or 'auto', got {number}")
    return number
