"""Posterior sampling with a score (denoiser) prior: ``langevin``, ``dps`` and ``dds``.

``PosteriorSampling`` draws ``samples`` posterior samples per slice with the sampler of
:mod:`.samplers`, all slices × samples in one batch, and returns

* ``images``: the posterior mean (complex; the pipeline applies the physics' output
  convention to it, as for every method),
* ``std``: the per-pixel standard deviation over the samples of their outputs under the
  same convention (for SENSE: the RSS of the data-consistent coil images),

so the file's ``reconstruction`` is the posterior mean and ``reconstruction_std`` the
spread of the samples. The prior is a checkpoint of ``mri-genprior train --model score``
(:mod:`mri_genprior.priors.denoiser`); it runs on the whole image grid (fully
convolutional). The k-space noise std γ is estimated from the data
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
from ..priors.denoiser import complex_denoiser, karras_sigmas
from .base import Method, Result, number_or_auto
from .samplers import SAMPLERS
from .trained import cached_prior


def draw_seed(seed: int, measurements: bytes, sample: int) -> int:
    """A 63-bit seed from ``seed``, the sample index and the bytes of one slice's measurements."""
    digest = hashlib.blake2b(measurements, digest_size=8, key=f"{seed}:{sample}".encode()).digest()
    return int.from_bytes(digest, "little") >> 1


def score_prior(path: str, device) -> torch.nn.Module:
    """The frozen score network of checkpoint ``path``; any other kind of checkpoint is an error."""
    network, config = cached_prior(str(path), str(device))
    if config.get("architecture") != "score-unet":
        raise MriGenpriorError(f"{path} is a {config.get('architecture')!r} generator, not a score prior "
                               "(train one with: mri-genprior train --model score)")
    return network


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
    steps_per_level: int = 3    # langevin
    step: float = 0.5           # langevin: step as a fraction of the inverse curvature bound
    zeta: float = 1.0           # dps: gradient step
    cg_steps: int = 5           # dds: CG steps per level
    eta: float = 1.0            # dds: DDIM η (1: ancestral)
    seed: int = 0

    def __post_init__(self):
        if not self.prior:
            raise MriGenpriorError("needs a score prior checkpoint: --prior CKPT (mri-genprior train --model score)")
        if self.sampler not in SAMPLERS:
            raise MriGenpriorError(f"has no sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        if self.samples < 1 or self.levels < 1:
            raise MriGenpriorError(f"needs samples >= 1 and levels >= 1, got {self.samples} and {self.levels}")
        self.noise = number_or_auto("noise", self.noise)

    @property
    def nfe(self) -> int:
        """Network evaluations per sample."""
        return self.levels * (self.steps_per_level if self.sampler == "langevin" else 1)

    def _options(self) -> dict:
        return {"langevin": {"steps_per_level": self.steps_per_level, "step": self.step},
                "dps": {"zeta": self.zeta}, "dds": {"cg_steps": self.cg_steps, "eta": self.eta}}[self.sampler]

    def reconstruct(self, y, physics) -> Result:
        denoise = complex_denoiser(score_prior(self.prior, physics.device))
        b, k = y.shape[0], self.samples
        gamma = (physics.noise_std(y) if self.noise == "auto"
                 else torch.full((b,), self.noise, device=y.device))
        index = torch.arange(b, device=y.device).repeat_interleave(k)
        replicas, y_k = physics.select(index.tolist()), y[index]
        sigmas = karras_sigmas(self.levels, self.sigma_max, self.sigma_min)
        noise_args = () if self.sampler == "dps" else (gamma[index],)
        slices = [item.tobytes() for item in y.detach().cpu().numpy()]  # one copy to the host per batch
        rng = [torch.Generator().manual_seed(draw_seed(self.seed, data, j)) for data in slices for j in range(k)]
        with torch.no_grad():
            draws = SAMPLERS[self.sampler](denoise, replicas, y_k, sigmas, *noise_args, rng, **self._options())
        shape = (b, k) + tuple(draws.shape[1:])
        mean = draws.view(shape).mean(1)
        outputs = replicas.output(draws.cpu().numpy(), y_k).reshape(shape)
        std = outputs.std(1, ddof=1) if k > 1 else np.zeros_like(outputs[:, 0])
        diagnostics = [{"method": self.name, "sampler": self.sampler, "samples": k, "nfe": self.nfe,
                        "noise_std": float(gamma[i])} for i in range(b)]
        return Result(mean.cpu().numpy(), std.astype(np.float32), diagnostics)
