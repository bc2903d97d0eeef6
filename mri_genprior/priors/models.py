"""Trainable models: the registry ``mri-genprior train --model NAME`` reads.

Each model builds its networks and optimizers for a run and brings its own training
step, so the training loop (:mod:`.train`) has no branch per model. The interface:

* ``generator``: the network saved as the solver checkpoint (``generator.pt``);
* ``modules`` / ``optimizers``: named state for checkpoints and exact resume;
* ``step(real, rng) -> {loss name: value}``: one optimisation step on a batch of real
  images ``(N, C, size, size)``, with all randomness drawn from the CPU ``rng``;
* ``samples(rng) -> (16, C, size, size)``: draws for the training sample grids.

Objectives
----------
* ``dcgan``: non-saturating GAN loss (Goodfellow et al., NeurIPS 2014) with a spectrally
  normalised discriminator (Miyato et al., ICLR 2018). Chosen over WGAN-GP because it
  needs one backward pass per network and no double backward through the discriminator,
  which ``DistributedDataParallel`` does not support.
* ``vae``: the negative ELBO ``‖x − D(z)‖² / (2σ²) + (d/2) log 2πσ² + KL(q(z|x) ‖ N(0, I))``
  per image (Kingma & Welling, ICLR 2014), with a Gaussian decoder of fixed
  ``vae_sigma`` (in normalised image units).
* ``score``: EDM's weighted denoising loss (Karras et al., NeurIPS 2022) for the
  noise-conditional U-Net of :mod:`.denoiser` (the score prior of the posterior
  samplers). Needs the complex target. Each batch is augmented by a random global phase
  ``e^{iφ}`` and random flips, symmetries of complex MR images.
"""

from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from ..physics.operators import to_channels
from . import build, distributed
from .denoiser import P_MEAN, P_STD, ScoreUNet, complex_denoiser, edm_loss, karras_sigmas, sample
from .networks import Discriminator

BETAS = (0.5, 0.999)


def _generator(architecture: str, config, channels: int, device) -> nn.Module:
    return build({"architecture": architecture, "latent_dim": config.latent_dim, "image_size": config.image_size,
                  "channels": channels, "width": config.width}).to(device)


class GAN:
    """DCGAN generator against a spectrally normalised discriminator (non-saturating loss)."""

    def __init__(self, config, channels: int, ctx: distributed.Context):
        self.latent_dim, self.device = config.latent_dim, ctx.device
        self.generator = _generator("dcgan", config, channels, ctx.device)
        self.critic = Discriminator(config.image_size, channels, config.width).to(ctx.device)
        self.modules: Dict[str, nn.Module] = {"generator": self.generator, "discriminator": self.critic}
        self.g_net = distributed.wrap(self.generator, ctx)
        self.d_net = distributed.wrap(self.critic, ctx)
        self.optimizers = {"generator": torch.optim.Adam(self.generator.parameters(), config.lr, BETAS),
                           "discriminator": torch.optim.Adam(self.critic.parameters(), config.lr, BETAS)}

    def step(self, real: torch.Tensor, rng: torch.Generator) -> dict:
        z = torch.randn((real.shape[0], self.latent_dim), generator=rng).to(self.device)
        fake = self.g_net(z)
        logits = self.d_net(torch.cat([real, fake.detach()]))
        d_loss = F.softplus(-logits[:len(real)]).mean() + F.softplus(logits[len(real):]).mean()
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizers["discriminator"].step()
        g_loss = F.softplus(-self.d_net(fake)).mean()
        self.optimizers["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        self.optimizers["generator"].step()
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item()}

    def samples(self, rng: torch.Generator) -> torch.Tensor:
        """G(z) for 16 latent codes drawn from ``rng``."""
        with torch.no_grad():
            return self.generator(torch.randn((16, self.latent_dim), generator=rng).to(self.device))


class _ELBO(nn.Module):
    """Negative ELBO terms of a VAE for a batch, as one module (one DDP forward)."""

    def __init__(self, vae: nn.Module, sigma: float):
        super().__init__()
        self.vae, self.sigma = vae, sigma

    def forward(self, x: torch.Tensor, eps: torch.Tensor):
        mu, logvar = self.vae.encode(x)
        recon = self.vae.decoder(mu + torch.exp(0.5 * logvar) * eps)
        pixels = x[0].numel()
        nll = (recon - x).pow(2).flatten(1).sum(1) / (2 * self.sigma ** 2) \
            + 0.5 * pixels * math.log(2 * math.pi * self.sigma ** 2)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return nll.mean(), kl.mean()


class VAE:
    """Convolutional VAE whose decoder is the solver's generator (negative ELBO)."""

    def __init__(self, config, channels: int, ctx: distributed.Context):
        self.latent_dim, self.device = config.latent_dim, ctx.device
        self.generator = _generator("vae", config, channels, ctx.device)
        self.modules = {"generator": self.generator}
        self.elbo = distributed.wrap(_ELBO(self.generator, config.vae_sigma), ctx)
        self.optimizers = {"generator": torch.optim.Adam(self.generator.parameters(), config.lr)}

    def step(self, real: torch.Tensor, rng: torch.Generator) -> dict:
        eps = torch.randn((real.shape[0], self.latent_dim), generator=rng).to(self.device)
        nll, kl = self.elbo(real, eps)
        self.optimizers["generator"].zero_grad(set_to_none=True)
        (nll + kl).backward()
        self.optimizers["generator"].step()
        return {"neg_elbo": (nll + kl).item(), "nll": nll.item(), "kl": kl.item()}

    samples = GAN.samples


class Score:
    """Noise-conditional denoiser ``D(x; σ)`` (EDM), the prior of the posterior samplers."""

    target = "complex"  # the training target it needs

    def __init__(self, config, channels: int, ctx: distributed.Context):
        self.device, self.size = ctx.device, config.image_size
        self.generator = ScoreUNet(channels, config.width, config.levels, config.sigma_data).to(ctx.device)
        self.modules = {"generator": self.generator}
        self.net = distributed.wrap(self.generator, ctx)
        self.optimizers = {"generator": torch.optim.Adam(self.generator.parameters(), config.lr)}

    def step(self, real: torch.Tensor, rng: torch.Generator) -> dict:
        n = real.shape[0]
        phase = torch.rand(n, generator=rng) * 2 * math.pi
        flips = torch.rand(n, 2, generator=rng) < 0.5
        x = torch.complex(real[:, 0], real[:, 1]) * torch.polar(torch.ones(n), phase)[:, None, None].to(self.device)
        x = torch.where(flips[:, 0, None, None].to(self.device), x.flip(-1), x)
        x = torch.where(flips[:, 1, None, None].to(self.device), x.flip(-2), x)
        x = to_channels(x)
        sigma = (torch.randn(n, generator=rng) * P_STD + P_MEAN).exp().to(self.device)
        noise = torch.randn(x.shape, generator=rng).to(self.device)
        loss = edm_loss(self.net, x, sigma, noise, self.generator.sigma_data)
        self.optimizers["generator"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["generator"].step()
        return {"edm_loss": loss.item()}

    def samples(self, rng: torch.Generator) -> torch.Tensor:
        """16 unconditional ancestral samples (40 noise levels from σ = 20)."""
        with torch.no_grad():
            x = sample(complex_denoiser(self.generator), (16, self.size, self.size), karras_sigmas(40, 20.0, 0.002),
                       rng, self.device)
        return to_channels(x)


TRAINABLE = {"dcgan": GAN, "vae": VAE, "score": Score}
