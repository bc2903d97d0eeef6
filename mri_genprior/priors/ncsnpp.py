"""NCSN++ (continuous VE-SDE), the score network of Chung & Ye's MRI prior.

The architecture of Song et al., "Score-based generative modeling through stochastic
differential equations" (ICLR 2021), in the configuration Chung & Ye, "Score-based
diffusion models for accelerated MRI" (Medical Image Analysis 2022) trained on fastMRI
knees at 320²: BigGAN residual blocks with FIR (``[1, 3, 3, 1]``) resampling, four levels
of widths ``nf · (1, 2, 2, 2)`` with 4 blocks each, a residual input pyramid, one
self-attention block at the bottleneck, skip rescaling by ``1/√2``, GroupNorm with
``min(C/4, 32)`` groups and ε = 1e-6, SiLU, and Gaussian Fourier features of ``log σ``.

``forward(x, sigma)``: ``x`` ``(N, channels, H, W)`` (magnitude images in [0, 1]; ``2x − 1``
is applied inside), ``sigma`` ``(N,)`` the noise standard deviation -> the score
``(N, channels, H, W)`` (the network output divided by σ). ``H`` and ``W`` must be
multiples of 8. The published configuration asks for attention at 16² levels; no level
is 16² at 320², so, as published, only the bottleneck attends (at any input size). The
modules sit in one ``all_modules`` list in the published order, so the published state
dict loads with ``strict=True`` (:mod:`mri_genprior.priors.published`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .denoiser import geometric_sigmas

FIR = (1.0, 3.0, 3.0, 1.0)
SKIP = 1 / math.sqrt(2.0)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


def _fir(x: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0), gain: float = 1.0) -> torch.Tensor:
    """``upfirdn2d``: zero-insert by ``up``, pad ``pad`` (before, after) on both axes, filter with
    the normalised separable ``[1, 3, 3, 1]`` kernel times ``gain``, keep every ``down``-th sample."""
    k = torch.tensor(FIR, dtype=x.dtype, device=x.device)
    kernel = (torch.outer(k, k) / torch.outer(k, k).sum() * gain)[None, None].expand(x.shape[1], 1, 4, 4)
    if up > 1:
        n, c, h, w = x.shape
        x = F.pad(x[:, :, :, None, :, None], [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    return F.conv2d(F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), kernel, stride=down, groups=x.shape[1])


def upsample(x: torch.Tensor) -> torch.Tensor:
    """FIR upsampling by 2."""
    return _fir(x, up=2, pad=(2, 1), gain=4.0)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """FIR downsampling by 2."""
    return _fir(x, down=2, pad=(1, 1))


class FourierFeatures(nn.Module):
    """``[sin(2π t W), cos(2π t W)]`` with fixed frequencies ``W`` (not trained, not in the EMA)."""

    def __init__(self, size: int, scale: float = 16.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(size) * scale, requires_grad=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class NIN(nn.Module):
    """Per-pixel affine map ``y = x W + b`` over channels (``W`` is ``(in, out)``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(c_in, c_out))
        self.b = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[:, None, None]


class Attention(nn.Module):
    """Self-attention over all positions, ``(x + NIN_3(softmax(q·k/√C) v)) / √2``, q, k, v from ``GN(x)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.GroupNorm_0 = _group_norm(channels)
        for i in range(4):
            self.add_module(f"NIN_{i}", NIN(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = self.GroupNorm_0(x)
        q, k, v = (getattr(self, f"NIN_{i}")(normed).flatten(2) for i in range(3))
        weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=-1)
        out = torch.einsum("bij,bcj->bci", weights, v).reshape(b, c, h, w)
        return (x + self.NIN_3(out)) * SKIP


class ResBlock(nn.Module):
    """BigGAN block: ``(shortcut(x) + Conv_1(SiLU(GN_1(Conv_0(SiLU(GN_0 x)) + Dense_0(SiLU temb))))) / √2``,
    ``h`` and ``x`` FIR-resampled after ``SiLU(GN_0 x)`` in up/down blocks; the shortcut is a
    1 × 1 conv where the width changes or the block resamples."""

    def __init__(self, c_in: int, c_out: int, temb: int, resample: str = ""):
        super().__init__()
        self.resample = {"up": upsample, "down": downsample}.get(resample)
        self.GroupNorm_0 = _group_norm(c_in)
        self.Conv_0 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.Dense_0 = nn.Linear(temb, c_out)
        self.GroupNorm_1 = _group_norm(c_out)
        self.Conv_1 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.Conv_2 = nn.Conv2d(c_in, c_out, 1) if c_in != c_out or resample else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.GroupNorm_0(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.Conv_0(h) + self.Dense_0(F.silu(temb))[:, :, None, None]
        h = self.Conv_1(F.silu(self.GroupNorm_1(h)))
        return ((x if self.Conv_2 is None else self.Conv_2(x)) + h) * SKIP


class PyramidDown(nn.Module):
    """The input pyramid's step: FIR filter (pad 2), then a 3 × 3 conv with stride 2 and a bias."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.Conv2d_0 = nn.Conv2d(c_in, c_out, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Conv2d_0(_fir(x, pad=(2, 2)))


