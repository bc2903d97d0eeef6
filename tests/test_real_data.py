"""Real scanner data: the fully sampled 8-coil brain in tests/data (BSD-3, see its README).

Retrospective 4× undersampling (fastMRI random mask, centre fraction 0.08; some tests at 8×,
0.04), scored with fastMRI's metrics against the fully sampled RSS reference, whole image.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mri_genprior import MriGenpriorError
from mri_genprior.convert import add_noise, fold_field_of_view, lower_resolution, pad_field_of_view, wrap_kspace
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.physics import DEFAULT_MAPS, ifft2c_np
from mri_genprior.masks import centred
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method
from mri_genprior.solvers.classical import LADDER

from conftest import REAL_KSPACE

SPEC = MaskSpec("random", 4, 0.08)


def scored(path, target, name, spec=SPEC, maps=DEFAULT_MAPS, **params):
    """fastMRI metrics against ``target`` of method ``name`` (with ``params``) on ``path``
    under ``spec`` with coil maps ``maps``, and the run's provenance."""
    recon, info = reconstruct_volume(path, make_method(name, **params),
                                     ReconOptions(spec, device="cpu", progress=False, maps=maps))
    return volume_metrics(target, recon), info


def wrapped(kspace, path):
    """A fastMRI file of ``kspace`` with its RSS reference at ``path``, and that reference."""
    path = wrap_kspace(kspace, path, reference=True)
    with open_volume(path) as volume:
        return path, volume.read_target()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return wrapped(np.load(REAL_KSPACE), tmp_path_factory.mktemp("real") / "brain_8coil.h5")


@pytest.fixture(scope="module")
def mask_b(tmp_path_factory):
    """The real brain under the mask fastMRI draws for another file name (7 calibration lines at 8×)."""
    return wrapped(np.load(REAL_KSPACE), tmp_path_factory.mktemp("mask_b") / "brain_mask_b.h5")


@pytest.fixture(scope="module")
def real96(tmp_path_factory):
    """The centre 96×96 of the real brain's k-space (the same field of view, lower resolution)."""
    return wrapped(lower_resolution(np.load(REAL_KSPACE), (96, 96)), tmp_path_factory.mktemp("real96") / "real96.h5")


def test_reference_is_the_rss_of_the_fully_sampled_coil_images(real):
    path, target = real
    kspace = np.load(REAL_KSPACE)
    coil_images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(0))
    assert target.shape == (1, 230, 180)
    np.testing.assert_allclose(target[0] / target.max(), rss / rss.max(), atol=1e-5)


@pytest.mark.parametrize("name,params", [("sense", {}), ("l1-wavelet", {}), ("tv", {}),
                                         ("convdecoder", {"steps": 300})])
def test_defaults_beat_zero_filled_on_a_small_crop(real96, name, params):
    """The centre 96×96 of the real brain's k-space at 4×: measured zero-filled 0.579 / 21.13,
    SENSE 0.845 / 27.04, L1-wavelet 0.908 / 30.47, TV 0.908 / 30.43, ConvDecoder (300 steps)
    0.701 / 22.76. The whole brain's table: ``python benchmarks/real_data.py --check``."""
    (zf, _), (m, _) = scored(*real96, "zero-filled"), scored(*real96, name, **params)
    assert m["SSIM"] > zf["SSIM"] + 0.05 and m["PSNR"] > zf["PSNR"] + 1.0, (name, m, zf)


def test_zs_ssl_beats_zero_filled_on_a_small_crop_and_keeps_its_best_validated_weights(real96):
    """The centre 96×96 of the real brain at 4×, 100 steps on strips of 48 rows, 16 channels:
    measured 0.865 / 28.38 against zero-filled 0.579 / 21.13 (TV at its defaults 0.908 / 30.43;
    the whole brain: docs/real_data.md)."""
    (zf, _), (m, info) = scored(*real96, "zero-filled"), scored(*real96, "zs-ssl", steps=100, validate_every=25,
                                                                 channels=16)
    record = info["diagnostics"][0]
    losses = record["validation_losses"]
    assert m["SSIM"] > zf["SSIM"] + 0.2 and m["PSNR"] > zf["PSNR"] + 5, (m, zf)
    assert record["strips"] == 48 and len(losses) == 4 and losses[-1] < losses[0]
    assert record["kept_step"] == 25 * (1 + losses.index(min(losses)))


