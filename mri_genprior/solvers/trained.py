"""Reconstruction with a trained generator (``prior``), composed from named parts.

``TrainedPrior`` runs, for a batch of slices:

1. the latent stage (:func:`~.stages.latent_stage`): ``min_z ‖A G(z) − y‖² + penalties``
   from ``restarts`` random starts, keep the lowest measurement loss;
   option ``sign_flip_every``: Hand & Voroninski's negation check;
2. if ``adapt_steps > 0``, the adaptation stage (:func:`~.stages.adaptation_stage`);
3. if ``data_consistency``, restore the measured samples.

Penalties: :class:`~.latent.LatentNorm` (``lamda_z``) and, if ``lamda_nu > 0``, the
sparse deviation ``x = G(z) + ν`` with :class:`~.latent.WaveletSparsity`. The registry
(:mod:`mri_genprior.solvers`) names the classic combinations: ``csgm``, ``sign-flip``,
``sparse-gen``, ``image-adaptive``.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from .. import MriGenpriorError
from ..priors import SCORE_ARCHITECTURES, load_checkpoint
from .base import Method, Result, stopped_by
from .latent import FitOptions, LatentNorm, WaveletSparsity
from .stages import adaptation_stage, data_consistency, latent_stage, restart_std


@functools.lru_cache(maxsize=4)
def cached_prior(path: str, device: str):
    """A frozen (no gradients), shared generator from a checkpoint, and its config."""
    network, config = load_checkpoint(path, device)
    return network.requires_grad_(False), config


@dataclasses.dataclass
class TrainedPrior(Method):
    """Latent-space reconstruction with the generator checkpoint ``prior`` (see the module docstring)."""

    takes_prior = True
    prior: str = ""
    steps: int = 300
    lr: float = 0.05
    lamda_z: float = 0.001
    lamda_nu: float = 0.0     # > 0: sparse deviation ν with λ_ν ‖Ψν‖₁ (Sparse-Gen)
    restarts: int = 4
    sign_flip_every: int = 0  # > 0: Hand & Voroninski's f(−z) < f(z) check every k steps
    adapt_steps: int = 0      # > 0: image-adaptive stage (z and weights move)
    adapt_lr: float = 1e-4
    holdout: float = 0.05     # adaptation: fraction of samples held out for early stopping
    patience: int = 50
    data_consistency: bool = False
    std_map: bool = False     # also return the per-pixel std of |x| over the good restarts
    good_restart_ratio: float = 1.5  # a restart is "good" if its loss <= ratio × the best loss
    seed: int = 0

    def __post_init__(self):
        if not self.prior:
            raise MriGenpriorError("needs a generator checkpoint: --prior CKPT")

    def reconstruct(self, y, physics) -> Result:
        network, config = cached_prior(str(self.prior), str(physics.device))
        if config.get("architecture") in SCORE_ARCHITECTURES:
            raise MriGenpriorError(f"{self.prior} is a score prior: use it with the dds, dps or langevin methods")
        rng = torch.Generator().manual_seed(self.seed)
        penalties = [LatentNorm(self.lamda_z)]
        if self.lamda_nu > 0:
            penalties.append(WaveletSparsity(self.lamda_nu, physics.image_shape, physics.device))
        options = FitOptions(steps=self.steps, lr=self.lr, sign_flip_every=self.sign_flip_every)
        latent = latent_stage(y, physics, network, config.get("channels"), options, restarts=self.restarts,
                              penalties=penalties, rng=rng)
        images = latent.images
        if self.adapt_steps > 0:
            adapt = FitOptions(steps=self.adapt_steps, lr=self.lr / 10, net_lr=self.adapt_lr, holdout=self.holdout,
                               patience=self.patience)
            phase = None if latent.phase is None else latent.phase[latent.pick]
            images = adaptation_stage(y, physics, network, latent.fit.z[latent.pick], phase, adapt,
                                      penalties=[LatentNorm(self.lamda_z)], rng=rng)
        if self.data_consistency:
            images = data_consistency(physics, images, y)
        std = restart_std(latent.fit.images, latent.losses, self.good_restart_ratio) if self.std_map else None
        losses, best = latent.losses, latent.best
        diagnostics = [
            {"method": self.name, "restart": int(best[b]), "restart_losses": [float(v) for v in losses[b]],
             "final_loss": float(losses[b, best[b]]), "steps": latent.fit.steps,
             "stopped_by": stopped_by(latent.fit.steps, self.steps), "sign_flips": latent.fit.flips,
             "backoffs": latent.fit.backoffs}
            for b in range(len(best))
        ]
        return Result(images.cpu().numpy(), None if std is None else std.cpu().numpy(), diagnostics)
