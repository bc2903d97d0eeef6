"""Score prior and posterior samplers: exact Gaussian posterior, network, checkpoints, method."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import GaussianOp
from mri_genprior import MriGenpriorError
from mri_genprior.experiments.synthetic import write_synthetic_file
from mri_genprior.metrics import volume_metrics
from mri_genprior.physics import SensePhysics
from mri_genprior.priors import load_checkpoint, save_checkpoint
from mri_genprior.priors.denoiser import ScoreUNet, complex_denoiser, karras_sigmas
from mri_genprior.priors.networks import DCGANGenerator
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method
from mri_genprior.physics.operators import batched_cg
from mri_genprior.solvers.posterior import DecomposedDiffusion, DiffusionPosterior, Langevin


def gaussian_problem(samples=2000):
    """A Gaussian prior N(μ, diag s) per real component, a complex 10×16 operator and noisy y:
    the exact posterior mean and per-real-component std, and the prior's exact denoiser."""
    g = torch.Generator().manual_seed(1)
    shape, n, m = (4, 4), 16, 10

    def cn(*size):
        return torch.complex(torch.randn(size, generator=g), torch.randn(size, generator=g))

    a = cn(m, n) / (2 * n) ** 0.5
    op = GaussianOp(a, shape)
    mu, s, gamma = cn(*shape), (0.2 + torch.rand(shape, generator=g)) ** 2, 0.05
    y = op.forward((mu + s.sqrt() * cn(*shape))[None]) + gamma * cn(1, m)
    a64 = a.to(torch.complex128)
    cov = torch.linalg.inv(a64.conj().T @ a64 / gamma ** 2 + torch.diag(1 / s.flatten().to(torch.complex128)))
    mean = cov @ (a64.conj().T @ y[0].to(torch.complex128) / gamma ** 2 + mu.flatten() / s.flatten())
    std = cov.diagonal().real.sqrt()

    def denoise(x, sigma):
        return mu + s / (s + sigma ** 2) * (x - mu)

    return op, y.expand(samples, -1), torch.full((samples,), gamma), denoise, mean, std


# sampler, options, levels, max |mean error| / posterior std, range of std ratio (measured: see docs/score.md)
CASES = [(Langevin, {}, 200, 0.8, (0.95, 1.3)),
         (DecomposedDiffusion, {"sigma_data": 0.7}, 50, 1.0, (0.9, 1.3)),
         (DiffusionPosterior, {"zeta": 0.3}, 100, 0.7, (0.9, 1.3))]


@pytest.mark.parametrize("cls,options,levels,mean_tol,std_range", CASES, ids=[c[0].__name__ for c in CASES])
def test_samplers_match_the_exact_gaussian_posterior(cls, options, levels, mean_tol, std_range):
    op, y, gamma, denoise, mean, std = gaussian_problem()
    sampler = cls(prior="(the exact Gaussian prior's denoiser)", **options)
    draws = sampler.draw(denoise, op, y, karras_sigmas(levels, 20.0, 0.01), gamma,
                         torch.Generator().manual_seed(0)).reshape(len(y), -1).to(torch.complex128)
    error = (draws.mean(0) - mean).abs() / std
    ratio = draws.real.std(0) / std
    assert error.max() < mean_tol, error.max()
    assert std_range[0] < ratio.median() < std_range[1] and ratio.min() > 0.8 * std_range[0], ratio
    again = [sampler.draw(denoise, op, y[:3], karras_sigmas(5, 20.0, 0.01), gamma[:3], torch.Generator().manual_seed(7))
             for _ in range(2)]
    assert torch.equal(*again)


def test_batched_cg_solves_each_system():
    g = torch.Generator().manual_seed(0)
    a = torch.complex(torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g))
    op = GaussianOp(a, (2, 3))
    b = torch.complex(torch.randn(2, 2, 3, generator=g), torch.randn(2, 2, 3, generator=g))
    mu = torch.tensor([0.5, 3.0])[:, None, None]
    x = batched_cg(lambda v: op.adjoint(op.forward(v)) + mu * v, b, torch.zeros_like(b), 6)
    for i in range(2):
        exact = torch.linalg.solve(a.conj().T @ a + mu[i, 0, 0] * torch.eye(6), b[i].flatten())
        assert torch.allclose(x[i].flatten(), exact, atol=1e-4)