def test_tv_converges_in_its_default_iterations(real96):
    """TV's primal-dual steps are balanced to λ (dual step 0.3√λ), so its default 300
    iterations reach the minimiser that ``-p lamda`` names: on the centre 96×96 of the real
    brain at 4× and λ = 1e-3 its image measured 0.13 % from 4000 iterations' (0.9076 SSIM
    both; 100 iterations: 2.1 %)."""
    path, target = real96
    images = [reconstruct_volume(path, make_method("tv", lamda=1e-3, **params),
                                 ReconOptions(SPEC, device="cpu", progress=False))[0]
              for params in ({}, {"max_iter": 1000})]
    gap = np.linalg.norm(images[0] - images[1]) / np.linalg.norm(images[1])
    assert gap < 0.005 and volume_metrics(target, images[0])["SSIM"] > 0.9, gap


def test_sense_beats_zero_filled_on_a_small_crop_with_four_calibration_lines(real96):
    """The centre 96×96 of the real brain's k-space at 8× (4 calibration lines; the maps
    are jsense's): measured 0.617 / 21.47 against zero-filled 0.442 / 18.94 (with the
    joint maps that were the default before: 0.526 / 19.60)."""
    spec = MaskSpec("random", 8, 0.04)
    zf, sense = (scored(*real96, name, spec)[0] for name in ("zero-filled", "sense"))
    assert sense["SSIM"] > zf["SSIM"] + 0.1 and sense["PSNR"] > zf["PSNR"] + 1.5, (sense, zf)


def test_sense_on_a_small_crop_with_eight_calibration_lines_takes_espirit_maps_from_the_rectangle(real96):
    """The centre 96×96 of the real brain's k-space at 4× (8 calibration lines): ESPIRiT
    on the 96 × 8 calibration rectangle measured 0.836 / 26.76, the maps before it (jsense
    below 9 lines; ESPIRiT on the 8 × 8 square fails there) 0.715 / 24.19, zero-filled
    0.579 / 21.13."""
    (zf, _), (sense, info) = (scored(*real96, name) for name in ("zero-filled", "sense"))
    assert info["coil_maps"] == "espirit"
    assert sense["SSIM"] > 0.8 and sense["PSNR"] > zf["PSNR"] + 5, (sense, zf)


def test_sense_at_8x_beats_zero_filled_by_a_margin_with_espirit_maps_from_eight_lines(real):
    """The real brain at 8× (8 calibration lines: 6 × 4 ESPIRiT blocks): measured
    0.667 / 23.42 against zero-filled 0.527 / 20.20. Without filling the holes of the maps'
    support inside the head: 0.589 / 21.23 (with square 4 × 4 blocks 0.647 / 22.65)."""
    path, target = real
    spec = MaskSpec("random", 8, 0.04)
    (zf, _), (sense, info) = (scored(path, target, name, spec) for name in ("zero-filled", "sense"))
    assert info["coil_maps"] == "espirit"
    assert sense["SSIM"] > zf["SSIM"] + 0.1 and sense["PSNR"] > zf["PSNR"] + 2.5, (sense, zf)


def test_espirit_maps_from_seven_lines_beat_jsense_maps(mask_b):
    """The real brain at 8× under a mask with 7 calibration lines: ``auto`` takes ESPIRiT
    on the 230 × 7 rectangle (6 × 3 blocks), measured SENSE at the λ its default chooses
    there (3.16e-2) 0.564 / 20.94 against jsense's maps 0.538 / 20.53 (at their defaults
    0.564 / 20.94 against 0.534 / 20.26; zero-filled 0.500 / 19.61)."""
    spec = MaskSpec("random", 8, 0.04)
    (auto, info), (jsense, _) = (scored(*mask_b, "sense", spec, maps, lamda=LADDER[3]) for maps in ("auto", "jsense"))
    assert info["coil_maps"] == "espirit"
    assert auto["SSIM"] > jsense["SSIM"] + 0.015 and auto["PSNR"] > jsense["PSNR"] + 0.3, (auto, jsense)


