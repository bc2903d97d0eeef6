"""A physics-guided network trained on the scan's own measurements: zero-shot self-supervised learning.

ZS-SSL (Yaman, Hosseini & Akçakaya, ICLR 2022) needs no training data. An unrolled network

    x₀ = Aᴴ y,    x_{k+1} = argmin_x ‖A x − y‖² + μ ‖x − R_θ(x_k)‖²    (k < ``unrolls``)

each step solved by ``cg_steps`` conjugate-gradient iterations, with R_θ a small residual CNN
(:class:`~mri_genprior.priors.networks.ResidualCNN`) shared by the steps and μ learned, is
trained on one slice's own k-space:

* The measured samples that undersampling could have missed (``physics.validation_folds``:
  outside the calibration region on Cartesian k-space) are split once, a fraction
  ``holdout`` (Γ) kept for validation.
* Each training step draws a fraction ``rho`` of the rest (Λ) afresh; the network takes the
  other measured samples Θ = Ω \\ Γ \\ Λ as its data and learns to predict Λ, with the loss
  ``‖r‖₂ / ‖y_Λ‖₂ + ‖r‖₁ / ‖y_Λ‖₁`` of the residual r on Λ (Adam, step ``lr``).
* Every ``validate_every`` steps the network with data Ω \\ Γ predicts Γ. The weights with
  the lowest validation loss are kept, and training stops after ``patience`` validations
  without improvement: a stopping rule without ground truth.

The output is the kept network with every measured sample as its data.

*TV layer* (off by default). With ``tv > 0`` each step's regulariser input passes first through the
proximal operator of total variation (:class:`~mri_genprior.priors.networks.TotalVariationProx`,
``tv_iterations`` dual steps, its threshold learned from ``tv``): the untrained network
starts as half-quadratic splitting for a TV-regularised problem, and training on the scan
learns the CNN's correction to it (a learned-prox unrolling in the manner of ADMM-Net,
Yang et al., NeurIPS 2016; here trained on one scan).

*Strips.* With Cartesian SENSE physics and a 1-D mask the problem separates into image rows
in hybrid space (:class:`~mri_genprior.physics.HybridSense`), so each training step takes a
band of ``rows`` consecutive rows at a random offset, at ``rows / H`` of the cost of the whole
image; validation and the output use the whole image. With other physics, or ``rows=0``,
every step takes the whole image.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time

import torch
from torch import nn

from .. import MriGenpriorError
from ..physics import HybridSense, SensePhysics, random_subset
from ..physics.operators import batched_cg
from ..priors.networks import ResidualCNN, TotalVariationProx
from ..progress import iterate
from .base import Method, Result, stopped_by


class UnrolledNetwork(nn.Module):
    """``unrolls`` steps of ``x ← argmin ‖M(A x − y)‖² + μ‖x − R(P(x_prev))‖²`` from ``Aᴴ M y``
    (see the module docstring), P the TV proximal layer with threshold ``tv`` (none for 0);
    ``forward(op, data, mask)`` for any operator ``op`` and a boolean ``mask`` of the samples
    of ``data`` it may use."""

    def __init__(self, unrolls: int, cg_steps: int, channels: int, blocks: int, mu: float, *, tv: float = 0.0,
                 tv_iterations: int = 20):
        super().__init__()
        self.unrolls, self.cg_steps = unrolls, cg_steps
        self.regulariser = ResidualCNN(channels, blocks)
        self.log_mu = nn.Parameter(torch.tensor(math.log(mu)))
        self.prox = TotalVariationProx(tv, tv_iterations) if tv > 0 else nn.Identity()

    def forward(self, op, data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(data.real.dtype)
        aty, mu = op.adjoint(weights * data), self.log_mu.exp()

        def normal(v):
            return op.adjoint(weights * op.forward(v)) + mu * v

        x = aty
        for _ in range(self.unrolls):
            x = batched_cg(normal, aty + mu * self.regulariser(self.prox(x)), x, self.cg_steps)
        return x


def split_loss(op, x: torch.Tensor, data: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ZS-SSL's loss of the prediction ``op(x)`` on the samples of ``data`` in ``mask``:
    normalised ℓ2 plus normalised ℓ1 norm of the residual."""
    weights = mask.to(data.real.dtype)
    residual, reference = weights * (op.forward(x) - data), weights * data
    return residual.norm() / reference.norm() + residual.abs().sum() / reference.abs().sum()


