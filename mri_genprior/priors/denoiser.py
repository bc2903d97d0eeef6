"""Score (denoiser) prior: a noise-conditional U-Net with EDM preconditioning.

Parametrisation: EDM (Karras et al., NeurIPS 2022). A complex image ``x`` is two real
channels (real, imaginary). Noisy images are ``x + σ n`` with ``n ~ N(0, I)`` per real
channel (variance-exploding), and the network is the denoiser

    D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x; c_noise(σ)),
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ σ_d / √(σ² + σ_d²),  c_in = 1 / √(σ² + σ_d²),
    c_noise = ¼ ln σ,

trained with ``E_σ,n [λ(σ) ‖D(x + σ n; σ) − x‖²]``, ``ln σ ~ N(−1.2, 1.2²)``,
``λ = (σ² + σ_d²) / (σ σ_d)²``. Tweedie's formula gives the score of the noisy prior:
``∇ log p_σ(x) = (D(x; σ) − x) / σ²``.

``F`` is a small U-Net (``levels`` resolutions, one residual block each, group
normalisation, SiLU, the noise embedding added in every block). It is fully
convolutional: any ``(h, w)`` works (inputs are zero-padded to a multiple of
``2^(levels−1)`` and cropped back), so a prior trained on 64² crops runs on a whole scan.
Images are on the solvers' scale (k-space divided by
:func:`~mri_genprior.physics.scale_factor`, magnitudes of order 1).
"""

from __future__ import annotations

import math
from typing import Callable, List, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..physics.operators import complex_randn, to_channels

P_MEAN, P_STD = -1.2, 1.2  # EDM's training distribution of ln σ


def karras_sigmas(steps: int, sigma_max: float, sigma_min: float, rho: float = 7.0) -> List[float]:
    """``steps`` noise levels from ``sigma_max`` down to ``sigma_min`` (Karras et al. eq. 5)."""
    if steps < 1:
        raise ValueError(f"need at least one noise level, got {steps}")
    if steps == 1:
        return [float(sigma_max)]
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [float((a + i / (steps - 1) * (b - a)) ** rho) for i in range(steps)]