def test_cycle_spinning_lifts_l1_wavelet_on_a_small_crop(real96):
    """The centre 96×96 of the real brain's k-space at 4×, λ = 3.16e-3: the spun threshold
    measured 0.899 / 29.73 against the plain transform's 0.871 / 28.67 (with the maps before
    ESPIRiT on the calibration rectangle 0.849 / 27.64 and 0.812 / 26.75)."""
    spun, plain = (scored(*real96, "l1-wavelet", lamda=LADDER[5], cycle_spin=spin)[0] for spin in (True, False))
    assert spun["SSIM"] > plain["SSIM"] + 0.025 and spun["PSNR"] > plain["PSNR"] + 0.5, (spun, plain)


def _corner_covariance(images: np.ndarray) -> np.ndarray:
    """Coil covariance ``(C, C)`` of the four 16 × 16 corners of coil images ``(C, H, W)``."""
    x = np.concatenate([images[:, r, c].reshape(len(images), -1) for r in (slice(0, 16), slice(-16, None))
                        for c in (slice(0, 16), slice(-16, None))], axis=1)
    return x @ x.conj().T / x.shape[1]


def test_padded_field_of_view_is_the_scan_surrounded_by_its_own_coil_noise():
    """``pad_field_of_view`` (``npy_to_fastmri.py --pad-fov``): the centre of the padded coil
    images is the scan itself, and the added background has the coil noise covariance of
    the scan's 16 × 16 image corners."""
    kspace = np.load(REAL_KSPACE)
    images, original = ifft2c_np(pad_field_of_view(kspace, (256, 256))), ifft2c_np(kspace)
    inside = (slice(None), centred(256, 230), centred(256, 180))
    assert np.abs(images[inside] - original).max() < 1e-5 * np.abs(original).max()
    outside = np.ones((256, 256), bool)
    outside[inside[1:]] = False
    added = images[:, outside]
    expected, got = _corner_covariance(original), added @ added.conj().T / added.shape[1]
    assert np.abs(got - expected).max() < 0.05 * np.abs(np.diag(expected)).max(), (got, expected)


def test_added_noise_has_the_scans_coil_covariance_scaled_and_bad_factors_are_refused():
    """``add_noise`` (``npy_to_fastmri.py --noise-factor``): at factor 2 the added noise is
    white across samples with 2² − 1 = 3 times the coil covariance of the image corners, so
    the corners of the noisy scan hold 4 times the original's noise power; factors ≤ 1 and
    undersampled k-space are refused."""
    kspace = np.load(REAL_KSPACE)
    noisy = add_noise(kspace, 2.0)
    assert noisy.shape == kspace.shape and noisy.dtype == np.complex64
    expected = _corner_covariance(ifft2c_np(kspace))
    scale = np.abs(np.diag(expected)).max()
    added = (noisy - kspace).reshape(8, -1)
    assert np.abs(added @ added.conj().T / added.shape[1] - 3 * expected).max() < 0.05 * scale
    assert np.abs(_corner_covariance(ifft2c_np(noisy)) - 4 * expected).max() < 0.4 * scale
    with pytest.raises(MriGenpriorError, match="the noise factor must be above 1"):
        add_noise(kspace, 1.0)
    undersampled = kspace.copy()
    undersampled[..., ::2] = 0
    with pytest.raises(MriGenpriorError, match="adding noise needs fully sampled k-space"):
        add_noise(undersampled, 2.0)