class NCSNpp(nn.Module):
    """NCSN++ score network (see the module docstring).

    Parameters
    ----------
    nf : base width (published: 128).
    channels : image channels (published: 1, magnitude).
    ch_mult : width multiplier per level.
    num_res_blocks : residual blocks per level on the way down (one more on the way up).
    sigma_min, sigma_max, num_scales : the VE-SDE's noise range and its discretisation
        (published: 0.01, 378, 2000), kept as the float64 buffer ``sigmas`` (descending) that
        the published checkpoint carries; the forward pass takes σ itself.
    """

    def __init__(self, nf: int = 128, channels: int = 1, ch_mult: Sequence[int] = (1, 2, 2, 2),
                 num_res_blocks: int = 4, sigma_min: float = 0.01, sigma_max: float = 378.0, num_scales: int = 2000):
        super().__init__()
        ch_mult = tuple(int(m) for m in ch_mult)
        self.config = dict(nf=nf, channels=channels, ch_mult=list(ch_mult), num_res_blocks=num_res_blocks,
                           sigma_min=sigma_min, sigma_max=sigma_max, num_scales=num_scales)
        self.register_buffer("sigmas", torch.tensor(geometric_sigmas(num_scales, sigma_max, sigma_min),
                                                    dtype=torch.float64))
        self.levels, self.blocks = len(ch_mult), num_res_blocks
        temb = 4 * nf
        modules = [FourierFeatures(nf), nn.Linear(2 * nf, temb), nn.Linear(temb, temb), nn.Conv2d(channels, nf, 3, padding=1)]
        widths, c, pyramid = [nf], nf, channels
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                modules.append(ResBlock(c, nf * mult, temb))
                c = nf * mult
                widths.append(c)
            if level < self.levels - 1:
                modules += [ResBlock(c, c, temb, "down"), PyramidDown(pyramid, c)]
                pyramid = c
                widths.append(c)
        modules += [ResBlock(c, c, temb), Attention(c), ResBlock(c, c, temb)]
        for level in reversed(range(self.levels)):
            for _ in range(num_res_blocks + 1):
                modules.append(ResBlock(c + widths.pop(), nf * ch_mult[level], temb))
                c = nf * ch_mult[level]
            if level > 0:
                modules.append(ResBlock(c, c, temb, "up"))
        modules += [_group_norm(c), nn.Conv2d(c, channels, 3, padding=1)]
        self.all_modules = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        modules = iter(self.all_modules)
        fourier, dense0, dense1, conv_in = (next(modules) for _ in range(4))
        temb = dense1(F.silu(dense0(fourier(torch.log(sigma)))))
        pyramid = 2 * x - 1
        hs = [conv_in(pyramid)]
        for level in range(self.levels):
            for _ in range(self.blocks):
                hs.append(next(modules)(hs[-1], temb))
            if level < self.levels - 1:
                h = next(modules)(hs[-1], temb)
                pyramid = (next(modules)(pyramid) + h) * SKIP
                hs.append(pyramid)
        h = hs[-1]
        h = next(modules)(h, temb)
        h = next(modules)(h)
        h = next(modules)(h, temb)
        for level in reversed(range(self.levels)):
            for _ in range(self.blocks + 1):
                h = next(modules)(torch.cat([h, hs.pop()], dim=1), temb)
            if level > 0:
                h = next(modules)(h, temb)
        norm, conv_out = next(modules), next(modules)
        return conv_out(F.silu(norm(h))) / sigma.view(-1, 1, 1, 1)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Tweedie's ``D(x; σ) = x + σ² s(x, σ)``; ``x`` is zero-padded to a multiple of 8 and cropped back."""
        h, w = x.shape[-2:]
        sigma = sigma.reshape(-1).to(x.dtype)
        score = self(F.pad(x, [0, -w % 8, 0, -h % 8]), sigma)[..., :h, :w]
        return x + sigma.view(-1, 1, 1, 1) ** 2 * score
