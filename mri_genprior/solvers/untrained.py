"""Untrained priors: a fresh network fitted to each slice from a fixed random input.

The network is a named part, ``network``, from the architecture registry
(:data:`mri_genprior.priors.REGISTRY`): ``deep-decoder`` (Heckel & Hand 2019, 1×1
convolutions; with ``kernel_size=3`` the ConvDecoder of Darestani & Heckel 2021) or
``dip`` (the encoder-decoder with skips of Ulyanov et al. 2018). Its weights move
(θ in :func:`~.latent.fit`); early stopping keeps the iterate with the lowest loss on
``holdout`` of the measured samples (no ground truth needed), and the measured samples
are then restored (``data_consistency``).

Two forms (``form``; ``sense`` is the default, measured better on real scans, see
docs/real_data.md):

* ``coils``: maps-free, as in the original papers: the network outputs all C coil images
  (2C channels) and is fitted through :class:`~mri_genprior.physics.CoilPhysics`; the
  image is the RSS of the data-consistent coil images. No coil maps are estimated.
* ``sense``: the network outputs one complex image, fitted through the SENSE physics
  (coil maps estimated by the pipeline).
"""

from __future__ import annotations

import dataclasses

import torch

from .. import MriGenpriorError
from ..priors import build
from .base import Method, Result
from .latent import FitOptions, fit
from .stages import data_consistency


FORMS = ("coils", "sense")


@dataclasses.dataclass
class UntrainedPrior(Method):
    """An untrained network per slice (see the module docstring)."""

    network: str = "deep-decoder"
    form: str = "sense"
    channels: int = 64
    layers: int = 4
    kernel_size: int = 1
    steps: int = 1000
    lr: float = 0.005
    holdout: float = 0.05
    patience: int = 200
    data_consistency: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.form not in FORMS:
            raise MriGenpriorError(f"parameter form: choose from {', '.join(FORMS)}, got {self.form!r}")

    @property
    def needs_maps(self) -> bool:
        return self.form == "sense"

    def operator(self, y, physics):
        """The physics the network is fitted through: ``physics`` itself (``sense``) or its
        coil-image form for the ``y.shape[1]`` coils (``coils``)."""
        return physics.coil_images(y.shape[1]) if self.form == "coils" else physics

    def make_network(self, op, seed: int) -> torch.nn.Module:
        """A fresh network for ``op`` (2 output channels per image ``op`` takes), initialised
        from ``seed`` without touching the caller's RNG, on ``op``'s device."""
        out_channels = 2 * op.ishape[0] if len(op.ishape) == 3 else 2
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build({"architecture": self.network, "output_size": list(op.image_shape),
                          "channels": self.channels, "layers": self.layers, "kernel_size": self.kernel_size,
                          "out_channels": out_channels}).to(op.device)

    def reconstruct(self, y, physics) -> Result:
        options = FitOptions(steps=self.steps, lr=0.0, net_lr=self.lr, holdout=self.holdout, patience=self.patience)
        op = self.operator(y, physics)
        images, diagnostics = [], []
        for b in range(y.shape[0]):
            rng = torch.Generator().manual_seed(self.seed + b)
            net = self.make_network(op, self.seed + b)
            one, yb = op.select([b]), y[b:b + 1]
            result = fit(one, yb, net, net.fixed_input(rng).to(physics.device), options, physics.image_shape,
                         rng=rng)
            x = data_consistency(one, result.images, yb) if self.data_consistency else result.images
            if self.form == "coils":  # the RSS image (magnitude): the written output of maps-free physics
                x = torch.as_tensor(one.output(x.cpu().numpy(), yb), device=x.device).to(torch.complex64)
            images.append(x)
            diagnostics.append({"method": self.name, "steps": result.steps, "backoffs": result.backoffs,
                                "final_loss": float(result.data_loss[0]),
                                "holdout_loss": float(result.holdout_loss[0])})
        return Result(torch.cat(images).cpu().numpy(), None, diagnostics)
