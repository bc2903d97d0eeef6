"""Generative-prior solvers: recovery, sign flips, untrained priors, checkpoints."""

import pickle

import numpy as np
import pytest
import sigpy.mri as mr
import torch

from conftest import GaussianOp
from mri_genprior import MriGenpriorError
from mri_genprior.metrics import volume_metrics
from mri_genprior.io import open_volume
from mri_genprior.physics import SensePhysics, crop_or_pad
from mri_genprior.priors import load_checkpoint, save_checkpoint
from mri_genprior.priors.networks import DCGANGenerator, DeepDecoder, ExpansiveReLU
from mri_genprior.recon import MaskSpec, ReconOptions, prepare_batch, reconstruct_volume, volume_mask
from mri_genprior.solvers import make_method
from mri_genprior.solvers.latent import FitOptions, fit
from mri_genprior.solvers.stages import ensemble_shrinkage, restart_std
from mri_genprior.solvers.trained import cached_prior


@pytest.fixture
def relu_problem():
    g = torch.Generator().manual_seed(0)
    net = ExpansiveReLU((10, 100, 500), seed=1, image_shape=(1, 500))
    a = (torch.randn(100, 500, generator=g) / 10).to(torch.complex64)
    op = GaussianOp(a, (1, 500))
    z0 = torch.randn(1, 10, generator=g).repeat(40, 1)
    with torch.no_grad():
        x0 = net(z0)[:, 0].to(torch.complex64)
    init = -z0 + 0.3 * torch.randn(40, 10, generator=g)  # start near the wrong basin
    return net, op, z0, x0, op.forward(x0), init


def test_plain_descent_from_minus_z0_ends_at_negative_multiple(relu_problem):
    net, op, z0, x0, y, init = relu_problem
    r = fit(op, y, net, init, FitOptions(steps=500, lr=0.5, optimizer="sgd"), (1, 500))
    cos = (r.z * z0).sum(1) / (r.z.norm(dim=1) * z0.norm(dim=1))
    stuck = cos < 0
    assert stuck.float().mean() > 0.3  # many trials stay in the spurious basin
    ratio = r.images[stuck].abs().flatten(1).norm(dim=1) / x0[stuck].abs().flatten(1).norm(dim=1)
    assert torch.all((ratio > 0.5) & (ratio < 0.9))  # a shrunken image, not x0 (H&V's −ρ_d point)


def test_sign_flip_reaches_true_basin(relu_problem):
    net, op, z0, x0, y, init = relu_problem
    r = fit(op, y, net, init, FitOptions(steps=500, lr=0.5, optimizer="sgd", sign_flip_every=10), (1, 500))
    err = (r.z - z0).norm(dim=1) / z0.norm(dim=1)
    assert r.flips >= 40 and torch.all(err < 0.05)


