"""Every registered method through the pipeline, and any physics through every kind of method."""

import json

import h5py
import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
import torch

from mri_genprior import MriGenpriorError
from mri_genprior.io import open_volume
from mri_genprior.physics import SigpyPhysics
from mri_genprior.priors import save_checkpoint
from mri_genprior.priors.denoiser import ScoreUNet
from mri_genprior.priors.networks import DCGANGenerator, TotalVariationProx
from mri_genprior.recon import (MaskSpec, ReconOptions, prepare_batch, reconstruct_batch, reconstruct_file,
                                reconstruct_volume, volume_mask)
from mri_genprior.solvers import METHODS, make_method
from mri_genprior.solvers.base import DIAGNOSTICS

# test-sized settings per method kind (the registry decides which methods exist)
TINY = {"SigpyRecon": {"max_iter": 10}, "TrainedPrior": {"steps": 5, "restarts": 2, "adapt_steps": 3},
        "UntrainedPrior": {"steps": 5, "channels": 8}, "PosteriorSampling": {"samples": 2, "levels": 3},
        "ZeroShotSSL": {"steps": 3, "channels": 4, "unrolls": 2, "validate_every": 2}}


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    """A generator checkpoint for each kind of prior-taking method."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("prior")
    return {"TrainedPrior": str(save_checkpoint(out / "g.pt", DCGANGenerator(latent_dim=8, image_size=32, channels=1,
                                                                             width=4))),
            "PosteriorSampling": str(save_checkpoint(out / "score.pt", ScoreUNet(width=8, levels=2)))}


def _kind(entry):
    """The method family of a registry entry: the first class in its MRO named in TINY."""
    return next((cls.__name__ for cls in entry.cls.__mro__ if cls.__name__ in TINY), None)


def _tiny(name, prior):
    entry = METHODS[name]
    params = {k: v for k, v in TINY.get(_kind(entry), {}).items()
              if k in entry.parameters() and not (k == "adapt_steps" and not entry.defaults.get(k))}
    if entry.takes_prior:
        params["prior"] = prior[_kind(entry)]
    return make_method(name, **params)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_registered_method_file_in_submission_out(name, prior, synth_file, tmp_path):
    out = reconstruct_file(synth_file, tmp_path, _tiny(name, prior),
                           ReconOptions(MaskSpec("random", 4, 0.25), device="cpu", progress=False))
    with h5py.File(out) as f, h5py.File(synth_file) as src:
        recon = f["reconstruction"][()]
        assert recon.dtype == np.float32 and recon.shape == src["reconstruction_rss"].shape
        assert np.isfinite(recon).all() and recon.max() > 0
        assert f.attrs["method"] == name
        diagnostics = json.loads(f.attrs["diagnostics"]) if name != "zero-filled" else []
    assert [p.name for p in tmp_path.iterdir()] == [synth_file.name]  # no temporaries left
    assert len(diagnostics) == (0 if name == "zero-filled" else 2)
    for record in diagnostics:  # the common keys (solvers.base.DIAGNOSTICS)
        assert DIAGNOSTICS.keys() <= record.keys() and record["method"] == name and record["seconds"] > 0
        for steps, stop in zip(*(np.atleast_1d(record[k]) for k in ("steps", "stopped_by"))):
            assert steps >= 1 and stop in ("steps", "validation")


@pytest.mark.parametrize("name", ["sense", "tv", "convdecoder", "zs-ssl", "dds", "pc"])
def test_methods_run_with_two_sets_of_maps(name, prior, tmp_path):
    """Soft-SENSE (``--maps espirit2``): one image per set side by side, and the written image
    the RSS of the data-consistent coil images, as with one set."""
    from mri_genprior.experiments.synthetic import write_synthetic_file

    path = write_synthetic_file(tmp_path / "tiny.h5", [90], (32, 32), 4, 0.01, 5)
    recon, info = reconstruct_volume(path, _tiny(name, prior),
                                     ReconOptions(MaskSpec("random", 3, 0.3), "espirit2", device="cpu", progress=False))
    assert info["map_sets"] == [2] and recon.shape == (1, 32, 32) and np.isfinite(recon).all() and recon.max() > 0


def test_registry_defaults_define_the_methods():
    flip = make_method("sign-flip", prior="p.pt")
    assert flip.sign_flip_every == 10 and flip.name == "sign-flip"
    assert make_method("csgm", prior="p.pt").sign_flip_every == 0
    assert make_method("sparse-gen", prior="p.pt").lamda_nu > 0
    assert make_method("dip").network == "dip" and make_method("convdecoder").kernel_size == 3
    assert {n for n, e in METHODS.items() if e.takes_prior} == {"csgm", "sign-flip", "sparse-gen", "image-adaptive",
                                                                      "dds", "dps", "langevin", "annealed", "pc"}
    published = make_method("pc", prior="p.pt")
    assert (type(published).__name__, published.schedule, published.levels, published.nfe) == (
        "PredictorCorrector", "geometric", 2000, 4000)
    assert make_method("annealed", prior="p.pt").nfe == 3465


@pytest.fixture(scope="module")
def radial_problem():
    """A non-Cartesian (radial) 4-coil acquisition of a 32×32 Shepp-Logan phantom."""
    n, coils = 32, 4
    image = sp.shepp_logan((n, n)).astype(np.complex64)
    mps = mr.birdcage_maps((coils, n, n)).astype(np.complex64)
    mps /= np.sqrt((np.abs(mps) ** 2).sum(0, keepdims=True))
    coord = mr.radial((24, 48, 2), (n, n), golden=True).astype(np.float32)  # 24 spokes: under-sampled
    linop = mr.linop.Sense(mps, coord=coord)
    rng = np.random.default_rng(0)
    y = linop(image)
    y = (y + 0.01 * np.abs(y).mean() * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape)))
    return linop, torch.from_numpy(y.astype(np.complex64))[None], image


@pytest.mark.parametrize("name,params", [("sense", {"lamda": 0.01}), ("l1-wavelet", {"lamda": 0.003})])
def test_non_cartesian_sigpy_sense_drives_classical_methods(radial_problem, name, params):
    linop, y, image = radial_problem
    physics = SigpyPhysics([linop])
    assert physics.adjointness_test() < 1e-5
    result = reconstruct_batch(make_method(name, **params), y, physics)
    x = result.images[0]
    # compare up to the best real scale: the gridding adjoint has no density compensation
    def error(est):
        est = np.abs(est)
        scale = np.vdot(est, np.abs(image)).real / np.vdot(est, est).real
        return np.linalg.norm(scale * est - np.abs(image)) / np.linalg.norm(image)

    adjoint = physics.zero_filled(y).numpy()[0]
    assert error(x) < 0.6 * error(adjoint), (error(x), error(adjoint))
    assert error(x) < 0.35


def test_non_cartesian_sigpy_sense_drives_a_generative_method(radial_problem, tmp_path):
    """CSGM through a radial SigPy Sense recovers an image in its generator's range."""
    from mri_genprior.priors.networks import ExpansiveReLU

    linop, _, _ = radial_problem
    net = ExpansiveReLU((8, 64, 1024), seed=3, image_shape=(32, 32))
    z0 = torch.randn(1, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        x0 = net(z0)[:, 0].to(torch.complex64)
    physics = SigpyPhysics([linop])
    y = physics.forward(x0)
    method = make_method("csgm", prior=str(save_checkpoint(tmp_path / "relu.pt", net)), steps=400, lamda_z=0.0,
                         restarts=4)
    x = reconstruct_batch(method, y, physics).images
    assert np.linalg.norm(x - x0.abs().numpy()) / np.linalg.norm(x0.numpy()) < 0.05


def test_zs_ssl_trains_on_non_cartesian_physics_with_whole_images(radial_problem):
    """Without rows that separate (radial k-space) every step takes the whole image: 10 steps
    measured a relative error of 0.47 against the phantom (the adjoint image, best scaled: 0.79)."""
    linop, y, image = radial_problem
    result = reconstruct_batch(make_method("zs-ssl", steps=10, validate_every=5, channels=8, unrolls=2, cg_steps=3),
                               y, SigpyPhysics([linop]))
    record = result.diagnostics[0]
    assert record["strips"] is None and len(record["validation_losses"]) == 2
    assert np.linalg.norm(result.images[0] - np.abs(image)) / np.linalg.norm(image) < 0.6


def test_zs_ssl_is_seeded_and_refuses_bad_fractions(synth_file):
    with open_volume(synth_file) as volume:
        mask, crop, _ = volume_mask(volume, MaskSpec("random", 4, 0.25))
        batch = prepare_batch(volume, [0], mask, crop, True, torch.device("cpu"))
    tiny = {"steps": 4, "channels": 4, "unrolls": 2, "cg_steps": 3, "validate_every": 2}
    first, again, other = (make_method("zs-ssl", seed=seed, **tiny).reconstruct(batch.y, batch.physics).images
                           for seed in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-4 * np.abs(first).max()
    for params, message in (({"rho": 1.5}, "parameter rho"), ({"holdout": 0}, "parameter holdout"),
                            ({"steps": 0}, "parameter steps")):
        with pytest.raises(MriGenpriorError, match=message):
            make_method("zs-ssl", **params)


def test_total_variation_prox_solves_sigpys_tv_denoising_problem(rng):
    """``TotalVariationProx`` against SigPy: ``min_z ½‖z − x‖² + t‖Gz‖₁`` with G SigPy's circular
    ``FiniteDifference`` (the same anisotropic TV), solved by ``LinearLeastSquares`` (primal-dual,
    2000 iterations). Measured: objective 0.22 % above SigPy's after 20 dual steps, 0.001 % after 300."""
    x = torch.from_numpy((rng.standard_normal((1, 24, 20)) + 1j * rng.standard_normal((1, 24, 20))).astype(np.complex64))
    x += 3 * (torch.arange(24)[:, None] > 11)  # an edge to keep
    t = 0.4
    grad = sp.linop.FiniteDifference(x.shape)

    def objective(z):
        z = np.asarray(z, np.complex128)
        return 0.5 * np.sum(np.abs(z - x.numpy()) ** 2) + t * np.sum(np.abs(grad * z))

    reference = sp.app.LinearLeastSquares(sp.linop.Identity(x.shape), x.numpy(), proxg=sp.prox.L1Reg(grad.oshape, t),
                                          G=grad, max_iter=2000, show_pbar=False).run()
    best = objective(reference)
    few, many = (TotalVariationProx(t, n)(x).detach().numpy() for n in (20, 300))
    assert objective(few) < 1.02 * best and objective(many) < 1.001 * best < objective(x.numpy())
    prox = TotalVariationProx(t, 20)
    prox(x).abs().sum().backward()
    assert torch.isfinite(prox.log_threshold.grad) and prox.log_threshold.grad != 0
    flat = torch.full((1, 8, 8), 2 + 1j)
    torch.testing.assert_close(TotalVariationProx(t, 20)(flat), flat)  # a constant image has no TV


def test_ensemble_shrinkage_is_refused_on_non_cartesian_physics_before_any_fit(radial_problem):
    """Shrinkage acts on unmeasured Cartesian coil k-space; a radial physics has none."""
    linop, y, _ = radial_problem
    physics = SigpyPhysics([linop])
    with pytest.raises(MriGenpriorError, match="shrink=false"):
        make_method("deep-decoder", ensemble=2, steps=10**6).reconstruct(y, physics)  # fails at once, not after fits
    with pytest.raises(MriGenpriorError, match="shrink=false"):
        physics.output(np.ones((1,) + physics.image_shape, np.complex64), y, np.ones((1, 1) + physics.image_shape))
    x = reconstruct_batch(make_method("deep-decoder", ensemble=2, shrink=False, steps=5, channels=4), y, physics).images
    assert x.shape == (1,) + physics.image_shape and np.isfinite(x).all()


@pytest.mark.parametrize("name,params", [("tv", {"lamda": v}) for v in (-1e-3, float("nan"), float("inf"))]
                         + [("dds", {"prior": "score.pt", "noise": -0.01})])
def test_a_negative_or_non_finite_weight_or_noise_is_refused(name, params):
    key = next(k for k in params if k != "prior")
    with pytest.raises(MriGenpriorError, match=f"parameter {key}: expected a finite number >= 0 or 'auto'"):
        make_method(name, **params)


@pytest.mark.parametrize("name,params,bar", [("convdecoder", {"steps": 5, "channels": 8, "ensemble": 2}, "fit 2/2"),
                                             ("l1-wavelet", {"max_iter": 10}, "λ ladder")])
def test_inner_progress_bars_show_with_the_pipelines_bar_and_change_nothing(synth_file, capsys, name, params, bar):
    spec, method = MaskSpec("random", 4, 0.25), make_method(name, **params)
    shown, _ = reconstruct_volume(synth_file, method, ReconOptions(spec, device="cpu", batch_size=1, progress=True))
    err = capsys.readouterr().err
    assert bar in err and err.count(bar) >= 2  # drawn, then updated
    quiet, _ = reconstruct_volume(synth_file, method, ReconOptions(spec, device="cpu", batch_size=1, progress=False))
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(shown, quiet)


def test_maps_free_decoder_returns_coil_images_written_as_their_consistent_rss(rng):
    """form=coils: the method returns the C coil images; the pipeline writes the RSS of the
    coil images with the measured samples restored (measured k-space kept exactly)."""
    from mri_genprior.physics import SensePhysics, fft2c, ifft2c

    b, c, n = 1, 3, 16
    weights = np.repeat((rng.random((1, 1, n)) < 0.5).astype(np.float32), n, axis=1)
    physics = SensePhysics.from_numpy(None, weights, "cpu")  # the pipeline's physics of a maps-free method
    y = torch.from_numpy((rng.standard_normal((b, c, n, n)) + 1j * rng.standard_normal((b, c, n, n)))
                         .astype(np.complex64)) * torch.from_numpy(weights)
    method = make_method("deep-decoder", form="coils", steps=5, ensemble=1, channels=8, layers=2)
    coils = method.reconstruct(y, physics).images
    assert coils.shape == (b, c, n, n)
    written = reconstruct_batch(method, y, physics).images
    kspace = torch.where(torch.from_numpy(weights) > 0, y, fft2c(torch.from_numpy(coils)))
    np.testing.assert_allclose(written, ifft2c(kspace).abs().pow(2).sum(1).sqrt().numpy(), rtol=1e-4, atol=1e-6)
