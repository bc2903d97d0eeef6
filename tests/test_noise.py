"""Coil noise covariance from the k-space edges, prewhitening, the noise variance from the
calibration matrix's null space and the noise floor of written images."""

import numpy as np
import pytest
import torch

from conftest import REAL_KSPACE, crandn
from mri_genprior.physics import SensePhysics, fft2c, ifft2c, noise_covariance, prewhiten_coils, whitening_factor
from mri_genprior.physics.noise import calibration_noise_variance, edge_rows
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_kspace, reconstruct_volume
from mri_genprior.solvers import make_method


def _correlation(samples):
    cov = samples @ samples.conj().T / samples.shape[1]
    d = np.sqrt(np.real(np.diag(cov)))
    return np.abs(cov) / np.outer(d, d), d


def _correlated_kspace(rng, coils=6, h=256, w=128):
    """Smooth-object coil k-space plus noise of a known covariance; returns (kspace, covariance, weights)."""
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    image = 20 * np.exp(-(xx ** 2 + yy ** 2) / 0.1)
    phases = np.exp(1j * rng.uniform(0, 2 * np.pi, (coils, 1, 1)) * (1 + xx + yy))
    signal = fft2c(torch.from_numpy((image * phases).astype(np.complex64))).numpy()
    mix = np.eye(coils) + 0.2 * crandn(rng, (coils, coils))
    cov = mix @ mix.conj().T
    noise = (mix @ crandn(rng, (coils, h * w))).reshape(coils, h, w) / np.sqrt(2)
    weights = np.broadcast_to(rng.random(w) < 0.5, (h, w)).astype(np.float32)
    return ((signal + noise) * weights).astype(np.complex64), cov, weights


def test_noise_covariance_recovers_a_known_covariance(rng):
    kspace, cov, weights = _correlated_kspace(rng)
    estimate = noise_covariance(kspace, weights)
    assert np.linalg.norm(estimate - cov) < 0.1 * np.linalg.norm(cov)