def _sense_problem(b=2, size=16, coils=4):
    mps = mr.birdcage_maps((coils, size, size)).astype(np.complex64)
    mps /= np.sqrt((np.abs(mps) ** 2).sum(0, keepdims=True))
    cols = np.zeros(size, bool)
    cols[size // 2 - 1: size // 2 + 1] = True  # 2 centre lines + 2 outer lines: 4x
    cols[[size // 8, size - size // 8]] = True
    weights = np.broadcast_to(cols.astype(np.float32), (b, size, size)).copy()
    return np.broadcast_to(mps, (b,) + mps.shape).copy(), weights


def test_csgm_recovers_latent_from_undersampled_multicoil(tmp_path, device):
    net = ExpansiveReLU((8, 64, 256), seed=3, image_shape=(16, 16))
    ckpt = save_checkpoint(tmp_path / "relu.pt", net)
    mps, weights = _sense_problem()
    assert weights[0].mean() <= 0.25  # >= 4x undersampled
    z0 = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x0 = net(z0)[:, 0].to(torch.complex64)
    physics = SensePhysics.from_numpy(mps, weights, device)
    y = physics.forward(x0.to(device))
    method = make_method("csgm", prior=str(ckpt), steps=600, lr=0.05, lamda_z=0.0, restarts=6)
    result = method.reconstruct(y, physics)
    rel = np.linalg.norm(result.images - x0.numpy()) / np.linalg.norm(x0.numpy())
    assert rel < 0.05
    assert not hasattr(method, "diagnostics")  # results are values, nothing is left on the method
    assert len(result.diagnostics) == 2 and all(len(d["restart_losses"]) == 6 for d in result.diagnostics)
    best = [min(d["restart_losses"]) for d in result.diagnostics]
    assert [d["final_loss"] for d in result.diagnostics] == best  # the best restart is kept


def test_dip_beats_zero_filled(one_slice_file):
    """Measured: zero-filled 0.678 / 23.37, DIP 0.776 / 24.37 (ConvDecoder 0.773 / 24.03; its
    test is on a real crop, test_real_data)."""
    import h5py

    target = h5py.File(one_slice_file)["reconstruction_rss"][()]
    spec = MaskSpec("random", 4, 0.25)
    zf, _ = reconstruct_volume(one_slice_file, make_method("zero-filled"),
                               ReconOptions(spec, device="cpu", progress=False))
    dd, info = reconstruct_volume(one_slice_file, make_method("dip", steps=400, channels=32),
                                  ReconOptions(spec, device="cpu", progress=False))
    m_zf, m_dd = volume_metrics(target, zf), volume_metrics(target, dd)
    assert m_dd["SSIM"] > m_zf["SSIM"] and m_dd["PSNR"] > m_zf["PSNR"], (m_dd, m_zf)
    assert all(len(d["steps"]) == 3 and max(d["steps"]) <= 400 and np.isfinite(d["holdout_loss"]).all()
               for d in info["diagnostics"])


def test_untrained_ensemble_is_the_shrunk_mean_of_its_single_seed_fits(synth_file):
    """``ensemble=2`` averages the fits of seeds (seed + 2b, seed + 2b + 1) for slice b; data
    consistency is affine, so with ``shrink=false`` the written image is the output of the
    single fits' mean, and by default that mean's coil k-space times the Wiener factors of
    the two fits (:func:`ensemble_shrinkage`)."""
    spec, small = MaskSpec("random", 4, 0.25), {"steps": 20, "channels": 8}
    with open_volume(synth_file) as volume:
        mask, crop, _ = volume_mask(volume, spec)
        batch = prepare_batch(volume, [0], mask, crop, True, torch.device("cpu"), maps="lowres")
    singles = np.stack([make_method("deep-decoder", ensemble=1, seed=seed, **small).reconstruct(batch.y, batch.physics)
                        .images for seed in (0, 1)])
    factors = ensemble_shrinkage(batch.physics.coil_kspace(torch.from_numpy(singles[:, 0]))[:, None]).numpy()
    unmeasured = np.broadcast_to((batch.physics.sqrt_weights == 0).numpy(), factors.shape)
    assert 0.05 < factors[unmeasured].mean() < 0.95  # shrinks, neither all nor nothing
    written = {}
    for shrink, expected in ((False, None), (True, factors)):
        recon, info = reconstruct_volume(synth_file, make_method("deep-decoder", ensemble=2, shrink=shrink, **small),
                                         ReconOptions(spec, device="cpu", progress=False, maps="lowres"))
        assert [d["seeds"] for d in info["diagnostics"]] == [[0, 1], [2, 3]]
        assert (info["diagnostics"][0]["shrink_mean"] is None) == (not shrink)
        mean = batch.physics.output(singles.mean(0), batch.y, expected) * batch.scales[:, None, None]
        np.testing.assert_allclose(recon[0], crop_or_pad(mean, recon.shape[-2:])[0], rtol=1e-4, atol=1e-5 * recon.max())
        written[shrink] = recon[0]
    assert np.abs(written[True] - written[False]).max() > 1e-3 * recon.max()
    with pytest.raises(MriGenpriorError, match="parameter ensemble"):
        make_method("dip", ensemble=0)


def test_ensemble_shrinkage_is_the_wiener_factor_of_the_members_mean():
    """Members ``a + noise``: the factors approach ``1 − σ² / (n |a|²)``; members that agree
    keep their mean (factor 1); members whose mean is drowned in their spread get 0."""
    g = torch.Generator().manual_seed(0)
    n, a, sigma = 4, 1.0, 1.0
    noise = torch.randn((n, 1, 2, 64, 64), generator=g, dtype=torch.complex64) * sigma
    factors = ensemble_shrinkage(a + noise)
    assert factors.shape == (1, 2, 64, 64) and factors.min() >= 0 and factors.max() <= 1
    assert abs(factors.mean().item() - (1 - sigma ** 2 / (n * a ** 2))) < 0.05
    same = torch.full((3, 1, 2, 8, 8), 2 + 1j, dtype=torch.complex64)
    assert torch.equal(ensemble_shrinkage(same), torch.ones(1, 2, 8, 8))
    drowned = ensemble_shrinkage(0.01 + noise)
    assert drowned.median() == 0 and drowned.mean() < 0.15
    with pytest.raises(ValueError, match="at least 2"):
        ensemble_shrinkage(noise[:1])


@pytest.mark.parametrize("name", ["sign-flip", "sparse-gen", "image-adaptive"])
def test_trained_prior_methods_run_and_fit_data(name, tmp_path, device):
    torch.manual_seed(0)
    net = DCGANGenerator(latent_dim=16, image_size=16, channels=2, width=8)
    ckpt = save_checkpoint(tmp_path / "dcgan.pt", net)
    mps, weights = _sense_problem(b=1)
    rng = np.random.default_rng(1)
    y = (rng.standard_normal((1, 4, 16, 16)) * weights[:, None]).astype(np.complex64)
    params = {"prior": str(ckpt), "steps": 30, "restarts": 2}
    if name == "image-adaptive":
        params.update(adapt_steps=20)
    x = make_method(name, **params).reconstruct(torch.from_numpy(y).to(device),
                                                SensePhysics.from_numpy(mps, weights, device)).images
    assert x.shape == (1, 16, 16) and np.isfinite(x).all()


def test_crop_or_pad_pads_and_crops_tensors_centrally_as_arrays():
    x = torch.ones(1, 4, 4, dtype=torch.complex64)
    big = crop_or_pad(x, (8, 6))
    assert big.shape == (1, 8, 6) and big.abs().sum() == 16 and big[0, 2:6, 1:5].abs().sum() == 16
    assert torch.equal(crop_or_pad(big, (4, 4)), x)
    odd = torch.arange(35.0).reshape(1, 5, 7)
    for shape in ((3, 4), (8, 9), (3, 9)):
        np.testing.assert_array_equal(crop_or_pad(odd, shape).numpy(), crop_or_pad(odd.numpy(), shape))


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    net = DCGANGenerator(latent_dim=8, image_size=16, channels=2, width=4)
    path = save_checkpoint(tmp_path / "g.pt", net)
    loaded, config = load_checkpoint(path)
    z = torch.randn(3, 8)
    assert torch.equal(loaded(z), net(z)) and config["architecture"] == "dcgan"
    payload = torch.load(path, weights_only=True)
    payload["config"]["width"] = 8  # config no longer matches the weights
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(MriGenpriorError, match="do not match architecture 'dcgan'"):
        load_checkpoint(tmp_path / "bad.pt")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"config": {"architecture": "dcgan"}, "state_dict": Evil()}, f)
    with pytest.raises(MriGenpriorError, match="refused or unreadable checkpoint"):
        load_checkpoint(path)


def test_deep_decoder_any_output_size():
    net = DeepDecoder((37, 50), channels=8, layers=3)
    out = net(net.fixed_input(torch.Generator().manual_seed(0)))
    assert out.shape == (1, 2, 37, 50)


def test_restart_std_map_written_beside_reconstruction(tmp_path, synth_file):
    import h5py

    from mri_genprior.recon import ReconOptions, reconstruct_file

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "g.pt", DCGANGenerator(latent_dim=8, image_size=32, channels=2, width=4))
    method = make_method("csgm", prior=str(ckpt), steps=20, restarts=3, std_map=True, good_restart_ratio=1e9)
    out = reconstruct_file(synth_file, tmp_path / "out", method,
                           ReconOptions(MaskSpec("random", 4, 0.25), device="cpu", progress=False))
    with h5py.File(out) as f:
        std, recon = f["reconstruction_std"][()], f["reconstruction"][()]
        assert std.shape == recon.shape and np.isfinite(std).all() and std.max() > 0
    # with every restart "good", the map is the population std of |x| over the 3 restarts
    images = torch.stack([torch.full((4, 4), v) for v in (1.0, 2.0, 4.0)]).to(torch.complex64)
    got = restart_std(images, torch.tensor([[1.0, 2.0, 3.0]]), 1e9)
    np.testing.assert_allclose(got, np.full((1, 4, 4), np.std([1.0, 2.0, 4.0])), rtol=1e-6)
    # ratio 1.5: only losses <= 1.5 × 1.0 count, i.e. restart 0 alone: no spread
    np.testing.assert_allclose(restart_std(images, torch.tensor([[1.0, 2.0, 3.0]]), 1.5), np.zeros((1, 4, 4)),
                               atol=1e-7)


