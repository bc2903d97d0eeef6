"""The one optimisation loop behind every generative-prior method.

Given a torch operator ``op`` (:class:`~mri_genprior.physics.SenseOp`,
:class:`~mri_genprior.physics.SigpyOperator` around any SigPy Linop, or anything with
``forward``/``adjoint``), measurements ``y`` ``(N, ...)`` and a generator ``G``,
:func:`fit` minimises, independently for each of the N batch items,

    f(z, θ, ν) = ‖A (E(G_θ(z)) + ν) − y‖²_train + λ_z ‖z‖² + λ_ν ‖Ψ ν‖₁

with Adam over the parts that move: z (CSGM, Bora et al. 2017), θ (image-adaptive
priors, untrained decoders), ν (Sparse-Gen, Dhar et al. 2018). E embeds the generator's
image in the solve grid (:func:`embed`). Options:

* ``sign_flip_every=k``: every k steps, items with f(−z) < f(z) jump to −z
  (Hand & Voroninski 2017, Algorithm 1).
* ``holdout=p``: a random fraction p of the measured samples is left out of the fit;
  the iterate with the lowest held-out loss is returned (early stopping that needs no
  ground truth), and the fit stops after ``patience`` steps without improvement.

Numerical safety: when the objective of any item becomes NaN or Inf, every moving part
returns to its last finite iterate, the optimiser state is cleared and all step sizes
are halved (a back-off); after ``max_backoffs`` of them the fit raises
:class:`~mri_genprior.MriGenpriorError`. A fit therefore never returns NaN.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

import torch
from torch import nn

from .. import MriGenpriorError


def to_complex(out: torch.Tensor) -> torch.Tensor:
    """Generator output ``(N, C, h, w)`` -> complex ``(N, h, w)``.

    C = 2: real and imaginary parts. C = 1: a real (magnitude) image; :func:`fit`
    multiplies it by a phase map estimated from the calibration region
    (:func:`calibration_phase`) — the phase model of magnitude-only priors.
    """
    if out.shape[1] == 2:
        return torch.complex(out[:, 0], out[:, 1])
    if out.shape[1] != 1:
        raise ValueError(f"generator output must have 1 or 2 channels, got {out.shape[1]}")
    return out[:, 0].to(torch.complex64)


def embed(image: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """Place ``(N, h, w)`` images at the centre of a ``grid`` = (H, W) field of view.

    Zero-pads where the generator is smaller than the grid and centre-crops where it is
    larger (the same centring as :func:`mri_genprior.physics.crop_or_pad`).
    """
    out = image
    for dim, size in zip((-2, -1), grid):
        n = out.shape[dim]
        if n > size:
            out = out.narrow(dim, (n - size) // 2, size)
        elif n < size:
            before = (size - n) // 2
            pad = [0, 0, 0, 0]
            pad[0 if dim == -1 else 2: (2 if dim == -1 else 4)] = [before, size - n - before]
            out = torch.nn.functional.pad(out, pad)
    return out


def calibration_phase(op, y: torch.Tensor, width: int) -> torch.Tensor:
    """Phase ``(N, H, W)`` of the adjoint of the centre ``width × width`` k-space block."""
    h, w = y.shape[-2:]
    window = torch.zeros(h, w, device=y.device)
    window[h // 2 - width // 2: h // 2 + (width + 1) // 2, w // 2 - width // 2: w // 2 + (width + 1) // 2] = 1
    return torch.angle(op.adjoint(y * window))


@dataclasses.dataclass
class FitOptions:
    """Hyper-parameters of :func:`fit` (see the module docstring)."""

    steps: int = 300
    lr: float = 0.05          # Adam step for z (0: z fixed)
    net_lr: float = 0.0       # Adam step for the generator weights (0: fixed)
    lamda_z: float = 0.0      # weight of ‖z‖²
    sparse_lamda: float = 0.0 # weight of ‖Ψν‖₁ (0: no ν)
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


def _per_item(x: torch.Tensor) -> torch.Tensor:
    return x.abs().pow(2).flatten(1).sum(1)


def holdout_mask(y: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Boolean ``(N, 1, *y.shape[2:])`` mask choosing ``fraction`` of each item's measured samples.

    A sample is measured where the first coil's k-space is non-zero; all coils of a
    k-space location are held out together.
    """
    measured = y[:, :1] != 0
    draw = torch.rand(measured.shape, generator=generator).to(y.device)
    return measured & (draw < fraction)


