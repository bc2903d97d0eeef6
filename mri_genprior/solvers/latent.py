"""The one optimisation loop behind every generative-prior method.

Given an operator ``op`` (any :class:`~mri_genprior.physics.Operator`: the pipeline's
:class:`~mri_genprior.physics.Physics`, a SigPy Linop through
:class:`~mri_genprior.physics.SigpyOperator`, a user's own), measurements ``y``
``(N, ...)`` and a network ``G``, :func:`fit` minimises, independently for each of the
N batch items,

    f(z, θ, ν) = ‖A (E(G_θ(z)) + ν) − y‖²_train + Σ penalties

with Adam over the parts that move: z (CSGM, Bora et al. 2017), θ (image-adaptive
priors, untrained decoders), ν (Sparse-Gen, Dhar et al. 2018; it exists when a penalty
acts on it). E embeds the network's image in the solve grid (:func:`~mri_genprior.physics.crop_or_pad`). The
penalties are named parts: :class:`LatentNorm` (λ_z ‖z‖²) and :class:`WaveletSparsity`
(λ_ν ‖Ψ ν‖₁). Options (:class:`FitOptions`):

* ``sign_flip_every=k``: every k steps, items with f(−z) < f(z) jump to −z
  (Hand & Voroninski 2017, Algorithm 1).
* ``holdout=p``: a random fraction p of the measured k-space locations (all coils of a
  location together) is left out of the fit;
  the iterate with the lowest held-out loss is returned (early stopping that needs no
  ground truth), and the fit stops after ``patience`` steps without improvement.

The network's weights move only with ``net_lr > 0``, and then they must be the
caller's own copy; with ``net_lr = 0`` the network is evaluated with detached weights,
so a shared (cached) prior is never touched.

Numerical safety: when the objective of any item becomes NaN or Inf, every moving part
returns to its last finite iterate, the optimizer state is cleared and all step sizes
are halved (a back-off); after ``max_backoffs`` of them the fit raises
:class:`~mri_genprior.MriGenpriorError`. A fit therefore never returns NaN.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .. import MriGenpriorError
from ..physics import crop_or_pad, random_subset
from ..physics.operators import per_item, squared_norms, to_complex
from ..progress import iterate
from .classical import WAVELET


@dataclasses.dataclass
class FitOptions:
    """Hyper-parameters of :func:`fit` (see the module docstring)."""

    steps: int = 300
    lr: float = 0.05          # Adam step for z (0: z fixed) and ν
    net_lr: float = 0.0       # Adam step for the network weights (0: fixed)
    sign_flip_every: int = 0  # 0: off
    holdout: float = 0.0      # fraction of measured samples held out for early stopping
    patience: int = 100
    optimizer: str = "adam"   # "adam", or "sgd" (plain gradient descent, as analysed by Hand & Voroninski)
    max_backoffs: int = 20    # NaN/Inf back-offs (restore, halve the steps) before giving up


@dataclasses.dataclass
class FitResult:
    """Per-item outcome: images ``(N, H, W)`` complex, final z, data losses on all measured
    samples, held-out losses (NaN without hold-out), steps run, flips made, NaN back-offs."""

    images: torch.Tensor
    z: torch.Tensor
    data_loss: torch.Tensor
    holdout_loss: torch.Tensor
    steps: int
    flips: int
    backoffs: int = 0


class LatentNorm:
    """Penalty ``λ ‖z‖²`` on the latent code (the Gaussian prior of CSGM, Bora et al. 2017)."""

    target = "latent"

    def __init__(self, lamda: float):
        self.lamda = lamda

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.lamda * squared_norms(z)


class WaveletSparsity:
    """Penalty ``λ ‖Ψ ν‖₁`` on the sparse deviation ν (Sparse-Gen, Dhar et al. 2018), Ψ the
    Daubechies-4 wavelet transform of SigPy (``sigpy.linop.Wavelet``) through the autograd bridge."""

    target = "deviation"

    def __init__(self, lamda: float, grid: Tuple[int, int], device: torch.device | str = "cpu"):
        import sigpy as sp

        from ..physics import SigpyOperator

        self.lamda = lamda
        self.transform = SigpyOperator(sp.linop.Wavelet(tuple(grid), wave_name=WAVELET), device)

    def __call__(self, nu: torch.Tensor) -> torch.Tensor:
        return self.lamda * self.transform.forward(nu).abs().flatten(1).sum(1)


def _parameter_groups(network: nn.Module, z: torch.Tensor, options: FitOptions):
    """The optimiser's parameter groups (z at ``lr`` if > 0, the weights at ``net_lr`` if > 0)
    and the network call; with ``net_lr = 0`` it evaluates detached weights, so a shared
    prior is never touched and gets no gradients."""
    groups = [{"params": [z], "lr": options.lr}] if options.lr > 0 else []
    if options.net_lr > 0:
        weights = list(network.parameters())
        if not all(w.requires_grad for w in weights):
            raise ValueError("fit moves the network weights (net_lr > 0): pass a copy whose parameters require grad")
        groups.append({"params": weights, "lr": options.net_lr})
        return groups, network
    frozen = {k: v.detach() for k, v in itertools.chain(network.named_parameters(), network.named_buffers())}

    def run(latent):
        return torch.func.functional_call(network, frozen, (latent,))
    return groups, run


@torch.no_grad()
def _copy(sources: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
    """``target.copy_(source)`` pairwise, outside autograd."""
    for source, target in zip(sources, targets):
        target.copy_(source)


@torch.no_grad()
def _keep_best(val: torch.Tensor, x: torch.Tensor, best_val: torch.Tensor, best_images: Optional[torch.Tensor]):
    """Per item, keep ``x`` where its held-out loss ``val`` beats ``best_val``; returns the new
    ``(best_val, best_images, whether any item improved)``."""
    improved = val < best_val
    best_images = x.detach().clone() if best_images is None else torch.where(
        per_item(improved, x), x.detach(), best_images)
    return torch.where(improved, val, best_val), best_images, bool(improved.any())


def fit(op, y: torch.Tensor, network: nn.Module, z0: torch.Tensor, options: FitOptions,
        grid: Tuple[int, int], phase: Optional[torch.Tensor] = None, penalties: Sequence = (),
        rng: Optional[torch.Generator] = None, label: str = "fit") -> FitResult:
    """Run the generative-prior optimisation for a batch of N independent problems.

    Parameters
    ----------
    op : model ``(N, H, W) -> y.shape`` with ``misfit`` (every
        :class:`~mri_genprior.physics.Operator` has :meth:`~mri_genprior.physics.Operator.misfit`),
        which gives the data term.
    y : ``(N, C, ...)`` complex64 measurements.
    network : maps ``z`` ``(N, ...)`` to ``(N, 1 or 2, h, w)``.
    z0 : initial latents ``(N, ...)``.
    grid : (H, W) solve grid, see :func:`~mri_genprior.physics.crop_or_pad`.
    phase : ``(N, H, W)`` phase applied to 1-channel (magnitude) networks.
    penalties : callables with ``target`` "latent" (applied to z) or "deviation"
        (applied to ν, which then exists), each returning ``(N,)`` values.
    rng : CPU generator for the hold-out draw.
    label : name of the step bar shown while the pipeline reports progress.
    """
    rng = rng or torch.Generator().manual_seed(0)
    if options.optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {options.optimizer!r}")
    z = z0.detach().clone().requires_grad_(options.lr > 0)
    groups, run = _parameter_groups(network, z, options)
    on_latent, on_deviation = ([p for p in penalties if p.target == kind] for kind in ("latent", "deviation"))
    nu = None
    if on_deviation:
        nu = torch.zeros((y.shape[0],) + tuple(grid), dtype=torch.complex64, device=y.device, requires_grad=True)
        groups.append({"params": [nu], "lr": options.lr})
    optimizer = (torch.optim.Adam if options.optimizer == "adam" else torch.optim.SGD)(groups)
    held = random_subset(y[:, :1] != 0, options.holdout, rng) if options.holdout > 0 else None
    misfit = op.misfit(y, held)

    def image_of(latent: torch.Tensor) -> torch.Tensor:
        out = run(latent)
        x = crop_or_pad(to_complex(out), grid)
        if phase is not None and out.shape[1] == 1:
            x = x * torch.exp(1j * phase)
        return x + nu if nu is not None else x

    def objective(latent: torch.Tensor):
        x = image_of(latent)
        total, val = misfit(x)
        for penalty, argument in [(p, latent) for p in on_latent] + [(p, nu) for p in on_deviation]:
            total = total + penalty(argument)
        return total, x, val

    moving = [p for group in groups for p in group["params"]]
    last_good = [p.detach().clone() for p in moving]
    best_images, best_val = None, torch.full((y.shape[0],), float("inf"), device=y.device)
    since_best, flips, step, backoffs = 0, 0, 0, 0
    for step in iterate(range(1, options.steps + 1), label):
        optimizer.zero_grad(set_to_none=True)
        total, x, val = objective(z)
        if not bool(torch.isfinite(total).all()):
            backoffs += 1
            if backoffs > options.max_backoffs:
                raise MriGenpriorError(f"the fit diverged (NaN/Inf) {backoffs} times; lower the step size")
            _back_off(moving, last_good, optimizer)
            continue
        _copy(moving, last_good)
        total.sum().backward()
        optimizer.step()
        if options.sign_flip_every and step % options.sign_flip_every == 0:
            flips += _sign_flip(z, objective, optimizer)
        if held is not None:
            best_val, best_images, improved = _keep_best(val, x, best_val, best_images)
            since_best = 0 if improved else since_best + 1
            if since_best >= options.patience:
                break
    with torch.no_grad():
        images = image_of(z) if best_images is None else best_images
        if not bool(torch.isfinite(images).all()):  # the last step diverged: use the last finite iterate
            _back_off(moving, last_good, optimizer)
            images, backoffs = image_of(z), backoffs + 1
        data_loss, _ = op.misfit(y)(images)
    holdout_loss = best_val if held is not None else torch.full_like(data_loss, float("nan"))
    return FitResult(images.detach(), z.detach(), data_loss.detach(), holdout_loss, steps=step, flips=flips,
                     backoffs=backoffs)


def _back_off(moving, last_good, optimizer: torch.optim.Optimizer) -> None:
    """Restore the last finite iterate, clear the optimizer state and halve every step size."""
    _copy(last_good, moving)
    optimizer.state.clear()
    for group in optimizer.param_groups:
        group["lr"] *= 0.5


def _sign_flip(z: torch.Tensor, objective, optimizer: torch.optim.Optimizer) -> int:
    """Replace z by −z for the items where the objective is lower there; reset their Adam state."""
    with torch.no_grad():
        f_pos, _, _ = objective(z)
        f_neg, _, _ = objective(-z)
        flip = f_neg < f_pos
        if not bool(flip.any()):
            return 0
        z[flip] = -z[flip]
        state = optimizer.state.get(z, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][flip] = 0
        return int(flip.sum())
