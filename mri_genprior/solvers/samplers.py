"""Posterior samplers for ``y = A x + n`` with a score (denoiser) prior.

Every sampler takes

* ``denoise(x, σ)``: the prior's denoiser on complex ``(N, H, W)`` images at noise std σ
  per real component (:func:`mri_genprior.priors.denoiser.complex_denoiser`), so the
  prior score is ``(D(x; σ) − x) / σ²`` (Tweedie);
* ``op``: any :class:`~mri_genprior.physics.operators.Operator` (forward and adjoint on
  batches of N), e.g. SENSE or a SigPy ``Linop`` bridge;
* ``y``: ``(N, *op.oshape)`` measurements with complex Gaussian noise of std ``gamma``
  ``(N,)`` per real component;
* ``sigmas``: decreasing noise levels (:func:`~mri_genprior.priors.denoiser.karras_sigmas`);
* ``rng``: a CPU ``torch.Generator``, or one per item (N of them); every draw comes from
  it, so a seed fixes the samples. With one per item, each sample depends only on its own
  generator, its measurements and its operator: not on the batch it is drawn in.

and returns N samples ``(N, H, W)``. N is slices × posterior samples: one batched call.

Samplers
--------
``langevin``  Annealed Langevin dynamics (Song & Ermon 2019) with the likelihood gradient
    ``Aᴴ(y − A x) / (γ² + σ_i²)`` (Jalal et al., NeurIPS 2021). ``steps_per_level``
    steps at each level with step ``α_i = step / (1/σ_i² + ‖A‖² / (γ² + σ_i²))``, the
    inverse of the curvature bound of the annealed log-posterior. NFE = levels × steps.
``dps``       Diffusion posterior sampling (Chung et al., ICLR 2023): the ancestral (DDPM)
    step of the prior (:func:`~mri_genprior.priors.denoiser.ddim_step`, η = 1), then ``x −= ζ ∇ₓ‖y − A x̂₀(x)‖²/‖y − A x̂₀‖``
    through the network (a backward pass per level). NFE = levels.
``dds``       Decomposed diffusion sampling (Chung, Lee & Ye, ICLR 2024) / DiffPIR (Zhu
    et al., CVPR 2023): the Tweedie estimate ``x̂₀`` is made data-consistent by
    ``cg_steps`` conjugate-gradient steps on ``(AᴴA + μ_i I) x = Aᴴy + μ_i x̂₀`` with
    ``μ_i = γ² / r_i²``, ``r_i² = σ_i² σ_d² / (σ_i² + σ_d²)`` (the Gaussian posterior of x₀
    given x and y when x₀ | x has the variance r_i² of a prior of std σ_d), then the DDIM step from that posterior estimate (its noise estimate
    ``ε̂ = (x − x̂₀)/σ_i`` included; :func:`~mri_genprior.priors.denoiser.ddim_step`, η = 1
    the ancestral step). No backward pass; NFE = levels.
``annealed``  Jalal et al.'s own sampler (csgm-mri-langevin): from ``U[0, 1)`` noise per real
    component, ``steps_per_level`` steps ``x ← x + α_i (s − g) + √(2α_i) z`` at each level with
    ``α_i = step_lr (σ_i / σ_last)²``, ``s`` the prior score and ``g = Aᴴ(A x − y)`` rescaled
    to ``‖g‖ = mse ‖s‖`` (per sample); no final denoising. NFE = levels × steps.
``pc``        Chung & Ye's predictor-corrector for the VE-SDE (score-MRI): at each level a
    Langevin corrector step (``ε = 2 (snr ‖z‖ / ‖s‖)²``), data consistency, the
    reverse-diffusion predictor ``x ← x + (σ_i² − σ_{i+1}²) s + √(σ_i² − σ_{i+1}²) z``
    (``σ_{last+1} = 0``), data consistency; returns the last predictor mean. Data
    consistency adds ``cg_steps`` CG steps on ``AᴴA δ = Aᴴ(y − A x)`` from δ = 0 (the
    published single-coil projection onto the measured samples, for any operator). NFE =
    levels × (corrector_steps + 1).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..physics.operators import Operator, batched_cg, complex_randn, norms
from ..priors.denoiser import ddim_step
from ..progress import iterate

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def _col(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None]


def langevin(denoise: Denoiser, op: Operator, y: torch.Tensor, sigmas: Sequence[float], gamma: torch.Tensor,
             rng: torch.Generator, steps_per_level: int = 3, step: float = 0.5) -> torch.Tensor:
    """Annealed Langevin posterior samples (see the module docstring)."""
    shape = (y.shape[0],) + tuple(op.ishape)
    lipschitz = _col(op.norm_sq(y.shape[0], rng))
    x = sigmas[0] * complex_randn(shape, rng, y.device)
    g2 = _col(gamma.to(y.device) ** 2)
    for sigma in iterate(sigmas, "langevin", unit="level"):
        alpha = step / (1 / sigma ** 2 + lipschitz / (g2 + sigma ** 2))
        for _ in range(steps_per_level):
            grad = (denoise(x, sigma) - x) / sigma ** 2 + op.adjoint(y - op.forward(x)) / (g2 + sigma ** 2)
            x = x + alpha * grad + (2 * alpha).sqrt() * complex_randn(shape, rng, y.device)
    return x


def dps(denoise: Denoiser, op: Operator, y: torch.Tensor, sigmas: Sequence[float], rng: torch.Generator,
        zeta: float = 1.0) -> torch.Tensor:
    """Diffusion posterior sampling (see the module docstring)."""
    shape = (y.shape[0],) + tuple(op.ishape)

    def tweedie(x, sigma):
        """``x̂₀ = D(x; σ)``, ``‖y − A x̂₀‖`` per sample and the gradient of its square in ``x``."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            x0 = denoise(x, sigma)
            residual = norms(y - op.forward(x0))
            grad, = torch.autograd.grad((residual ** 2).sum(), x)
        return x0.detach(), residual.detach(), grad

    x = sigmas[0] * complex_randn(shape, rng, y.device)
    for sigma, sigma_next in iterate(list(zip(sigmas, sigmas[1:])), "dps", unit="level"):
        x0, residual, grad = tweedie(x, sigma)
        x = ddim_step(x.detach(), x0, sigma, sigma_next, 1.0, rng) - zeta * grad / _col(residual.clamp_min(1e-30))
    return tweedie(x, sigmas[-1])[0]