def fit(op, y: torch.Tensor, generator: nn.Module, z0: torch.Tensor, options: FitOptions,
        grid: Tuple[int, int], phase: Optional[torch.Tensor] = None,
        sparsify: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        rng: Optional[torch.Generator] = None) -> FitResult:
    """Run the generative-prior optimisation for a batch of N independent problems.

    Parameters
    ----------
    op : operator with ``forward`` ``(N, H, W) -> y.shape`` and ``adjoint``.
    y : ``(N, C, ...)`` complex64 measurements.
    generator : maps ``z`` ``(N, ...)`` to ``(N, 1 or 2, h, w)``.
    z0 : initial latents ``(N, ...)``.
    grid : (H, W) solve grid, see :func:`embed`.
    phase : ``(N, H, W)`` phase applied to 1-channel (magnitude) generators.
    sparsify : Ψ for Sparse-Gen, applied to ``ν`` ``(N, H, W)``; returns coefficients.
    rng : CPU generator for the hold-out draw.
    """
    rng = rng or torch.Generator().manual_seed(0)
    z = z0.detach().clone().requires_grad_(options.lr > 0)
    groups = [{"params": [z], "lr": options.lr}] if options.lr > 0 else []
    generator.requires_grad_(options.net_lr > 0)  # a fixed prior gets no weight gradients
    if options.net_lr > 0:
        groups.append({"params": list(generator.parameters()), "lr": options.net_lr})
    nu = None
    if options.sparse_lamda > 0:
        nu = torch.zeros((y.shape[0],) + tuple(grid), dtype=torch.complex64, device=y.device, requires_grad=True)
        groups.append({"params": [nu], "lr": options.lr})
    if options.optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {options.optimizer!r}")
    optimiser = (torch.optim.Adam if options.optimizer == "adam" else torch.optim.SGD)(groups)
    held = holdout_mask(y, options.holdout, rng) if options.holdout > 0 else None
    train_weight = None if held is None else (~held).to(torch.float32)

    def image_of(latent: torch.Tensor) -> torch.Tensor:
        out = generator(latent)
        x = embed(to_complex(out), grid)
        if phase is not None and out.shape[1] == 1:
            x = x * torch.exp(1j * phase)
        return x + nu if nu is not None else x

    def objective(latent: torch.Tensor):
        x = image_of(latent)
        residual = op.forward(x) - y
        fit_term = _per_item(residual if train_weight is None else residual * train_weight)
        total = fit_term + options.lamda_z * _per_item(latent)
        if nu is not None:
            total = total + options.sparse_lamda * sparsify(nu).abs().flatten(1).sum(1)
        return total, x, residual

    moving = [p for group in groups for p in group["params"]]
    last_good = [p.detach().clone() for p in moving]
    best_images, best_val = None, torch.full((y.shape[0],), float("inf"), device=y.device)
    since_best, flips, step, backoffs = 0, 0, 0, 0
    for step in range(1, options.steps + 1):
        optimiser.zero_grad(set_to_none=True)
        total, x, residual = objective(z)
        if not bool(torch.isfinite(total).all()):
            backoffs += 1
            if backoffs > options.max_backoffs:
                raise MriGenpriorError(f"the fit diverged (NaN/Inf) {backoffs} times; lower the step size")
            _back_off(moving, last_good, optimiser)
            continue
        with torch.no_grad():
            for good, p in zip(last_good, moving):
                good.copy_(p)
        total.sum().backward()
        optimiser.step()
        if options.sign_flip_every and step % options.sign_flip_every == 0:
            flips += _sign_flip(z, objective, optimiser)
        if held is not None:
            with torch.no_grad():
                val = _per_item(residual * held)
                improved = val < best_val
                best_val = torch.where(improved, val, best_val)
                best_images = x.detach().clone() if best_images is None else torch.where(
                    improved[:, None, None], x.detach(), best_images)
                since_best = 0 if bool(improved.any()) else since_best + 1
            if since_best >= options.patience:
                break
    with torch.no_grad():
        if best_images is None:
            _, images, residual = objective(z)
        else:
            images = best_images
            residual = op.forward(images) - y
        data_loss = _per_item(residual)
    if not bool(torch.isfinite(images).all()):  # the last step diverged: use the last finite iterate
        _back_off(moving, last_good, optimiser)
        with torch.no_grad():
            _, images, residual = objective(z)
            data_loss = _per_item(residual)
        backoffs += 1
    return FitResult(images.detach(), z.detach(), data_loss.detach(),
                     best_val if held is not None else torch.full_like(data_loss, float("nan")), step, flips,
                     backoffs)


def _back_off(moving, last_good, optimiser: torch.optim.Optimizer) -> None:
    """Restore the last finite iterate, clear the optimiser state and halve every step size."""
    with torch.no_grad():
        for good, p in zip(last_good, moving):
            p.copy_(good)
    optimiser.state.clear()
    for group in optimiser.param_groups:
        group["lr"] *= 0.5


def _sign_flip(z: torch.Tensor, objective, optimiser: torch.optim.Optimizer) -> int:
    """Replace z by −z for the items where the objective is lower there; reset their Adam state."""
    with torch.no_grad():
        f_pos, _, _ = objective(z)
        f_neg, _, _ = objective(-z)
        flip = f_neg < f_pos
        if not bool(flip.any()):
            return 0
        z[flip] = -z[flip]
        state = optimiser.state.get(z, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][flip] = 0
        return int(flip.sum())