def test_npy_script_derives_lower_resolution_and_refuses_a_smaller_padded_field_of_view_or_less_noise(tmp_path):
    script = Path(__file__).resolve().parents[1] / "data_scripts" / "npy_to_fastmri.py"
    low = tmp_path / "real96.h5"
    run = subprocess.run([sys.executable, script, REAL_KSPACE, low, "--reference", "--lower-resolution", "96", "96"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with open_volume(low) as volume:
        written = volume.read_slice(0)
    block = np.load(REAL_KSPACE)[:, centred(230, 96), centred(180, 96)]
    np.testing.assert_allclose(written / np.abs(written).max(), block / np.abs(block).max(), atol=1e-6)
    bad = tmp_path / "pad.h5"
    run = subprocess.run([sys.executable, script, REAL_KSPACE, bad, "--reference", "--pad-fov", "128", "256"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and not bad.exists()
    assert run.stderr.strip().splitlines() == ["error: expected a larger grid than the k-space's 230 x 180, "
                                              "got (128, 256)"]
    run = subprocess.run([sys.executable, script, REAL_KSPACE, bad, "--reference", "--noise-factor", "0.5"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and not bad.exists()
    assert run.stderr.strip().splitlines() == ["error: the noise factor must be above 1 (the scan's own noise), got 0.5"]


def test_folding_the_field_of_view_is_periodic_summation_of_the_coil_images(tmp_path):
    """A column at j lands on (j − (W/2 − P/2)) mod P; an object inside the centre P columns
    comes through unchanged; the script writes the wrapped brain (fold75: 180 -> 135 columns)
    with the RSS of the wrapped coil images as its reference, and refuses F outside (0, 1)."""
    rng = np.random.default_rng(0)
    images = np.zeros((2, 8, 20), np.complex64)
    images[:, :, 3] = 1 + 2j
    images[:, :, 8:12] = rng.standard_normal((2, 8, 4))
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    folded = ifft2c_np(fold_field_of_view(kspace, 0.5))  # P = 10, output column 5 = input column 10
    assert folded.shape == (2, 8, 10)
    np.testing.assert_allclose(folded[..., (3 - 5) % 10], images[..., 3], atol=1e-5)
    np.testing.assert_allclose(folded[..., 3:7], images[..., 8:12], atol=1e-5)
    script = Path(__file__).resolve().parents[1] / "data_scripts" / "npy_to_fastmri.py"
    out = tmp_path / "fold75.h5"
    run = subprocess.run([sys.executable, script, REAL_KSPACE, out, "--reference", "--fold-fov", "0.75"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with open_volume(out) as volume:
        assert volume.read_slice(0).shape == (8, 230, 135) and volume.target.shape == (1, 230, 135)
    run = subprocess.run([sys.executable, script, REAL_KSPACE, tmp_path / "bad.h5", "--fold-fov", "1.2"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and not (tmp_path / "bad.h5").exists()
    assert run.stderr.strip() == "error: the field-of-view fraction must be between 0 and 1, got 1.2"


def test_auto_maps_add_a_second_set_where_the_field_of_view_wraps_and_only_there(real96, tmp_path):
    """The 96² crop in a phase-encode field of view 0.75 as wide (the head wraps), 3×, centre
    fraction 0.2: auto maps take two sets; SENSE measured 0.854 / 25.86 with them, 0.775 /
    24.09 with one set (--maps espirit), zero-filled 0.755. (Another file name, so another
    mask: 0.749, 0.714 and 0.723, one set below zero-filling.) Unwrapped, auto takes one
    set: the same output as --maps espirit."""
    spec = MaskSpec("random", 3, 0.2)
    folded, target = wrapped(fold_field_of_view(lower_resolution(np.load(REAL_KSPACE), (96, 96)), 0.75),
                             tmp_path / "fold75.h5")
    zf, _ = scored(folded, target, "zero-filled", spec)
    (two, info), (one, one_info) = (scored(folded, target, "sense", spec, maps=maps) for maps in ("auto", "espirit"))
    assert info["map_sets"] == [2] and one_info["map_sets"] == [1]
    assert two["SSIM"] > zf["SSIM"] + 0.05 and two["PSNR"] > zf["PSNR"] + 2, (zf, two)
    assert two["SSIM"] > one["SSIM"] + 0.04 and two["PSNR"] > one["PSNR"] + 1, (one, two)
    (plain, plain_info), (explicit, _) = (scored(*real96, "sense", spec, maps=maps) for maps in ("auto", "espirit"))
    assert plain_info["map_sets"] == [1] and plain == explicit