def test_score_network_any_grid_and_checkpoint(tmp_path, device):
    net = ScoreUNet(channels=2, width=8, levels=3).to(device)
    x = torch.randn(3, 2, 30, 22, device=device)
    out = net(x, torch.tensor([0.1, 1.0, 10.0], device=device))
    assert out.shape == x.shape and out.device.type == device.type
    # zero-initialised output layer: D(x; σ) = c_skip x, which tends to x as σ → 0
    assert torch.allclose(net(x, torch.tensor(1e-4, device=device)), x, atol=1e-4)
    path = save_checkpoint(tmp_path / "s.pt", net)
    loaded, config = load_checkpoint(path, device)
    assert config["architecture"] == "score-unet"
    assert torch.equal(loaded(x, torch.tensor(0.3, device=device)), net(x, torch.tensor(0.3, device=device)))
    complex_out = complex_denoiser(loaded)(torch.complex(x[:, 0], x[:, 1]), 0.3)
    assert complex_out.dtype == torch.complex64 and complex_out.shape == (3, 30, 22)


def test_posterior_method_mean_std_and_errors(tmp_path, device):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "score.pt", ScoreUNet(width=8, levels=2))
    g = torch.Generator().manual_seed(0)
    maps = torch.complex(torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g))
    maps = (maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()).to(device)
    weights = torch.zeros(1, 16, 16, device=device)
    weights[..., ::2] = 1
    weights[..., 6:10] = 1
    physics = SensePhysics(maps, weights)
    x = torch.complex(torch.randn(2, 16, 16, generator=g), torch.randn(2, 16, 16, generator=g)).to(device)
    y = physics.forward(x)
    method = make_method("dds", prior=str(ckpt), samples=3, levels=4, noise=0.01)
    result = method.reconstruct(y, physics)
    assert result.images.shape == (2, 16, 16) and result.std.shape == (2, 16, 16)
    assert np.all(result.std >= 0) and result.std.max() > 0
    assert result.diagnostics[0]["nfe"] == 4 and result.diagnostics[0]["samples"] == 3
    assert np.array_equal(result.images, method.reconstruct(y, physics).images)
    for name in ("dds", "langevin", "dps"):  # a slice's draws do not depend on its batch
        sampler = make_method(name, prior=str(ckpt), samples=2, levels=3, noise=0.01)
        out = sampler.reconstruct(y, physics)
        assert np.all(np.isfinite(out.images)) and out.images.shape == (2, 16, 16)
        alone = sampler.reconstruct(y[1:], physics.select([1]))
        np.testing.assert_allclose(alone.images[0], out.images[1], rtol=1e-4, atol=1e-5 * np.abs(out.images).max())
        np.testing.assert_allclose(alone.std[0], out.std[1], rtol=1e-3, atol=1e-4 * out.std.max())
    other_seed = make_method("dds", prior=str(ckpt), samples=3, levels=4, noise=0.01, seed=1).reconstruct(y, physics)
    assert np.abs(other_seed.std - result.std).max() > 1e-2 * result.std.max()
    gan = save_checkpoint(tmp_path / "gan.pt", DCGANGenerator(latent_dim=4, image_size=16, channels=2, width=4))
    with pytest.raises(MriGenpriorError, match="not a score prior"):
        make_method("dds", prior=str(gan)).reconstruct(y, physics)
    with pytest.raises(MriGenpriorError, match="is a score prior"):
        make_method("csgm", prior=str(ckpt), steps=2).reconstruct(y, physics)
    with pytest.raises(MriGenpriorError, match="method dds has no parameter 'zeta'"):
        make_method("dds", prior=str(ckpt), zeta=1.0)  # each sampler takes its own settings only


def test_noise_estimate_from_kspace_edges():
    g = torch.Generator().manual_seed(0)
    weights = torch.zeros(1, 64, 48)
    weights[..., ::3] = 1
    physics = SensePhysics(None, weights)
    y = 0.02 * torch.complex(torch.randn(2, 4, 64, 48, generator=g), torch.randn(2, 4, 64, 48, generator=g))
    y[..., 24:40, :] += 5.0  # signal in the centre rows does not move the edge estimate
    y = y * weights[:, None]
    assert torch.allclose(physics.noise_std(y), torch.full((2,), 0.02), rtol=0.1)