def dds(denoise: Denoiser, op: Operator, y: torch.Tensor, sigmas: Sequence[float], gamma: torch.Tensor,
        rng: torch.Generator, cg_steps: int = 5, eta: float = 1.0, sigma_data: float = 0.5) -> torch.Tensor:
    """Decomposed diffusion sampling with exact data consistency by CG (see the module docstring)."""
    shape = (y.shape[0],) + tuple(op.ishape)
    x = sigmas[0] * complex_randn(shape, rng, y.device)
    g2, aty = _col(gamma.to(y.device) ** 2), op.adjoint(y)

    def consistent(x, sigma):
        """The Tweedie estimate ``D(x; σ)`` after ``cg_steps`` CG steps toward the data."""
        denoised = denoise(x, sigma)
        mu = g2 * (1 / sigma ** 2 + 1 / sigma_data ** 2)
        return batched_cg(lambda v: op.adjoint(op.forward(v)) + mu * v, aty + mu * denoised, denoised, cg_steps)

    for sigma, sigma_next in iterate(list(zip(sigmas, sigmas[1:])), "dds", unit="level"):
        x = ddim_step(x, consistent(x, sigma), sigma, sigma_next, eta, rng)
    return consistent(x, sigmas[-1])


def _uniform(shape: Sequence[int], rng, device) -> torch.Tensor:
    """Complex ``(N, H, W)`` with ``U[0, 1)`` real and imaginary parts, from one generator or one per item."""
    if not isinstance(rng, torch.Generator):
        return torch.stack([_uniform(shape[1:], g, device) for g in rng])
    real = torch.rand((2,) + tuple(shape), generator=rng)
    return torch.complex(real[0], real[1]).to(device)


def annealed(denoise: Denoiser, op: Operator, y: torch.Tensor, sigmas: Sequence[float], rng: torch.Generator,
             steps_per_level: int = 3, step_lr: float = 5e-5, mse: float = 5.0) -> torch.Tensor:
    """Jalal et al.'s annealed Langevin sampler (see the module docstring)."""
    shape = (y.shape[0],) + tuple(op.ishape)
    x = _uniform(shape, rng, y.device)
    for sigma in iterate(sigmas, "annealed", unit="level"):
        alpha = step_lr * (sigma / sigmas[-1]) ** 2
        for _ in range(steps_per_level):
            score = (denoise(x, sigma) - x) / sigma ** 2
            grad = op.adjoint(op.forward(x) - y)
            grad = grad * _col(mse * norms(score) / norms(grad).clamp_min(1e-30))
            x = x + alpha * (score - grad) + (2 * alpha) ** 0.5 * complex_randn(shape, rng, y.device)
    return x


def pc(denoise: Denoiser, op: Operator, y: torch.Tensor, sigmas: Sequence[float], rng: torch.Generator,
       snr: float = 0.16, corrector_steps: int = 1, cg_steps: int = 5) -> torch.Tensor:
    """Chung & Ye's predictor-corrector sampler (see the module docstring)."""
    shape = (y.shape[0],) + tuple(op.ishape)

    def consistent(x):
        step = batched_cg(lambda v: op.adjoint(op.forward(v)), op.adjoint(y - op.forward(x)), torch.zeros_like(x),
                          cg_steps)
        return x + step

    x = mean = consistent(sigmas[0] * complex_randn(shape, rng, y.device))
    for sigma, sigma_next in iterate(list(zip(sigmas, list(sigmas[1:]) + [0.0])), "pc", unit="level"):
        for _ in range(corrector_steps):
            score, z = (denoise(x, sigma) - x) / sigma ** 2, complex_randn(shape, rng, y.device)
            eps = 2 * (snr * norms(z) / norms(score).clamp_min(1e-30)) ** 2
            x = x + _col(eps) * score + _col((2 * eps).sqrt()) * z
        x = consistent(x)
        drop = sigma ** 2 - sigma_next ** 2
        mean = consistent(x + drop * (denoise(x, sigma) - x) / sigma ** 2)
        x = consistent(mean + drop ** 0.5 * complex_randn(shape, rng, y.device))
    return mean


