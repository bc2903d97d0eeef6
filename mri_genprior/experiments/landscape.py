"""Hand & Voroninski's empirical-risk landscape, measured with the package's own solver.

For an expansive random ReLU generator ``G`` (:class:`~mri_genprior.priors.networks.ExpansiveReLU`)
and a Gaussian matrix ``A`` (m × n, entries N(0, 1/m)), :func:`recover` runs
:func:`mri_genprior.solvers.latent.fit` on ``f(z) = ‖A G(z) − A G(z₀)‖²`` (or, for phase
retrieval, ``‖|A G(z)| − |A G(z₀)|‖²``) from many random starts at once, with plain
gradient descent or with the sign-flip rule, and classifies where each trial ends.
Theory: the only other basin is near ``−ρ_d z₀`` (:func:`rho`), with ``ρ_1 = 0`` (one
layer: a single basin).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
import torch

from ..physics.operators import Operator, residual_misfit
from ..priors.networks import ExpansiveReLU
from ..solvers.latent import FitOptions, fit


def rho(depth: int) -> float:
    """Hand & Voroninski's ρ_d = Σ_{i<d} (sin θ̌_i / π) Π_{i<j<d} (π − θ̌_j)/π with θ̌_0 = π and
    θ̌_{i+1} = arccos(((π − θ̌_i) cos θ̌_i + sin θ̌_i) / π)."""
    thetas = [math.pi]
    for _ in range(depth - 1):
        t = thetas[-1]
        thetas.append(math.acos(((math.pi - t) * math.cos(t) + math.sin(t)) / math.pi))
    total = 0.0
    for i in range(depth):
        tail = math.prod((math.pi - thetas[j]) / math.pi for j in range(i + 1, depth))
        total += math.sin(thetas[i]) / math.pi * tail
    return total


class GaussianMeasurements(Operator):
    """``y = A x`` for images ``x`` ``(N, 1, n)`` with a real Gaussian ``A`` (m × n, entries N(0, 1/m)).

    ``forward`` maps ``(N, 1, n)`` complex tensors to ``(N, m)``, applying ``A`` to the
    real and imaginary parts alike; ``adjoint`` applies ``Aᵀ``.
    """

    def __init__(self, m: int, n: int, rng: torch.Generator):
        self.a = torch.randn(m, n, generator=rng) / math.sqrt(m)
        self.ishape, self.oshape = (1, n), (m,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.complex(x.real.flatten(1) @ self.a.T, x.imag.flatten(1) @ self.a.T)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return torch.complex(y.real @ self.a, y.imag @ self.a).view(-1, *self.ishape)


class Magnitude:
    """The phase-retrieval measurement model ``|A x|`` of a linear operator (not linear itself)."""

    def __init__(self, operator: Operator):
        self.operator = operator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.operator.forward(x).abs().to(torch.complex64)

    __call__ = forward

    def misfit(self, y: torch.Tensor, held: Optional[torch.Tensor] = None):
        """The misfit ``‖|A x| − y‖²`` (see :meth:`mri_genprior.physics.Operator.misfit`)."""
        return residual_misfit(self.forward, y, held)


def risk_along_ray(dims: Sequence[int], m: int, ts: Sequence[float], seed: int = 0) -> np.ndarray:
    """The empirical risk ``‖A G(t·z₀) − A G(z₀)‖²`` at each ``t`` for one random draw of
    ``G`` (seed ``seed``), ``A`` (m × n) and ``z₀`` — the line through both basins."""
    g = torch.Generator().manual_seed(seed)
    net = ExpansiveReLU(dims, seed=seed)
    op = GaussianMeasurements(m, dims[-1], g)
    z0 = torch.randn(1, dims[0], generator=g)
    with torch.no_grad():
        y = op.forward(net(z0).to(torch.complex64))
        return np.array([float((op.forward(net(t * z0).to(torch.complex64)) - y).abs().pow(2).sum()) for t in ts])


@dataclasses.dataclass
class Outcome:
    """Per-trial results: relative latent error, cosine to z₀, ‖ẑ‖/‖z₀‖, ‖x̂‖/‖x₀‖."""

    latent_error: torch.Tensor
    cosine: torch.Tensor
    latent_ratio: torch.Tensor
    image_ratio: torch.Tensor

    def success(self, tol: float = 0.05) -> torch.Tensor:
        return self.latent_error < tol

    def negative(self) -> torch.Tensor:
        """Trials that ended in the mirrored basin (pointing away from z₀)."""
        return self.cosine < -0.9


def recover(dims: Sequence[int], m: int, trials: int, sign_flip: bool, seed: int = 0, steps: int = 1000,
            magnitude: bool = False, start_near_negative: bool = False) -> Outcome:
    """Recover one random ``z₀`` from ``trials`` random starts ``z ~ N(0, I)`` (or, with
    ``start_near_negative``, ``z = −z₀ + 0.3·N(0, I)``).

    Gradient descent (``optimizer="sgd"``) with step ``lr = 2^d / 4`` (the gradient of
    a d-layer ReLU net scales as 2^-d); ``sign_flip`` applies H&V's rule every 10 steps.
    """
    g = torch.Generator().manual_seed(seed)
    depth = len(dims) - 1
    net = ExpansiveReLU(dims, seed=seed, image_shape=(1, dims[-1])).requires_grad_(False)
    op = GaussianMeasurements(m, dims[-1], g)
    op = Magnitude(op) if magnitude else op
    z0 = torch.randn(1, dims[0], generator=g)
    with torch.no_grad():
        x0 = net(z0)[:, 0].to(torch.complex64)
        y = op.forward(x0).repeat(trials, 1)
    starts = torch.randn(trials, dims[0], generator=g)
    if start_near_negative:
        starts = -z0 + 0.3 * starts
    options = FitOptions(steps=steps, lr=2 ** depth / 4, optimizer="sgd", sign_flip_every=10 if sign_flip else 0)
    result = fit(op, y, net, starts, options, (1, dims[-1]))
    z, x = result.z, result.images
    norm0 = z0.norm()
    return Outcome(latent_error=(z - z0).norm(dim=1) / norm0,
                   cosine=(z @ z0[0]) / (z.norm(dim=1) * norm0),
                   latent_ratio=z.norm(dim=1) / norm0,
                   image_ratio=x.abs().flatten(1).norm(dim=1) / x0.abs().flatten(1).norm())
