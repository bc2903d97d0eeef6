"""NCSNv2 (``NCSNv2Deepest``), the score network of Jalal et al.'s MRI prior.

The architecture of Song & Ermon, "Improved techniques for training score-based
generative models" (NeurIPS 2020), in the configuration Jalal et al., "Robust compressed
sensing MRI with deep generative priors" (NeurIPS 2021) trained on fastMRI: a RefineNet
with unconditional InstanceNorm++ and ELU, six residual stages (three 2 × 2 mean pools,
then two dilated stages) and six refinement blocks. The noise level enters only through
the final division by σ, so the output is the score ``∇ log p_σ(x)`` itself.

``forward(x, labels)``: ``x`` ``(N, channels, H, W)`` (channels = real, imaginary part of
the image in units of the 99th percentile of ``|MVUE|``), ``labels`` ``(N,)`` int64 indices
into the geometric schedule ``sigmas`` (0 = largest) -> score ``(N, channels, H, W)``.
Any ``H, W`` work (the pools floor odd sizes). Module and parameter names are those of the
published checkpoint, so its state dict loads with ``strict=True``
(:mod:`mri_genprior.priors.published`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .denoiser import geometric_sigmas


class InstanceNormPlus(nn.Module):
    """InstanceNorm++ (Song & Ermon 2020): instance normalisation that keeps the channel means'
    spread, ``γ_c (x̂_c + α_c (μ_c − m)/√(v + ε)) + β_c`` with ``x̂_c`` the channel normalised by
    its biased spatial variance (ε = 1e-5), ``μ_c`` its spatial mean, ``m`` and ``v`` the mean
    and *unbiased* variance of the ``μ_c`` over channels."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(2, 3))
        spread = (means - means.mean(-1, keepdim=True)) / (means.var(-1, keepdim=True) + 1e-5).sqrt()
        h = F.instance_norm(x, eps=1e-5) + spread[..., None, None] * self.alpha[:, None, None]
        return self.gamma[:, None, None] * h + self.beta[:, None, None]


class ConvMeanPool(nn.Module):
    """A convolution, then a 2 × 2 mean pool (flooring odd sizes)."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(x), 2)


def _conv3x3(c_in: int, c_out: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=bias)


class ResidualBlock(nn.Module):
    """``shortcut(x) + conv2(ELU(norm2(conv1(ELU(norm1(x))))))``. ``down``: ``conv1`` keeps the
    input width and, undilated, ``conv2`` and the 1 × 1 shortcut end in a mean pool; dilated
    "down" blocks keep the size (dilated 3 × 3 shortcut)."""

    def __init__(self, c_in: int, c_out: int, down: bool = False, dilation: int = 1):
        super().__init__()
        width = c_in if down else c_out
        self.normalize1 = InstanceNormPlus(c_in)
        self.conv1 = _conv3x3(c_in, width, dilation)
        self.normalize2 = InstanceNormPlus(width)
        if down and dilation == 1:
            self.conv2, self.shortcut = ConvMeanPool(width, c_out, 3), ConvMeanPool(c_in, c_out, 1)
        else:
            self.conv2 = _conv3x3(width, c_out, dilation)
            self.shortcut = _conv3x3(c_in, c_out, dilation) if down or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.elu(self.normalize2(self.conv1(F.elu(self.normalize1(x))))))
        return h + (x if self.shortcut is None else self.shortcut(x))


class ResidualConvUnit(nn.Module):
    """``blocks`` residual blocks of two (ELU, bias-free 3 × 3 conv) stages (parameters ``{i}_{j}_conv``)."""

    def __init__(self, channels: int, blocks: int):
        super().__init__()
        self.blocks = blocks
        for i in range(1, blocks + 1):
            for j in (1, 2):
                self.add_module(f"{i}_{j}_conv", _conv3x3(channels, channels, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.blocks + 1):
            h = x
            for j in (1, 2):
                h = getattr(self, f"{i}_{j}_conv")(F.elu(h))
            x = x + h
        return x


class MultiResolutionFusion(nn.Module):
    """A 3 × 3 conv per input, bilinear resize (``align_corners=True``) to the skip's size, sum."""

    def __init__(self, widths, channels: int):
        super().__init__()
        self.convs = nn.ModuleList(_conv3x3(w, channels) for w in widths)

    def forward(self, xs, size) -> torch.Tensor:
        return sum(F.interpolate(conv(x), size=size, mode="bilinear", align_corners=True)
                   for conv, x in zip(self.convs, xs))


