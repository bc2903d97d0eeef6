"""Named stages of the generative-prior methods, each a plain function of its inputs.

* :func:`latent_stage`: fit z from R random restarts per slice in one batch, keep the
  restart with the lowest measurement loss (Bora et al. 2017).
* :func:`adaptation_stage`: move z and a per-slice copy of the network weights
  together, early-stopped on held-out k-space (image-adaptive priors, Hussein et al. 2020).
* :func:`data_consistency`: restore the measured samples.
* :func:`ensemble_shrinkage`: Wiener factors for the k-space mean of an ensemble.
* :func:`restart_std`: per-pixel spread of the good restarts.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import List, Optional, Sequence

import torch
from torch import nn

from .latent import FitOptions, FitResult, fit


@dataclasses.dataclass
class LatentOutcome:
    """The latent stage's result for B slices × R restarts.

    ``fit`` holds all B·R items (slice-major); ``losses`` is ``(B, R)``; ``best`` the
    chosen restart per slice; ``phase`` the magnitude-prior phase per item (or None).
    """

    fit: FitResult
    losses: torch.Tensor
    best: torch.Tensor
    phase: Optional[torch.Tensor]

    @property
    def pick(self) -> torch.Tensor:
        """Item index of each slice's best restart."""
        restarts = self.losses.shape[1]
        return torch.arange(len(self.best), device=self.best.device) * restarts + self.best

    @property
    def images(self) -> torch.Tensor:
        return self.fit.images[self.pick]


def latent_stage(y: torch.Tensor, physics, network: nn.Module, channels: int, options: FitOptions, *,
                 restarts: int, penalties: Sequence, rng: torch.Generator) -> LatentOutcome:
    """Fit ``z ~ N(0, I)`` starts (``restarts`` per slice) as one batch; keep the lowest data loss."""
    index = torch.arange(y.shape[0]).repeat_interleave(restarts)
    many = physics.select(index)
    y_many = y.repeat_interleave(restarts, 0)
    z0 = torch.randn((y_many.shape[0], network.latent_dim), generator=rng).to(y.device)
    phase = many.calibration_phase(y_many) if channels == 1 else None
    result = fit(many, y_many, network, z0, options, physics.image_shape, phase=phase, penalties=penalties, rng=rng)
    losses = result.data_loss.view(-1, restarts)
    return LatentOutcome(result, losses, losses.argmin(1), phase)


def adaptation_stage(y: torch.Tensor, physics, network: nn.Module, z: torch.Tensor, phase: Optional[torch.Tensor],
                     options: FitOptions, *, penalties: Sequence, rng: torch.Generator) -> torch.Tensor:
    """Per slice, fit z and a fresh copy of ``network``'s weights from ``z``; returns ``(B, H, W)`` images.

    ``network`` itself is never changed.
    """
    out: List[torch.Tensor] = []
    for b in range(y.shape[0]):
        own = copy.deepcopy(network).train().requires_grad_(True)
        result = fit(physics.select([b]), y[b:b + 1], own, z[b:b + 1], options, physics.image_shape,
                     phase=None if phase is None else phase[b:b + 1], penalties=penalties, rng=rng)
        out.append(result.images)
    return torch.cat(out)


def data_consistency(physics, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Restore the measured samples: ``x + Aᴴ(y − A x)`` (exact for maps with Σ|S|² = 1)."""
    return x + physics.adjoint(y - physics.forward(x))


def ensemble_shrinkage(kspace: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Wiener factors ``(B, C, H, W)`` in [0, 1] for the mean of n ensemble members' coil k-space.

    ``kspace`` is ``(n, B, C, H, W)``, n >= 2. With m the members' mean and v their unbiased
    variance at each sample, both averaged over a ``window`` × ``window`` (odd) k-space
    neighbourhood (per coil), the factor is ``max(0, 1 − v / (n |m|²))``: the mean is kept
    where the members agree and pulled toward zero, the zero-filled value, where they
    disagree (a prior's inventions where the data leave the image undetermined). Applied to
    the unmeasured samples only (the output convention restores the measured ones).
    """
    n = kspace.shape[0]
    if n < 2:
        raise ValueError(f"ensemble_shrinkage needs at least 2 members, got {n}")
    mean = kspace.mean(0)
    var = (kspace - mean).abs().pow(2).sum(0) / (n - 1)

    def local(a: torch.Tensor) -> torch.Tensor:
        flat = a.reshape(-1, 1, *a.shape[-2:])
        return torch.nn.functional.avg_pool2d(flat, window, stride=1, padding=window // 2,
                                              count_include_pad=False).reshape(a.shape)

    power = local(mean.abs().pow(2))
    return (1 - local(var) / (n * power).clamp_min(torch.finfo(power.dtype).tiny)).clamp(0, 1)


def restart_std(images: torch.Tensor, losses: torch.Tensor, good_ratio: float) -> torch.Tensor:
    """Per-pixel std of |x| over the restarts with loss <= ``good_ratio`` × best: ``(B, H, W)``.

    ``images`` are the B·R restart images (slice-major), ``losses`` ``(B, R)``.
    """
    mags = images.abs().view(losses.shape + images.shape[-2:])
    good = (losses <= good_ratio * losses.min(1, keepdim=True).values).to(mags.dtype)
    count = good.sum(1)[:, None, None]
    mean = (mags * good[..., None, None]).sum(1) / count
    var = ((mags - mean[:, None]) ** 2 * good[..., None, None]).sum(1) / count
    return var.sqrt()
