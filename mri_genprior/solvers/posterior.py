"""Posterior sampling with a score (denoiser) prior: ``langevin``, ``dps``, ``dds``, ``annealed``, ``pc``.

``PosteriorSampling`` draws ``samples`` posterior samples per slice with one sampler of
:mod:`.samplers` (one subclass each, with its own settings), all slices × samples in one
batch, and returns

* ``images``: the posterior mean (complex; the pipeline applies the physics' output
  convention to it, as for every method),
* ``std``: the per-pixel standard deviation over the samples of their outputs under the
  same convention (for SENSE: the RSS of the data-consistent coil images),

so the file's ``reconstruction`` is the posterior mean and ``reconstruction_std`` the
spread of the samples. The prior is a checkpoint of ``mri-genprior train --model score``
(:mod:`mri_genprior.priors.denoiser`) or a published MRI score checkpoint
(:mod:`mri_genprior.priors.published`: Jalal et al.'s NCSNv2, Chung & Ye's NCSN++); it
runs on the whole image grid (fully convolutional). Each prior sees the images in its own
units (:data:`INPUT_SCALES`, by its config's ``normalisation``): the measurements are
divided by that scale per slice before sampling and the samples multiplied back. The
k-space noise std γ is estimated from the data
(:meth:`~mri_genprior.physics.Physics.noise_std`) unless ``noise`` is given, in the units
of the scaled k-space.

Draws are reproducible per slice: sample j of a slice comes from a generator seeded by
``seed``, j and a digest of the slice's measurements (:func:`draw_seed`), so a slice gets
the same draws whatever batch it is solved in (``--batch-size``) and wherever it sits
in the volume.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import Union

import numpy as np
import torch

from .. import MriGenpriorError, check_choice
from ..physics.operators import per_item
from ..priors import SCORE_ARCHITECTURES
from ..priors.denoiser import complex_denoiser, geometric_sigmas, karras_sigmas
from .base import Method, Result, number_or_auto
from .samplers import annealed, dds, dps, langevin, pc
from .trained import cached_prior


SCHEDULES = {"karras": karras_sigmas, "geometric": geometric_sigmas}


def draw_seed(seed: int, measurements: bytes, sample: int) -> int:
    """A 63-bit seed from ``seed``, the sample index and the bytes of one slice's measurements."""
    digest = hashlib.blake2b(measurements, digest_size=8, key=f"{seed}:{sample}".encode()).digest()
    return int.from_bytes(digest, "little") >> 1


def mvue_magnitude(physics, y: torch.Tensor) -> torch.Tensor:
    """``|Sᴴ F⁻¹ y| / √(Σ_c |S_c|²)`` ``(B, H, W)`` (zero where no coil sees): the magnitude of
    the minimum-variance unbiased estimate from the measured samples; ``|Aᴴ y|`` for a
    physics without maps."""
    image = physics.adjoint(y).abs()
    maps = getattr(physics, "maps", None)
    if maps is None:
        return image
    norm = maps.abs().pow(2).sum(1).sqrt()
    return torch.where(norm > 0, image / norm.clamp_min(1e-12), 0.0)


INPUT_SCALES = {
    "p99": None,  # this package's priors: the pipeline's own slice scale (99th percentile of the zero-filled RSS)
    "p99-mvue": lambda m: torch.quantile(m.flatten(1), 0.99, dim=1),  # Jalal et al. 2021
    "max-mvue": lambda m: m.flatten(1).amax(1),  # Chung & Ye 2022: magnitudes in [0, 1]
}


def input_scale(normalisation: str, physics, y: torch.Tensor) -> torch.Tensor:
    """Per-slice factor ``(B,)`` that puts measurements ``y`` into a prior's units (:data:`INPUT_SCALES`)."""
    if normalisation not in INPUT_SCALES:
        raise MriGenpriorError(f"score prior normalisation {normalisation!r} unknown; known: {', '.join(INPUT_SCALES)}")
    rule = INPUT_SCALES[normalisation]
    if rule is None:
        return torch.ones(y.shape[0], device=y.device)
    return rule(mvue_magnitude(physics, y)).clamp_min(torch.finfo(torch.float32).tiny)


def score_prior(path: str, device):
    """``(network, config)`` of the frozen score checkpoint ``path``; any other kind of checkpoint is an error."""
    network, config = cached_prior(str(path), str(device))
    if config.get("architecture") not in SCORE_ARCHITECTURES:
        raise MriGenpriorError(f"{path} is a {config.get('architecture')!r} generator, not a score prior "
                               "(train one with: mri-genprior train --model score)")
    return network, config