@dataclasses.dataclass
class ZeroShotSSL(Method):
    """A scan-specific unrolled network trained on each slice's own k-space (see the module docstring)."""

    unrolls: int = 5
    cg_steps: int = 6
    channels: int = 32
    blocks: int = 3
    steps: int = 300
    lr: float = 3e-3
    mu: float = 0.05
    rho: float = 0.4
    holdout: float = 0.2
    validate_every: int = 100
    patience: int = 3
    rows: int = 48
    tv: float = 0.0
    tv_iterations: int = 20
    seed: int = 0

    def __post_init__(self):
        for name in ("unrolls", "cg_steps", "channels", "blocks", "steps", "validate_every", "patience",
                     "tv_iterations"):
            if getattr(self, name) < 1:
                raise MriGenpriorError(f"parameter {name}: expected a number >= 1, got {getattr(self, name)}")
        for name in ("rho", "holdout"):
            if not 0 < getattr(self, name) < 1:
                raise MriGenpriorError(f"parameter {name}: expected a fraction between 0 and 1, got "
                                       f"{getattr(self, name)}")
        if self.rows < 0 or not self.lr > 0 or not self.mu > 0 or not self.tv >= 0:
            raise MriGenpriorError(f"parameters rows >= 0, lr > 0, mu > 0 and tv >= 0 expected, got {self.rows}, "
                                   f"{self.lr}, {self.mu}, {self.tv}")

    def problem(self, y: torch.Tensor, physics):
        """``(operator, data, strips)`` of one slice: hybrid space when its rows separate
        (Cartesian SENSE, 1-D mask, ``rows > 0``), else the physics and ``y`` themselves."""
        if (self.rows and isinstance(physics, SensePhysics) and physics.maps is not None and physics.sets == 1
                and physics.one_dimensional):
            return physics.hybrid(), HybridSense.data(y), True
        return physics, y, False

    def network(self, device, seed: int) -> UnrolledNetwork:
        """A fresh network initialised from ``seed`` without touching the caller's RNG."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return UnrolledNetwork(self.unrolls, self.cg_steps, self.channels, self.blocks, self.mu, tv=self.tv,
                                   tv_iterations=self.tv_iterations).to(device)

    def reconstruct(self, y, physics) -> Result:
        images, diagnostics = [], []
        for b in range(y.shape[0]):
            image, record = self.train_and_reconstruct(y[b:b + 1], physics.select([b]), self.seed + b)
            images.append(image)
            diagnostics.append({"method": self.name, **record})
        return Result(torch.cat(images).cpu().numpy(), None, diagnostics)

    def train_and_reconstruct(self, y: torch.Tensor, physics, seed: int):
        """Train a network on one slice's ``y`` ``(1, ...)`` and return its image ``(1, H, W)``
        and a record (steps run, the kept step, validation losses, μ, seconds)."""
        start = time.perf_counter()
        op, data, strips = self.problem(y, physics)
        rng = torch.Generator().manual_seed(seed)

        measured, candidates = y[:, :1] != 0, physics.validation_folds(y, 2, rng).any(0)
        held = random_subset(candidates, self.holdout, rng)
        pool, known = candidates & ~held, measured & ~held
        if not bool(held.any()) or not bool(pool.any()):
            raise MriGenpriorError("zs-ssl: too few measured samples outside the calibration region to split")
        net = self.network(y.device, seed)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
        height = op.ishape[0]
        band = min(self.rows, height) if strips else height
        best, kept, kept_step, losses, step = math.inf, None, 0, [], 0
        for step in iterate(range(1, self.steps + 1), "zs-ssl"):
            target = random_subset(pool, self.rho, rng)
            first = int(torch.randint(0, height - band + 1, (1,), generator=rng)) if strips else 0
            part = op.rows(first, first + band) if strips else op

            def rows(t):
                return t[..., first:first + band, :] if strips else t

            optimizer.zero_grad(set_to_none=True)
            split_loss(part, net(part, rows(data), rows(known & ~target)), rows(data), rows(target)).backward()
            optimizer.step()
            if step % self.validate_every == 0 or step == self.steps:
                with torch.no_grad():
                    losses.append(float(split_loss(op, net(op, data, known), data, held)))
                if losses[-1] < best:
                    best, kept, kept_step = losses[-1], copy.deepcopy(net.state_dict()), step
                elif (step - kept_step) // self.validate_every >= self.patience:
                    break
        net.load_state_dict(kept)
        with torch.no_grad():
            image = net(op, data, measured)
        return image, {"steps": step, "stopped_by": stopped_by(step, self.steps), "kept_step": kept_step, "validation_losses": losses,
                       "mu": float(net.log_mu.detach().exp()), "strips": band if strips else None,
                       "tv": float(net.prox.log_threshold.detach().exp()) if self.tv > 0 else 0.0,
                       "seconds": round(time.perf_counter() - start, 3)}
