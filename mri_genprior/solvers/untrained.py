"""Untrained priors: a fresh network fitted to each slice from a fixed random input.

The network is a named part, ``network``, from the architecture registry
(:data:`mri_genprior.priors.REGISTRY`): ``deep-decoder`` (Heckel & Hand 2019, 1×1
convolutions; with ``kernel_size=3`` the ConvDecoder of Darestani & Heckel 2021) or
``dip`` (the encoder-decoder with skips of Ulyanov et al. 2018). Its weights move
(θ in :func:`~.latent.fit`); early stopping keeps the iterate with the lowest loss on
``holdout`` of the measured samples (no ground truth needed), and the measured samples
are then restored (``data_consistency``).

``ensemble=n`` fits n networks per slice from different seeds and averages their complex
images. A single fit invents seed-dependent texture where the data leave the image
undetermined; the members agree on what the data fix, so their mean keeps that and
averages the inventions out, at n times the time.

``shrink`` (default on, n >= 2): where the members disagree about an unmeasured k-space
sample, the written image takes less of their mean there (Wiener factors,
:func:`~.stages.ensemble_shrinkage`): it leans toward zero-filling exactly where the prior
invented.

Two forms (``form``; ``sense`` is the default):

* ``coils``: maps-free, as in the original papers: the network outputs all C coil images
  (2C channels) and is fitted through :class:`~mri_genprior.physics.CoilPhysics`; the
  method returns the coil images, whose written magnitude is the RSS of the data-consistent
  coil images (the physics' output convention). No coil maps are estimated.
* ``sense``: the network outputs one complex image, fitted through the SENSE physics
  (coil maps estimated by the pipeline).
"""

from __future__ import annotations

import dataclasses

import torch

from .. import MriGenpriorError, check_choice
from ..priors import build
from .base import Method, Result, stopped_by
from .latent import FitOptions, fit
from .stages import data_consistency, ensemble_shrinkage


FORMS = ("coils", "sense")


@dataclasses.dataclass
class UntrainedPrior(Method):
    """An untrained network per slice (see the module docstring)."""

    network: str = "deep-decoder"  # an architecture of mri_genprior.priors.REGISTRY
    form: str = "sense"  # one of FORMS
    channels: int = 64  # the network's width
    layers: int = 4  # its depth
    kernel_size: int = 1  # its convolutions' (1: Deep Decoder; 3: ConvDecoder)
    steps: int = 1000  # Adam steps at most
    lr: float = 0.005  # Adam's step
    holdout: float = 0.05  # the fraction of measured samples held out for early stopping
    patience: int = 200  # steps without a better held-out loss before the fit stops
    data_consistency: bool = True  # the measured samples restored in the output
    ensemble: int = 3  # networks fitted per slice, their images averaged
    shrink: bool = True  # ensemble shrinkage toward zero-filling where the members disagree
    seed: int = 0  # slice b, member m fits from seed + b * ensemble + m (inputs and weights)

    def __post_init__(self):
        check_choice("parameter form", self.form, FORMS)
        if self.ensemble < 1:
            raise MriGenpriorError(f"parameter ensemble: expected a number of fits >= 1, got {self.ensemble}")

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

    def seeds(self, b: int) -> range:
        """The seeds of slice ``b``'s ensemble members (``seed + b`` for a single fit)."""
        first = self.seed + b * self.ensemble
        return range(first, first + self.ensemble)

    def reconstruct(self, y, physics) -> Result:
        options = FitOptions(steps=self.steps, lr=0.0, net_lr=self.lr, holdout=self.holdout, patience=self.patience)
        op = self.operator(y, physics)
        if self.shrink and self.ensemble > 1:
            op.require_coil_kspace()  # before any fit
        images, shrinks, diagnostics = [], [], []
        for b in range(y.shape[0]):
            one, yb, seeds = op.select([b]), y[b:b + 1], self.seeds(b)
            fits = []
            for m, seed in enumerate(seeds):
                rng = torch.Generator().manual_seed(seed)
                net = self.make_network(op, seed)
                fits.append(fit(one, yb, net, net.fixed_input(rng).to(physics.device), options, physics.image_shape,
                                rng=rng, label=f"fit {m + 1}/{len(seeds)}"))
            members = torch.stack([data_consistency(one, f.images, yb) if self.data_consistency else f.images
                                   for f in fits])
            x = members.mean(0)
            shrink = ensemble_shrinkage(one.coil_kspace(members.flatten(0, 1)).unflatten(0, members.shape[:2])) \
                if self.shrink and len(fits) > 1 else None
            if shrink is not None:
                shrinks.append(shrink)
            images.append(x)
            diagnostics.append({"method": self.name, "seeds": list(seeds),
                                "steps": [f.steps for f in fits], "backoffs": sum(f.backoffs for f in fits),
                                "stopped_by": [stopped_by(f.steps, self.steps) for f in fits],
                                "final_loss": [float(f.data_loss[0]) for f in fits],
                                "holdout_loss": [float(f.holdout_loss[0]) for f in fits],
                                "shrink_mean": None if shrink is None else  # over the unmeasured samples
                                float(shrink.masked_select((yb[:, :1] == 0).expand_as(shrink)).mean())})
        return Result(torch.cat(images).cpu().numpy(), None, diagnostics,
                      torch.cat(shrinks).cpu().numpy() if shrinks else None)
