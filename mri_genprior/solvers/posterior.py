"""Posterior sampling with a score (denoiser) prior: ``langevin``, ``dps`` and ``dds``.

``PosteriorSampling`` draws ``samples`` posterior samples per slice with the sampler of
:mod:`.samplers`, all slices × samples in one batch, and returns

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

import dataclasses
import hashlib
from typing import Union

import numpy as np
import torch

from .. import MriGenpriorError
from ..priors import SCORE_ARCHITECTURES
from ..priors.denoiser import complex_denoiser, geometric_sigmas, karras_sigmas
from .base import Method, Result, number_or_auto
from .samplers import SAMPLERS, USES_NOISE
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
    """Posterior samples of a score prior (see the module docstring and :mod:`.samplers`)."""

    takes_prior = True
    prior: str = ""
    sampler: str = "dds"
    samples: int = 4            # posterior samples per slice (mean and std over them)
    levels: int = 50            # noise levels (the NFE of dps and dds; langevin: × steps_per_level)
    sigma_max: float = 10.0
    sigma_min: float = 0.01
    noise: Union[float, str] = "auto"  # k-space noise std per real component (scaled units), or auto
    schedule: str = "karras"    # noise levels: karras (ρ = 7) or geometric (the published NCSN schedules)
    steps_per_level: int = 3    # langevin, annealed
    step: float = 0.5           # langevin: step as a fraction of the inverse curvature bound
    zeta: float = 1.0           # dps: gradient step
    cg_steps: int = 5           # dds: CG steps per level; pc: CG steps per data consistency
    eta: float = 1.0            # dds: DDIM η (1: ancestral)
    step_lr: float = 5e-5       # annealed: step at the last level
    mse: float = 5.0            # annealed: data gradient norm / score norm
    snr: float = 0.16           # pc: corrector signal-to-noise ratio
    corrector_steps: int = 1    # pc
    seed: int = 0

    def __post_init__(self):
        if not self.prior:
            raise MriGenpriorError("needs a score prior checkpoint: --prior CKPT (mri-genprior train --model score)")
        if self.sampler not in SAMPLERS:
            raise MriGenpriorError(f"has no sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.schedule not in SCHEDULES:
            raise MriGenpriorError(f"has no noise schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if self.samples < 1 or self.levels < 1:
            raise MriGenpriorError(f"needs samples >= 1 and levels >= 1, got {self.samples} and {self.levels}")
        self.noise = number_or_auto("noise", self.noise)

    @property
    def nfe(self) -> int:
        """Network evaluations per sample."""
        per_level = {"langevin": self.steps_per_level, "annealed": self.steps_per_level,
                     "pc": self.corrector_steps + 1}
        return self.levels * per_level.get(self.sampler, 1)

    def _options(self) -> dict:
        return {"langevin": {"steps_per_level": self.steps_per_level, "step": self.step},
                "dps": {"zeta": self.zeta}, "dds": {"cg_steps": self.cg_steps, "eta": self.eta},
                "annealed": {"steps_per_level": self.steps_per_level, "step_lr": self.step_lr, "mse": self.mse},
                "pc": {"snr": self.snr, "corrector_steps": self.corrector_steps, "cg_steps": self.cg_steps},
                }[self.sampler]

    def reconstruct(self, y, physics) -> Result:
        network, config = score_prior(self.prior, physics.device)
        denoise = complex_denoiser(network)
        b, k = y.shape[0], self.samples
        normalisation = config.get("normalisation", "p99")
        scale = input_scale(normalisation, physics, y)
        scaled = y / scale.view((-1,) + (1,) * (y.ndim - 1))
        gamma = (physics.noise_std(y) if self.noise == "auto"
                 else torch.full((b,), self.noise, device=y.device)) / scale
        index = torch.arange(b, device=y.device).repeat_interleave(k)
        replicas = physics.select(index.tolist())
        sigmas = SCHEDULES[self.schedule](self.levels, self.sigma_max, self.sigma_min)
        noise_args = (gamma[index],) if self.sampler in USES_NOISE else ()
        slices = [item.tobytes() for item in y.detach().cpu().numpy()]  # one copy to the host per batch
        rng = [torch.Generator().manual_seed(draw_seed(self.seed, data, j)) for data in slices for j in range(k)]
        with torch.no_grad():
            draws = SAMPLERS[self.sampler](denoise, replicas, scaled[index], sigmas, *noise_args, rng,
                                           **self._options())
        draws = draws * scale[index].view((-1,) + (1,) * (draws.ndim - 1))
        shape = (b, k) + tuple(draws.shape[1:])
        mean = draws.view(shape).mean(1)
        outputs = replicas.output(draws.cpu().numpy(), y[index])
        outputs = outputs.reshape((b, k) + outputs.shape[1:])
        std = outputs.std(1, ddof=1) if k > 1 else np.zeros_like(outputs[:, 0])
        diagnostics = [{"method": self.name, "sampler": self.sampler, "samples": k, "nfe": self.nfe,
                        "noise_std": float(gamma[i] * scale[i]), "prior": config["architecture"],
                        "prior_normalisation": normalisation, "prior_scale": float(scale[i])} for i in range(b)]
        return Result(mean.cpu().numpy(), std.astype(np.float32), diagnostics)