def test_whitened_noise_is_white_with_the_same_mean_power(rng):
    kspace, cov, weights = _correlated_kspace(rng)
    factor = whitening_factor(kspace, weights)
    np.testing.assert_allclose(factor @ factor.conj().T, cov / np.mean(np.diag(cov).real), atol=0.1)
    white = prewhiten_coils(kspace, factor)
    e, w = edge_rows(kspace.shape[1]), kspace.shape[2]
    corr, std = _correlation(white[:, :e, :w // 4][:, weights[:e, :w // 4] > 0])
    raw_corr, raw_std = _correlation(kspace[:, :e, :w // 4][:, weights[:e, :w // 4] > 0])
    assert corr[~np.eye(len(corr), dtype=bool)].max() < 0.1 < raw_corr[~np.eye(len(corr), dtype=bool)].max()
    assert np.abs(std / raw_std.mean() - 1).max() < 0.1  # equal coil noise, mean power kept


def test_no_estimate_without_edge_samples_or_with_dependent_coils(rng):
    kspace, _, weights = _correlated_kspace(rng)
    e = edge_rows(kspace.shape[1])
    cut = kspace.copy()
    cut[:, :e] = cut[:, -e:] = 0  # e.g. asymmetric echo or zero-padded readout edges
    assert whitening_factor(cut, weights) is None
    dependent = np.concatenate([kspace, kspace[:1] + kspace[1:2]])  # a coil that is the sum of two others
    assert whitening_factor(dependent, weights) is None


def test_real_coil_noise_is_decorrelated_by_the_other_edge():
    """On the real brain, a whitening estimated from the top k-space corners alone whitens the bottom ones."""
    kspace = np.load(REAL_KSPACE)
    c, h, w = kspace.shape
    e = edge_rows(h)
    top = np.zeros((h, w), np.float32)
    top[:e] = 1
    factor = whitening_factor(kspace, top)
    cols = np.r_[0:w // 4, w - w // 4:w]
    off = ~np.eye(c, dtype=bool)
    raw, _ = _correlation(kspace[:, -e:, cols].reshape(c, -1))
    white, std = _correlation(prewhiten_coils(kspace, factor)[:, -e:, cols].reshape(c, -1))
    assert raw[off].max() > 0.2 and white[off].max() < 0.1, (raw[off].max(), white[off].max())
    assert np.abs(std / std.mean() - 1).max() < 0.1


def test_outputs_are_rss_images_of_the_coils_as_acquired(rng):
    """With a whitening, the zero-filled image and the data-consistent output mix the coils back."""
    kspace, _, weights = _correlated_kspace(rng, h=64, w=64)
    factor = whitening_factor(kspace, weights)
    white = torch.from_numpy(prewhiten_coils(kspace, factor))[None]
    raw_rss = ifft2c(torch.from_numpy(kspace)).abs().pow(2).sum(0).sqrt().numpy()
    physics = SensePhysics.from_numpy(crandn(rng, (1, 6, 64, 64)), weights[None], "cpu", coil_mix=factor[None])
    np.testing.assert_allclose(physics.zero_filled(white)[0].real.numpy(), raw_rss, rtol=1e-3, atol=1e-3)
    out = physics.output(crandn(rng, (1, 64, 64)), white)  # measured samples restored, coils mixed back
    full = SensePhysics.from_numpy(physics.maps.numpy(), np.ones((1, 64, 64), np.float32), "cpu",
                                   coil_mix=factor[None])
    assert not np.allclose(out, raw_rss, rtol=0.1)
    np.testing.assert_allclose(full.output(np.zeros((1, 64, 64), np.complex64),
                                           torch.from_numpy(prewhiten_coils(kspace, factor))[None])[0],
                               raw_rss, rtol=1e-3, atol=1e-3)


def test_pipeline_prewhitens_by_default_and_records_it():
    real = np.load(REAL_KSPACE)
    on, info_on = reconstruct_kspace(real, make_method("zero-filled"), name="brain_8coil.h5")
    off, info_off = reconstruct_kspace(real, make_method("zero-filled"), name="brain_8coil.h5",
                                       options=ReconOptions(prewhiten=False, progress=False))
    assert info_on["prewhitened_slices"] == 1 and info_off["prewhitened_slices"] == 0
    np.testing.assert_allclose(on, off, rtol=1e-3, atol=1e-4 * off.max())  # the baseline is unchanged
    _, info = reconstruct_kspace(real[0], make_method("zero-filled"))
    assert info["prewhitened_slices"] == 0  # one coil: nothing to whiten


def test_no_noise_estimate_where_the_corners_hold_coherent_signal(synth_file):
    """The synthetic scans' k-space corners are dominated by signal (low noise, sharp edges)."""
    _, info = reconstruct_volume(synth_file, make_method("zero-filled"),
                                 ReconOptions(MaskSpec("random", 4, 0.25), device="cpu", progress=False))
    assert info["prewhitened_slices"] == 0


@pytest.mark.parametrize("prewhiten", [True, False])
def test_cli_no_prewhiten_flag(tmp_path, prewhiten):
    import h5py

    from mri_genprior.cli import main

    args = ["reconstruct", str(REAL_KSPACE), "-o", str(tmp_path), "--method", "zero-filled", "-q"]
    assert main(args + ([] if prewhiten else ["--no-prewhiten"])) == 0
    with h5py.File(tmp_path / "kspace.h5") as f:
        assert f.attrs["prewhitened_slices"] == (1 if prewhiten else 0)


@pytest.mark.parametrize("coils, width", [(8, 8), (16, 4)])
def test_calibration_null_space_gives_the_noise_variance_where_signal_fills_the_edges(rng, coils, width):
    """A sharp-edged object (its k-space edges hold as much signal as noise): the lower half
    of the calibration matrix's eigenvalues still gives the noise variance."""
    import sigpy.mri as mr

    image = np.zeros((96, 64))
    image[24:72, 16:48] = 1
    kspace = fft2c(torch.from_numpy((mr.birdcage_maps((coils, 96, 64)) * image).astype(np.complex64))).numpy()
    variance = 0.01 * np.mean(np.abs(kspace) ** 2)
    kspace = kspace + np.sqrt(variance) * crandn(rng, kspace.shape) / np.sqrt(2)
    estimate = calibration_noise_variance(kspace[:, :, 32 - width // 2: 32 - width // 2 + width])
    assert estimate == pytest.approx(variance, rel=0.25)
    assert calibration_noise_variance(kspace[:, :6, :3]) is None  # fewer rows than twice the columns


def test_written_rss_carries_the_noise_the_unmeasured_samples_would_have_added():
    """Real brain, 4×: the floor is the fully sampled RSS's noise power (its corners) times
    the unmeasured fraction; the written image is √(RSS² + floor²); zero-filled gets none."""
    from mri_genprior.physics import ifft2c_np, rss

    real = np.load(REAL_KSPACE)
    reference = rss(ifft2c_np(real), axis=0)
    corner_power = np.mean([np.mean(c ** 2) for c in (reference[:12, :12], reference[:12, -12:],
                                                      reference[-12:, :12], reference[-12:, -12:])])
    sense = make_method("sense", lamda=1e-2)
    on, info = reconstruct_kspace(real, sense, name="brain_8coil.h5")
    off, info_off = reconstruct_kspace(real, sense, name="brain_8coil.h5",
                                       options=ReconOptions(noise_floor=False, progress=False))
    floor = info["noise_floor"][0]
    assert floor == pytest.approx(np.sqrt((1 - 1 / info["acceleration"]) * corner_power), rel=0.15)
    assert info_off["noise_floor"] == [0.0]
    np.testing.assert_allclose(on, np.sqrt(off.astype(np.float64) ** 2 + floor ** 2), rtol=1e-4)
    _, info_zf = reconstruct_kspace(real, make_method("zero-filled"), name="brain_8coil.h5")
    assert info_zf["noise_floor"] == [0.0]


def test_cli_no_noise_floor_flag(tmp_path):
    import json

    import h5py

    from mri_genprior.cli import main

    args = ["reconstruct", str(REAL_KSPACE), "--method", "sense", "-p", "lamda=0.01", "-q"]
    assert main(args + ["-o", str(tmp_path / "on")]) == 0
    assert main(args + ["-o", str(tmp_path / "off"), "--no-noise-floor"]) == 0
    with h5py.File(tmp_path / "on/kspace.h5") as on, h5py.File(tmp_path / "off/kspace.h5") as off:
        assert json.loads(on.attrs["noise_floor"])[0] > 0 and json.loads(off.attrs["noise_floor"]) == [0.0]
        assert np.all(on["reconstruction"][()] > off["reconstruction"][()])