SHIPPED = Path(__file__).resolve().parent / "data/score_prior_64/generator.pt"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Two slices of file 3 of the shipped prior's training split (held out) and their reference."""
    planes = np.linspace(50, 139, 90).round().astype(int)[3::10][:2]
    file = write_synthetic_file(tmp_path_factory.mktemp("held") / "held_out.h5", planes, (64, 64), 8, 0.01, seed=103)
    with h5py.File(file) as f:
        return file, f["reconstruction_rss"][()]


def test_small_trained_score_prior_beats_zero_filled_at_8x(held_out):
    """The shipped 64² prior (made by `mri-genprior train`, command in its README) on a held-out
    synthetic volume: the posterior mean beats zero-filling, and its std tracks the error."""
    from scipy.stats import spearmanr

    file, target = held_out
    spec = MaskSpec("poisson", 8, 0.16)
    zf, _ = reconstruct_volume(file, make_method("zero-filled"), ReconOptions(spec, progress=False))
    recon, info = reconstruct_volume(file, make_method("dds", prior=str(SHIPPED), samples=3, levels=25),
                                     ReconOptions(spec, progress=False))
    base, ours = volume_metrics(target, zf), volume_metrics(target, recon)
    assert ours["SSIM"] > base["SSIM"] + 0.1 and ours["PSNR"] > base["PSNR"] + 3, (base, ours)
    rho = [spearmanr(s.ravel(), np.abs(r - t).ravel())[0] for s, r, t in zip(info["reconstruction_std"], recon, target)]
    assert min(rho) > 0.2, rho


def test_dps_at_8x_is_within_reach_of_l1_wavelet_at_8x(held_out):
    """On held-out slices the dps posterior mean at 8× is far above zero-filling and within
    0.02 SSIM of L1-wavelet at 8×: measured zero-filled 0.464 / 21.67, L1-wavelet
    0.966 / 31.76, dps 0.952 / 29.73 (on three slices, docs/score.md: L1-wavelet 0.968, dps
    0.959)."""
    file, target = held_out
    spec = MaskSpec("poisson", 8, 0.16)
    zf, _ = reconstruct_volume(file, make_method("zero-filled"), ReconOptions(spec, progress=False))
    l1, _ = reconstruct_volume(file, make_method("l1-wavelet"), ReconOptions(spec, progress=False))
    dps, _ = reconstruct_volume(file, make_method("dps", prior=str(SHIPPED), samples=2),
                                ReconOptions(spec, progress=False))
    base, l1_8, dps_8 = volume_metrics(target, zf), volume_metrics(target, l1), volume_metrics(target, dps)
    assert dps_8["SSIM"] > base["SSIM"] + 0.3 and dps_8["PSNR"] > base["PSNR"] + 6, (base, dps_8)
    assert dps_8["SSIM"] > l1_8["SSIM"] - 0.02, (l1_8, dps_8)


def test_the_published_samplers_run_with_the_shipped_prior_and_beat_zero_filling_at_8x(held_out):
    """Chung & Ye's predictor-corrector and Jalal et al.'s annealed Langevin with this package's
    64² prior on the held-out slices at 8×, 30 levels, one sample: measured pc 0.948 / 29.88,
    annealed 0.943 / 29.35 (zero-filled 0.458 / 21.63; more levels: docs/score.md)."""
    file, target = held_out
    spec = MaskSpec("poisson", 8, 0.16)
    zf = volume_metrics(target, reconstruct_volume(file, make_method("zero-filled"),
                                                   ReconOptions(spec, progress=False))[0])
    for name, sigma_max in (("pc", 10.0), ("annealed", 1.0)):
        method = make_method(name, prior=str(SHIPPED), samples=1, levels=30, sigma_max=sigma_max, sigma_min=0.01)
        ours = volume_metrics(target, reconstruct_volume(file, method, ReconOptions(spec, progress=False))[0])
        assert ours["SSIM"] > 0.93 and ours["PSNR"] > zf["PSNR"] + 7, (name, zf, ours)
