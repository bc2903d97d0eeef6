"""Generative-prior reconstructors (all run :func:`mri_genprior.solvers.latent.fit`).

=================  ===========================================  =====================
method             objective / what moves                       reference
=================  ===========================================  =====================
``csgm``           min_z ‖A G(z) − y‖² + λ‖z‖², R restarts,     Bora et al. 2017
                   keep the lowest measurement loss
``sign-flip``      csgm + jump to −z when f(−z) < f(z)          Hand & Voroninski 2017
``image-adaptive`` csgm, then z and θ jointly, small steps,     Hussein et al. 2020
                   early-stopped on held-out k-space
``sparse-gen``     x = G(z) + ν, + λ_ν ‖Ψν‖₁ (Daubechies-4)    Dhar et al. 2018
``deep-decoder``   untrained decoder, θ moves, fixed input,    Heckel & Hand 2019
                   early-stopped on held-out k-space
``convdecoder``    the same with 3×3 convolutions               Darestani & Heckel 2021
``dip``            encoder-decoder with skips from fixed noise  Ulyanov et al. 2018
=================  ===========================================  =====================

Slices and restarts of latent-only methods are solved as one batch; methods that
move network weights solve one slice at a time (each slice needs its own weights).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Tuple

import numpy as np
import torch

from .. import MriGenpriorError, masks
from ..physics import SenseOp, SigpyOperator
from ..priors import load_checkpoint
from ..priors.networks import DeepDecoder, SkipNet
from .base import Reconstructor
from .latent import FitOptions, FitResult, calibration_phase, fit


@functools.lru_cache(maxsize=4)
def _cached_prior(path: str, device: str):
    return load_checkpoint(path, device)


def _tensors(y, mps, weights, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(y, device=device), torch.as_tensor(mps, device=device),
            torch.as_tensor(weights, device=device))


def _data_consistency(op: SenseOp, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Restore the measured samples: ``x + Aᴴ(y − A x)`` (exact for maps with Σ|S|² = 1)."""
    return x + op.adjoint(y - op.forward(x))


@dataclasses.dataclass
class CSGM(Reconstructor):
    """Latent-space reconstruction with a trained generator checkpoint ``prior``."""

    name = "csgm"
    prior: str = ""
    steps: int = 300
    lr: float = 0.05
    lamda_z: float = 0.001
    restarts: int = 4
    sign_flip_every: int = 0
    data_consistency: bool = False
    std_map: bool = False     # also return the per-pixel std of |x| over the good restarts
    good_restart_ratio: float = 1.5  # a restart is "good" if its loss <= ratio × the best loss
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not self.prior:
            raise MriGenpriorError(f"method {self.name} needs a generator checkpoint: --prior CKPT")

    def _generator(self, device):
        return _cached_prior(str(self.prior), str(device))

    def _latent_stage(self, op: SenseOp, y: torch.Tensor, generator, config, rng) -> Tuple[FitResult, object]:
        z0 = torch.randn((y.shape[0], generator.latent_dim), generator=rng).to(y.device)
        phase = None
        if config.get("channels") == 1:
            phase = calibration_phase(op, y, max(4, masks.calibration_width(op.sqrt_weights[0, 0].cpu().numpy())))
        options = FitOptions(steps=self.steps, lr=self.lr, lamda_z=self.lamda_z,
                             sign_flip_every=self.sign_flip_every, sparse_lamda=self._sparse_lamda())
        result = fit(op, y, generator, z0, options, op.image_shape, phase=phase,
                     sparsify=self._sparsify(op), rng=rng)
        return result, phase

    def reconstruct(self, y, mps, weights, device):
        generator, config = self._generator(device)
        rng = torch.Generator().manual_seed(self.seed)
        yt, mt, wt = _tensors(y, mps, weights, device)
        r = self.restarts
        op = SenseOp(mt.repeat_interleave(r, 0), wt.repeat_interleave(r, 0))
        result, phase = self._latent_stage(op, yt.repeat_interleave(r, 0), generator, config, rng)
        losses = result.data_loss.view(-1, r)
        best = losses.argmin(1)
        pick = torch.arange(len(best), device=best.device) * r + best
        images = result.images[pick]
        images = self._refine(images, result.z[pick], phase[pick] if phase is not None else None,
                              yt, mt, wt, generator, config, rng)
        if self.data_consistency:
            images = _data_consistency(SenseOp(mt, wt), images, yt)
        self.uncertainty = self._restart_std(result.images, losses) if self.std_map else None
        self.diagnostics = [
            {"method": self.name, "restart": int(best[b]), "restart_losses": [float(v) for v in losses[b]],
             "final_loss": float(losses[b, best[b]]), "steps": result.steps, "sign_flips": result.flips,
             "backoffs": result.backoffs}
            for b in range(len(best))
        ]
        return images.cpu().numpy()

    def _restart_std(self, images: torch.Tensor, losses: torch.Tensor) -> np.ndarray:
        """Per-pixel std of |x| over the restarts with loss <= good_restart_ratio × best: ``(B, H, W)``."""
        mags = images.abs().view(losses.shape + images.shape[-2:])
        good = (losses <= self.good_restart_ratio * losses.min(1, keepdim=True).values).to(mags.dtype)
        count = good.sum(1)[:, None, None]
        mean = (mags * good[..., None, None]).sum(1) / count
        var = ((mags - mean[:, None]) ** 2 * good[..., None, None]).sum(1) / count
        return var.sqrt().cpu().numpy()

    def _sparse_lamda(self) -> float:
        return 0.0

    def _sparsify(self, op):
        return None

    def _refine(self, images, z, phase, y, mps, weights, generator, config, rng):
        return images


