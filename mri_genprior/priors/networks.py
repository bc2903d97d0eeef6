"""Generator networks, and the regulariser of the scan-specific unrolled network.

Every generator maps a batch to images ``(N, channels, h, w)`` (real); 2 channels are
the real and imaginary parts of a complex image, 1 channel is a magnitude image (see
:func:`mri_genprior.physics.operators.to_complex` for the phase model). Each stores the
keyword arguments it was built with in ``self.config`` so that a checkpoint can
rebuild it. No layer behaves differently in train and eval mode. :class:`ResidualCNN`
maps complex images to complex images (the regulariser inside
:class:`~mri_genprior.solvers.scan_specific.ZeroShotSSL`).
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
from torch import nn

from ..physics.operators import to_channels


class DCGANGenerator(nn.Module):
    """DCGAN-style generator: z ``(N, latent_dim)`` -> ``(N, channels, size, size)``.

    A linear layer makes a ``4 × 4`` feature map, then ``log2(size / 4)`` stride-2
    transposed convolutions double the resolution (ReLU between, linear output).
    ``size`` must be 4 · 2^n.
    """

    def __init__(self, latent_dim: int = 64, image_size: int = 64, channels: int = 2, width: int = 32):
        super().__init__()
        ups = math.log2(image_size / 4)
        if image_size < 8 or not ups.is_integer():
            raise ValueError(f"DCGAN image_size must be 4·2^n >= 8, got {image_size}")
        self.config = dict(latent_dim=latent_dim, image_size=image_size, channels=channels, width=width)
        self.latent_dim = latent_dim
        widths = [width * 2 ** i for i in reversed(range(int(ups)))]
        self.project = nn.Linear(latent_dim, widths[0] * 16)
        layers = []
        for w_in, w_out in zip(widths, widths[1:] + [widths[-1]]):
            layers += [nn.ReLU(), nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(widths[-1], channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self._first = widths[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(z.shape[0], self._first, 4, 4))


class VAE(nn.Module):
    """Convolutional VAE whose decoder is a :class:`DCGANGenerator` (the prior used in solves).

    ``encode(x)`` returns ``(mu, logvar)`` of ``q(z | x)``; ``decoder(z)`` is the
    generator; ``forward(z)`` = ``decoder(z)`` so a VAE is used like any generator.
    """

    def __init__(self, latent_dim: int = 64, image_size: int = 64, channels: int = 2, width: int = 32):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, image_size=image_size, channels=channels, width=width)
        self.latent_dim = latent_dim
        self.decoder = DCGANGenerator(latent_dim, image_size, channels, width)
        downs = int(math.log2(image_size / 4))
        layers, w_in = [], channels
        for i in range(downs):
            w_out = width * 2 ** i
            layers += [nn.Conv2d(w_in, w_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            w_in = w_out
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(w_in * 16, 2 * latent_dim))

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class DeepDecoder(nn.Module):
    """Untrained decoder (Heckel & Hand's deep decoder; ConvDecoder with ``kernel_size=3``).

    A fixed random input ``(1, channels, h0, w0)`` goes through ``layers`` blocks of
    convolution → upsampling → ReLU → channel normalisation, then a final convolution
    to ``out_channels``. Feature-map sizes grow geometrically from
    ``output_size / 2**layers`` to ``output_size``, so any output size works.
    ``forward(z)`` takes the input tensor (see :meth:`fixed_input`).
    """

    def __init__(self, output_size: Sequence[int] = (64, 64), channels: int = 64, layers: int = 4,
                 kernel_size: int = 1, out_channels: int = 2):
        super().__init__()
        h, w = int(output_size[0]), int(output_size[1])
        self.config = dict(output_size=[h, w], channels=channels, layers=layers, kernel_size=kernel_size,
                           out_channels=out_channels)
        start = (max(2, h >> layers), max(2, w >> layers))
        self.input_shape = (channels,) + start
        sizes = [(round(start[0] * (h / start[0]) ** (i / layers)), round(start[1] * (w / start[1]) ** (i / layers)))
                 for i in range(1, layers + 1)]
        pad = kernel_size // 2
        blocks = []
        for size in sizes:
            blocks += [nn.Conv2d(channels, channels, kernel_size, padding=pad, padding_mode="reflect", bias=False),
                       nn.Upsample(size=size, mode="bilinear", align_corners=False), nn.ReLU(),
                       nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)]
        blocks.append(nn.Conv2d(channels, out_channels, kernel_size, padding=pad, padding_mode="reflect"))
        self.body = nn.Sequential(*blocks)

    def fixed_input(self, rng: torch.Generator, scale: float = 0.1) -> torch.Tensor:
        """The network's fixed random input ``(1, *input_shape)`` (uniform, scaled)."""
        return scale * torch.rand((1,) + self.input_shape, generator=rng)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


class ExpansiveReLU(nn.Module):
    """Hand & Voroninski's random generator ``G(z) = relu(W_d … relu(W_1 z))``.

    ``dims = [k, n_1, …, n_d]``; weights are i.i.d. N(0, 1/n_i) (no biases), drawn from
    ``seed``. With ``image_shape = (h, w)`` (h·w = n_d) the output is reshaped to a
    1-channel image ``(N, 1, h, w)``; otherwise it is ``(N, n_d)``.
    """

    def __init__(self, dims: Sequence[int] = (10, 40, 160), seed: int = 0, image_shape: Sequence[int] | None = None):
        super().__init__()
        dims = [int(d) for d in dims]
        if image_shape is not None and image_shape[0] * image_shape[1] != dims[-1]:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold {dims[-1]} outputs")
        self.config = dict(dims=dims, seed=seed, image_shape=None if image_shape is None else list(image_shape))
        self.latent_dim = dims[0]
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.ModuleList()
        for n_in, n_out in zip(dims, dims[1:]):
            layer = nn.Linear(n_in, n_out, bias=False)
            with torch.no_grad():
                layer.weight.copy_(torch.randn(n_out, n_in, generator=gen) / math.sqrt(n_out))
            self.layers.append(layer)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            z = torch.relu(layer(z))
        if self.config["image_shape"] is not None:
            return z.view(z.shape[0], 1, *self.config["image_shape"])
        return z


class Discriminator(nn.Module):
    """Spectrally normalised convolutional discriminator (Miyato et al. 2018) for GAN training.

    ``(N, channels, size, size)`` -> logits ``(N,)``: ``log2(size / 4)`` stride-2
    convolutions (widths mirror :class:`DCGANGenerator`), LeakyReLU(0.2), then a linear
    layer. Every weight is spectrally normalised, so the network is 1-Lipschitz per layer
    without batch statistics or a gradient penalty.
    """

    def __init__(self, image_size: int = 64, channels: int = 2, width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers, w_in = [], channels
        for i in range(int(math.log2(image_size / 4))):
            w_out = width * 2 ** i
            layers += [sn(nn.Conv2d(w_in, w_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            w_in = w_out
        self.body = nn.Sequential(*layers, nn.Flatten(), sn(nn.Linear(w_in * 16, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


class SkipNet(nn.Module):
    """Deep Image Prior encoder-decoder with skip connections (Ulyanov et al. 2018), untrained.

    A fixed noise input ``(1, in_channels, h, w)`` goes through ``layers`` stride-2
    ``kernel_size`` convolution blocks down and bilinear-upsampling blocks up; each level adds a
    ``skip_channels`` 1×1 projection of the encoder features. LeakyReLU(0.2) and
    instance normalisation (the same in train and eval mode); any ``output_size`` works.
    ``forward(z)`` takes the input tensor (see :meth:`fixed_input`) and returns
    ``(1, out_channels, h, w)``.
    """

    def __init__(self, output_size: Sequence[int] = (64, 64), channels: int = 32, layers: int = 3,
                 skip_channels: int = 4, in_channels: int = 32, out_channels: int = 2, kernel_size: int = 3):
        super().__init__()
        h, w = int(output_size[0]), int(output_size[1])
        self.config = dict(output_size=[h, w], channels=channels, layers=layers, skip_channels=skip_channels,
                           in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size)
        self.input_shape = (in_channels, h, w)

        def block(c_in, c_out, stride=1):
            return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, padding_mode="reflect"),
                                 nn.InstanceNorm2d(c_out, affine=True), nn.LeakyReLU(0.2))

        self.down = nn.ModuleList(block(in_channels if i == 0 else channels, channels, 2) for i in range(layers))
        self.skip = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else channels, skip_channels, 1)
                                  for i in range(layers))
        self.up = nn.ModuleList(block(channels + skip_channels, channels) for _ in range(layers))
        self.out = nn.Conv2d(channels, out_channels, 1)

    fixed_input = DeepDecoder.fixed_input

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips, x = [], z
        for down, skip in zip(self.down, self.skip):
            skips.append(skip(x))
            x = down(x)
        for up, s in zip(self.up, reversed(skips)):
            x = nn.functional.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, s], dim=1))
        return self.out(x)


class ResidualCNN(nn.Module):
    """The regulariser of an unrolled network: complex images ``(N, h, w)`` to complex images,
    ``x + F(x)`` (ZS-SSL's ResNet, Yaman et al., ICLR 2022, smaller).

    F: a 3×3 convolution from the real and imaginary parts to ``channels`` features,
    ``blocks`` residual blocks (convolution, ReLU, convolution, scaled by 0.1), a convolution
    whose output is added to the first features, and a 3×3 convolution back to 2 channels.
    Any image size; no normalisation layers.
    """

    def __init__(self, channels: int = 32, blocks: int = 3):
        super().__init__()
        self.config = dict(channels=channels, blocks=blocks)
        self.first = nn.Conv2d(2, channels, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                                  nn.Conv2d(channels, channels, 3, padding=1))
                                    for _ in range(blocks))
        self.last = nn.Conv2d(channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.first(to_channels(x))
        h = features
        for block in self.blocks:
            h = h + 0.1 * block(h)
        out = self.out(self.last(h) + features)
        return x + torch.complex(out[:, 0], out[:, 1])


def gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences ``(2, ...)`` of ``(..., h, w)`` images along h and w (circular)."""
    return torch.stack([torch.roll(x, -1, -2) - x, torch.roll(x, -1, -1) - x])


def gradient_adjoint(p: torch.Tensor) -> torch.Tensor:
    """The adjoint ``∇ᵀ p`` of :func:`gradient` (minus the divergence)."""
    return (torch.roll(p[0], 1, -2) - p[0]) + (torch.roll(p[1], 1, -1) - p[1])


class TotalVariationProx(nn.Module):
    """The proximal operator of anisotropic total variation on complex images ``(N, h, w)``,

        prox(x) = argmin_z ½‖z − x‖² + t Σ (|∂_h z| + |∂_w z|)    (circular differences),

    approximated by ``iterations`` projected-gradient steps on its dual,
    ``z = x − ∇ᵀp``, ``p ← Π_{|p| ≤ t}(p + ∇z / 8)`` (8 ≥ ‖∇‖²; Chambolle, J. Math. Imaging
    Vis. 2004). Differentiable in ``x`` and in the threshold ``t = exp(log_threshold)``, a
    parameter that starts at ``threshold``.
    """

    def __init__(self, threshold: float, iterations: int = 20):
        super().__init__()
        self.iterations = iterations
        self.log_threshold = nn.Parameter(torch.tensor(math.log(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.log_threshold.exp()
        p = torch.zeros((2,) + x.shape, dtype=x.dtype, device=x.device)
        for _ in range(self.iterations):
            p = p + gradient(x - gradient_adjoint(p)) / 8
            p = p / torch.clamp(p.abs() / t, min=1.0)
        return x - gradient_adjoint(p)