class ChainedResidualPool(nn.Module):
    """``x = ELU(x)``, then twice ``p = conv(maxpool5(p)); x = x + p``."""

    def __init__(self, channels: int):
        super().__init__()
        self.convs = nn.ModuleList(_conv3x3(channels, channels, bias=False) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = path = F.elu(x)
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 5, stride=1, padding=2))
            x = x + path
        return x


class RefineBlock(nn.Module):
    """RefineNet block: an RCU (2 blocks) per input, fusion when several, CRP, output RCU."""

    def __init__(self, widths, channels: int, end: bool = False):
        super().__init__()
        self.adapt_convs = nn.ModuleList(ResidualConvUnit(w, 2) for w in widths)
        self.output_convs = ResidualConvUnit(channels, 3 if end else 1)
        if len(widths) > 1:
            self.msf = MultiResolutionFusion(widths, channels)
        self.crp = ChainedResidualPool(channels)

    def forward(self, xs, size) -> torch.Tensor:
        hs = [adapt(x) for adapt, x in zip(self.adapt_convs, xs)]
        h = self.msf(hs, size) if len(hs) > 1 else hs[0]
        return self.output_convs(self.crp(h))


class NCSNv2Deepest(nn.Module):
    """NCSNv2Deepest score network (see the module docstring).

    Parameters
    ----------
    ngf : base width F (published: 128).
    channels : image channels (2: real and imaginary part).
    num_classes, sigma_begin, sigma_end : the geometric noise schedule
        (published: 2311 levels from 232 to 0.0066).
    """

    def __init__(self, ngf: int = 128, channels: int = 2, num_classes: int = 2311, sigma_begin: float = 232.0,
                 sigma_end: float = 0.0066):
        super().__init__()
        self.config = dict(ngf=ngf, channels=channels, num_classes=num_classes, sigma_begin=sigma_begin,
                           sigma_end=sigma_end)
        f = ngf
        self.register_buffer("sigmas", torch.tensor(geometric_sigmas(num_classes, sigma_begin, sigma_end),
                                                    dtype=torch.float32))
        self.begin_conv = nn.Conv2d(channels, f, 3, padding=1)
        self.normalizer = InstanceNormPlus(f)
        self.end_conv = nn.Conv2d(f, channels, 3, padding=1)
        stages = [("res1", f, f, False, 1), ("res2", f, 2 * f, True, 1), ("res3", 2 * f, 2 * f, True, 1),
                  ("res31", 2 * f, 2 * f, True, 1), ("res4", 2 * f, 4 * f, True, 2), ("res5", 4 * f, 4 * f, True, 4)]
        for name, c_in, c_out, down, dilation in stages:
            self.add_module(name, nn.ModuleList([ResidualBlock(c_in, c_out, down, dilation),
                                                  ResidualBlock(c_out, c_out, dilation=dilation)]))
        self.refine1 = RefineBlock([4 * f], 4 * f)
        self.refine2 = RefineBlock([4 * f, 4 * f], 2 * f)
        self.refine31 = RefineBlock([2 * f, 2 * f], 2 * f)
        self.refine3 = RefineBlock([2 * f, 2 * f], 2 * f)
        self.refine4 = RefineBlock([2 * f, 2 * f], f)
        self.refine5 = RefineBlock([f, f], f, end=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.begin_conv(2 * x - 1)
        layers = []
        for name in ("res1", "res2", "res3", "res31", "res4", "res5"):
            for block in getattr(self, name):
                h = block(h)
            layers.append(h)
        l1, l2, l3, l31, l4, l5 = layers
        h = self.refine1([l5], l5.shape[2:])
        for refine, skip in ((self.refine2, l4), (self.refine31, l31), (self.refine3, l3), (self.refine4, l2),
                             (self.refine5, l1)):
            h = refine([skip, h], skip.shape[2:])
        h = self.end_conv(F.elu(self.normalizer(h)))
        return h / self.sigmas[labels].view(-1, 1, 1, 1)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Tweedie's ``D(x; σ) = x + σ_l² s(x, l)`` at the schedule's level ``l`` nearest to each σ (in log)."""
        labels = (self.sigmas.log()[None] - sigma.reshape(-1, 1).log()).abs().argmin(1)
        return x + self.sigmas[labels].view(-1, 1, 1, 1) ** 2 * self(x, labels)