@dataclasses.dataclass
class SignFlip(CSGM):
    """CSGM with Hand & Voroninski's negation check every ``sign_flip_every`` steps."""

    name = "sign-flip"
    sign_flip_every: int = 10


@dataclasses.dataclass
class SparseGen(CSGM):
    """x = G(z) + ν with an ℓ1 penalty on the Daubechies-4 wavelet coefficients of ν."""

    name = "sparse-gen"
    sparse_lamda: float = 0.01

    def _sparse_lamda(self) -> float:
        return self.sparse_lamda

    def _sparsify(self, op):
        import sigpy as sp

        return SigpyOperator(sp.linop.Wavelet(op.image_shape, wave_name="db4")).forward


@dataclasses.dataclass
class ImageAdaptive(CSGM):
    """CSGM, then joint fine-tuning of z and the generator weights per slice (IAGAN).

    The adaptation stage runs ``adapt_steps`` Adam steps (weights at ``adapt_lr``, z at
    ``lr / 10``) and keeps the iterate with the lowest loss on ``holdout`` of the
    measured samples.
    """

    name = "image-adaptive"
    adapt_steps: int = 200
    adapt_lr: float = 1e-4
    holdout: float = 0.05
    patience: int = 50

    def _refine(self, images, z, phase, y, mps, weights, generator, config, rng):
        out = []
        options = FitOptions(steps=self.adapt_steps, lr=self.lr / 10, net_lr=self.adapt_lr, lamda_z=self.lamda_z,
                             holdout=self.holdout, patience=self.patience)
        for b in range(y.shape[0]):
            net = copy.deepcopy(generator).train()
            op = SenseOp(mps[b:b + 1], weights[b:b + 1])
            result = fit(op, y[b:b + 1], net, z[b:b + 1], options, op.image_shape,
                         phase=None if phase is None else phase[b:b + 1], rng=rng)
            out.append(result.images)
        return torch.cat(out)


@dataclasses.dataclass
class UntrainedDecoder(Reconstructor):
    """Deep decoder: an untrained network fitted to one slice from a fixed random input.

    Early stopping keeps the iterate with the lowest loss on ``holdout`` of the
    measured k-space samples (no ground truth needed); the measured samples are then
    restored (``data_consistency``, as in Darestani & Heckel 2021).
    """

    name = "deep-decoder"
    channels: int = 64
    layers: int = 4
    kernel_size: int = 1
    steps: int = 1000
    lr: float = 0.005
    holdout: float = 0.05
    patience: int = 200
    data_consistency: bool = True
    seed: int = 0

    def reconstruct(self, y, mps, weights, device):
        yt, mt, wt = _tensors(y, mps, weights, device)
        options = FitOptions(steps=self.steps, lr=0.0, net_lr=self.lr, holdout=self.holdout, patience=self.patience)
        images, self.diagnostics = [], []
        for b in range(yt.shape[0]):
            rng = torch.Generator().manual_seed(self.seed + b)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed + b)  # weight initialisation, without touching the caller's RNG
                net = self._network(tuple(yt.shape[-2:])).to(device)
            op = SenseOp(mt[b:b + 1], wt[b:b + 1])
            result = fit(op, yt[b:b + 1], net, net.fixed_input(rng).to(device), options, op.image_shape, rng=rng)
            x = result.images
            if self.data_consistency:
                x = _data_consistency(op, x, yt[b:b + 1])
            images.append(x)
            self.diagnostics.append({"method": self.name, "steps": result.steps, "backoffs": result.backoffs,
                                     "final_loss": float(result.data_loss[0]),
                                     "holdout_loss": float(result.holdout_loss[0])})
        return torch.cat(images).cpu().numpy()

    def _network(self, grid: Tuple[int, int]) -> torch.nn.Module:
        return DeepDecoder(grid, self.channels, self.layers, self.kernel_size)


@dataclasses.dataclass
class ConvDecoder(UntrainedDecoder):
    """ConvDecoder: the untrained decoder with 3×3 convolutions."""

    name = "convdecoder"
    channels: int = 32
    kernel_size: int = 3


@dataclasses.dataclass
class DeepImagePrior(UntrainedDecoder):
    """Deep Image Prior: an untrained encoder-decoder with skips (``SkipNet``) fitted from
    fixed noise, with the same hold-out early stopping and data consistency.
    ``layers`` is the number of down/up levels."""

    name = "dip"
    channels: int = 32
    layers: int = 3
    kernel_size: int = 3
    lr: float = 0.01

    def _network(self, grid: Tuple[int, int]) -> torch.nn.Module:
        return SkipNet(grid, self.channels, self.layers, kernel_size=self.kernel_size)