def geometric_sigmas(levels: int, sigma_max: float, sigma_min: float) -> List[float]:
    """``levels`` noise levels from σ_max down to σ_min, equally spaced in log σ (computed in
    float64: the published NCSN schedules)."""
    return np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), levels)).tolist()


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class _Block(nn.Module):
    """Residual block: GroupNorm–SiLU–conv, plus the noise embedding, twice."""

    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class ScoreUNet(nn.Module):
    """EDM-preconditioned denoiser ``D(x; σ)``: ``x`` ``(N, channels, h, w)``, ``σ`` ``(N,)`` -> ``(N, channels, h, w)``.

    ``width`` channels at full resolution, doubled at each of ``levels - 1`` coarser
    levels; ``sigma_data`` is σ_d of the preconditioning (see the module docstring).
    """

    def __init__(self, channels: int = 2, width: int = 32, levels: int = 3, sigma_data: float = 0.5):
        super().__init__()
        if levels < 1 or width < 1:
            raise ValueError(f"need levels >= 1 and width >= 1, got {levels}, {width}")
        self.config = dict(channels=channels, width=width, levels=levels, sigma_data=sigma_data)
        self.sigma_data = sigma_data
        emb = 4 * width
        self.embed = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        widths = [width * 2 ** i for i in range(levels)]
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.down = nn.ModuleList(_Block(w_in, w, emb) for w_in, w in zip([width] + widths[:-1], widths))
        self.mid = _Block(widths[-1], widths[-1], emb)
        self.up = nn.ModuleList(_Block(2 * w, w_out, emb) for w, w_out in zip(widths[::-1], widths[::-1][1:] + [width]))
        self.out = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def _features(self, c_noise: torch.Tensor) -> torch.Tensor:
        half = self.embed[0].in_features // 2
        freqs = torch.exp(-math.log(1e4) * torch.arange(half, device=c_noise.device) / half)
        angles = c_noise[:, None] * 1e3 * freqs[None]  # c_noise ∈ ~[-2, 1]: spread over the frequencies
        return self.embed(torch.cat([angles.cos(), angles.sin()], dim=1))

    def network(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """The raw U-Net ``F``; ``x`` is padded to a multiple of ``2^(levels-1)`` and cropped back."""
        h, w = x.shape[-2:]
        m = 2 ** (len(self.down) - 1)
        x = F.pad(x, [0, -w % m, 0, -h % m])
        emb = self._features(c_noise)
        x, skips = self.inp(x), []
        for i, block in enumerate(self.down):
            x = block(x, emb)
            skips.append(x)
            if i < len(self.down) - 1:
                x = F.avg_pool2d(x, 2)
        x = self.mid(x, emb)
        for i, block in enumerate(self.up):
            if i > 0:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(torch.cat([x, skips.pop()], dim=1), emb)
        return self.out(x)[..., :h, :w]

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """``D(x; σ)``: the network itself (the samplers' interface to every score prior)."""
        return self(x, sigma)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.reshape(-1).to(x.dtype).expand(x.shape[0])
        s2, d2 = sigma[:, None, None, None] ** 2, self.sigma_data ** 2
        c_skip, c_out = d2 / (s2 + d2), s2.sqrt() * self.sigma_data / (s2 + d2).sqrt()
        c_in = 1 / (s2 + d2).sqrt()
        return c_skip * x + c_out * self.network(c_in * x, sigma.log() / 4)


def edm_loss(net: Callable, x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM's weighted denoising loss for clean ``x`` ``(N, C, h, w)``, noise levels ``sigma`` ``(N,)``
    and unit ``noise`` like ``x`` (mean over the batch of the per-image sum)."""
    s = sigma[:, None, None, None]
    weight = (s ** 2 + sigma_data ** 2) / (s * sigma_data) ** 2
    return (weight * (net(x + s * noise, sigma) - x) ** 2).flatten(1).sum(1).mean()


def complex_denoiser(net: nn.Module) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """``D(x; σ)`` on complex ``(N, h, w)`` images (σ per real channel) from a score network's
    ``denoise``: a 2-channel network sees (real, imaginary) as channels; a 1-channel
    (magnitude) network denoises the real and the imaginary part as two images, as Chung &
    Ye's complex sampler does."""

    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        if net.config["channels"] == 2:
            out = net.denoise(to_channels(x), torch.full((x.shape[0],), float(sigma), device=x.device))
            return torch.complex(out[:, 0], out[:, 1])
        parts = torch.cat([x.real, x.imag])[:, None]
        out = net.denoise(parts, torch.full((parts.shape[0],), float(sigma), device=x.device))[:, 0]
        return torch.complex(out[:x.shape[0]], out[x.shape[0]:])

    return denoise


def ddim_step(x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float, eta: float,
              rng: torch.Generator) -> torch.Tensor:
    """One DDIM step (Song et al., ICLR 2021) from ``x`` at level σ to level σ' with clean estimate ``x0``:
    ``x' = x0 + √(σ'² − c²) ε̂ + c n``, ``c = η σ' √(1 − σ'²/σ²)``, ``ε̂ = (x − x0) / σ``.
    η = 1 is the ancestral (DDPM) step, exact when ``x0 = E[x₀ | x]`` of a Gaussian; η = 0 is deterministic."""
    c = eta * sigma_next * max(0.0, 1 - (sigma_next / sigma) ** 2) ** 0.5
    eps = (x - x0) / sigma
    return x0 + max(0.0, sigma_next ** 2 - c ** 2) ** 0.5 * eps + c * complex_randn(x.shape, rng, x.device)


def sample(denoise: Callable[[torch.Tensor, float], torch.Tensor], shape: Sequence[int], sigmas: Sequence[float],
           rng: torch.Generator, device) -> torch.Tensor:
    """Unconditional ancestral samples ``shape`` = ``(N, h, w)`` complex: from ``N(0, σ_0²)``, the
    ancestral :func:`ddim_step` at each level, ``D(x; σ_last)`` at the end. Used for training sample grids."""
    x = sigmas[0] * complex_randn(shape, rng, device)
    for sigma, sigma_next in zip(sigmas, sigmas[1:]):
        x = ddim_step(x, denoise(x, sigma), sigma, sigma_next, 1.0, rng)
    return denoise(x, sigmas[-1])