@dataclasses.dataclass
class PosteriorSampling(Method):
    """Posterior samples of a score prior (see the module docstring); one subclass per sampler
    of :mod:`.samplers`, with that sampler's own settings, implements :meth:`draw`."""

    takes_prior = True
    per_level = 1               # network evaluations per noise level
    prior: str = ""
    samples: int = 4            # posterior samples per slice (mean and std over them)
    levels: int = 50            # noise levels
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    noise: Union[float, str] = "auto"  # k-space noise std per real component (scaled units), or auto
    schedule: str = "karras"    # noise levels: karras (ρ = 7) or geometric (the published NCSN schedules)
    seed: int = 0

    def __post_init__(self):
        if not self.prior:
            raise MriGenpriorError("needs a score prior checkpoint: --prior CKPT (mri-genprior train --model score)")
        check_choice("parameter schedule", self.schedule, SCHEDULES)
        if self.samples < 1 or self.levels < 1:
            raise MriGenpriorError(f"needs samples >= 1 and levels >= 1, got {self.samples} and {self.levels}")
        self.noise = number_or_auto("noise", self.noise)

    @property
    def nfe(self) -> int:
        """Network evaluations per sample."""
        return self.levels * self.per_level

    @abc.abstractmethod
    def draw(self, denoise, op, y: torch.Tensor, sigmas, gamma: torch.Tensor, rng) -> torch.Tensor:
        """Samples ``(N, H, W)`` for the measurements ``y`` ``(N, ...)`` of ``op`` with noise std
        ``gamma`` ``(N,)``, at noise levels ``sigmas``, from the generators ``rng``."""

    def reconstruct(self, y, physics) -> Result:
        network, config = score_prior(self.prior, physics.device)
        denoise = complex_denoiser(network)
        b, k = y.shape[0], self.samples
        normalisation = config.get("normalisation", "p99")
        scale = input_scale(normalisation, physics, y)
        scaled = y / per_item(scale, y)
        gamma = (physics.noise_std(y) if self.noise == "auto"
                 else torch.full((b,), self.noise, device=y.device)) / scale
        index = torch.arange(b, device=y.device).repeat_interleave(k)
        replicas = physics.select(index.tolist())
        sigmas = SCHEDULES[self.schedule](self.levels, self.sigma_max, self.sigma_min)
        slices = [item.tobytes() for item in y.detach().cpu().numpy()]  # one copy to the host per batch
        rng = [torch.Generator().manual_seed(draw_seed(self.seed, data, j)) for data in slices for j in range(k)]
        with torch.no_grad():
            draws = self.draw(denoise, replicas, scaled[index], sigmas, gamma[index], rng)
        draws = draws * per_item(scale[index], draws)
        shape = (b, k) + tuple(draws.shape[1:])
        mean = draws.view(shape).mean(1)
        outputs = replicas.output(draws.cpu().numpy(), y[index])
        outputs = outputs.reshape((b, k) + outputs.shape[1:])
        std = outputs.std(1, ddof=1) if k > 1 else np.zeros_like(outputs[:, 0])
        diagnostics = [{"method": self.name, "sampler": type(self).__name__, "samples": k, "nfe": self.nfe,
                        "steps": self.nfe, "stopped_by": "steps",
                        "noise_std": float(gamma[i] * scale[i]), "prior": config["architecture"],
                        "prior_normalisation": normalisation, "prior_scale": float(scale[i])} for i in range(b)]
        return Result(mean.cpu().numpy(), std.astype(np.float32), diagnostics)


@dataclasses.dataclass
class Langevin(PosteriorSampling):
    """Annealed Langevin dynamics with the annealed likelihood (:func:`.samplers.langevin`)."""

    steps_per_level: int = 3
    step: float = 0.5           # as a fraction of the inverse curvature bound

    @property
    def per_level(self) -> int:
        return self.steps_per_level

    def draw(self, denoise, op, y, sigmas, gamma, rng):
        return langevin(denoise, op, y, sigmas, gamma, rng, steps_per_level=self.steps_per_level, step=self.step)


@dataclasses.dataclass
class DiffusionPosterior(PosteriorSampling):
    """Diffusion posterior sampling (:func:`.samplers.dps`): needs no noise std."""

    zeta: float = 1.0           # gradient step

    def draw(self, denoise, op, y, sigmas, gamma, rng):
        return dps(denoise, op, y, sigmas, rng, zeta=self.zeta)


@dataclasses.dataclass
class DecomposedDiffusion(PosteriorSampling):
    """Decomposed diffusion sampling (:func:`.samplers.dds`)."""

    cg_steps: int = 5           # CG steps per level
    eta: float = 1.0            # DDIM η (1: ancestral)
    sigma_data: float = 0.5     # prior std σ_d of x₀ given x in the data-consistency weight

    def draw(self, denoise, op, y, sigmas, gamma, rng):
        return dds(denoise, op, y, sigmas, gamma, rng, cg_steps=self.cg_steps, eta=self.eta,
                   sigma_data=self.sigma_data)


@dataclasses.dataclass
class AnnealedPublished(PosteriorSampling):
    """Jalal et al.'s published Langevin sampler (:func:`.samplers.annealed`): needs no noise std."""

    steps_per_level: int = 3
    step_lr: float = 5e-5       # step at the last level
    mse: float = 5.0            # data gradient norm / score norm

    @property
    def per_level(self) -> int:
        return self.steps_per_level

    def draw(self, denoise, op, y, sigmas, gamma, rng):
        return annealed(denoise, op, y, sigmas, rng, steps_per_level=self.steps_per_level, step_lr=self.step_lr,
                        mse=self.mse)


@dataclasses.dataclass
class PredictorCorrector(PosteriorSampling):
    """Chung & Ye's predictor-corrector for the VE-SDE (:func:`.samplers.pc`): needs no noise std."""

    snr: float = 0.16           # corrector signal-to-noise ratio
    corrector_steps: int = 1
    cg_steps: int = 5           # CG steps per data consistency

    @property
    def per_level(self) -> int:
        return self.corrector_steps + 1

    def draw(self, denoise, op, y, sigmas, gamma, rng):
        return pc(denoise, op, y, sigmas, rng, snr=self.snr, corrector_steps=self.corrector_steps,
                  cg_steps=self.cg_steps)