def test_image_adaptive_moves_the_weights_of_its_own_copy_only(tmp_path, device):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "g.pt", DCGANGenerator(latent_dim=16, image_size=16, channels=2, width=8))
    mps, weights = _sense_problem(b=1)
    y = (np.random.default_rng(2).standard_normal((1, 4, 16, 16)) * weights[:, None]).astype(np.complex64)
    csgm = make_method("csgm", prior=str(ckpt), steps=30, restarts=1, seed=3)
    iagan = make_method("image-adaptive", prior=str(ckpt), steps=30, restarts=1, seed=3, adapt_steps=30,
                        adapt_lr=1e-2, holdout=0.0)
    physics = SensePhysics.from_numpy(mps, weights, device)
    yt = torch.from_numpy(y).to(device)
    prior, _ = cached_prior(str(ckpt), str(device))
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    x_csgm = csgm.reconstruct(yt, physics).images
    x_iagan = iagan.reconstruct(yt, physics).images
    fit_err = lambda x: np.linalg.norm(physics.forward(torch.from_numpy(x).to(device)).cpu().numpy() - y)  # noqa
    assert fit_err(x_iagan) < 0.95 * fit_err(x_csgm)  # adapting the weights fits the data better
    # the shared (cached) prior is never mutated: same weights, no gradients, same answer again
    assert all(torch.equal(before[k], v) for k, v in prior.state_dict().items())
    assert not any(p.requires_grad or p.grad is not None for p in prior.parameters())
    np.testing.assert_allclose(csgm.reconstruct(yt, physics).images, x_csgm, atol=1e-6)


def test_divergent_fit_backs_off_and_never_returns_nan(relu_problem):
    net, op, z0, x0, y, init = relu_problem
    huge = FitOptions(steps=300, lr=1e3, optimizer="sgd")  # gradient descent blows up to Inf/NaN
    r = fit(op, y, net, init, huge, (1, 500))
    assert r.backoffs > 0 and torch.isfinite(r.images).all() and torch.isfinite(r.z).all()
    with pytest.raises(MriGenpriorError, match="diverged"):
        fit(op, y, net, init, FitOptions(steps=200, lr=1e30, optimizer="sgd", max_backoffs=2), (1, 500))
