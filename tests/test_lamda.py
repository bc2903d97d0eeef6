"""Automatic λ of the classical solvers: the ladder, its refinement, the final solve's start, cycle spinning."""

import h5py
import numpy as np
import pytest
import sigpy as sp

from mri_genprior import MriGenpriorError
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method


def test_tv_without_regularisation_runs_as_least_squares(synth_file):
    """λ = 0: the dual step √λ = 0 would stall the primal-dual solver, so SigPy's σ = 1 is
    used; 100 iterations of least squares then beat zero-filling (measured 0.83 against 0.67)."""
    with h5py.File(synth_file) as f:
        target = f["reconstruction_rss"][()]
    spec = MaskSpec("random", 4, 0.25)
    tv, zf = (reconstruct_volume(synth_file, make_method(name, **params),
                                 ReconOptions(spec, device="cpu", progress=False))[0]
              for name, params in (("tv", {"lamda": 0.0}), ("zero-filled", {})))
    assert np.isfinite(tv).all()
    assert volume_metrics(target, tv)["SSIM"] > volume_metrics(target, zf)["SSIM"] + 0.1


def test_lamda_ladder_stops_after_two_worse_rungs_but_not_below_a_best_top_rung():
    from mri_genprior.solvers.classical import ladder_done

    assert ladder_done([10, 9, 5, 6, 6])
    assert not ladder_done([10, 9, 5, 6])             # one rung after the best
    assert not ladder_done([10, 9, 5, 5.4, 6])        # 5.4 is within 10 % of the best
    assert not ladder_done([32.3, 36.0, 35.6])        # a bump below the (near-zero) top rung
    assert not ladder_done([1.15, 1.0, 1.14, 1.40])   # a dip on the top rungs: the ladder goes on
    assert ladder_done([1.15, 1.0, 1.14, 1.40, 1.45])


def test_lamda_on_the_top_rungs_gives_way_to_a_rung_below_within_ten_percent():
    from mri_genprior.solvers.classical import chosen_rung

    # validation errors measured on a synthetic 16-coil 96² scan at 8× (4 calibration lines)
    bump = [1.152, 1.000, 1.136, 1.401, 1.230, 1.124, 1.081, 1.053, 1.046, 1.049, 1.068]
    assert chosen_rung(bump) == 8
    assert chosen_rung([1.152, 1.000, 1.136, 1.401, 1.230, 1.124]) == 1   # nothing below within 10 %
    assert chosen_rung([3.3, 2.9, 2.0, 1.4, 1.16, 1.04, 1.0, 1.05, 1.2]) == 6  # one basin: its minimum


def test_auto_lamda_passes_a_dip_on_the_top_rungs_of_a_small_many_coil_scan(tmp_path):
    """The scan whose errors the test above quotes (the mask is seeded by the file name):
    L1-wavelet measured 0.634 SSIM at λ = 1e-4 (grid best 0.645, zero-filled 0.353); the
    plain minimum chose λ = 0.316 and 0.540."""
    from mri_genprior.experiments.synthetic import write_synthetic_file

    path = write_synthetic_file(tmp_path / "s16_96.h5", [90], (96, 96), 16, 0.03, 1)
    with open_volume(path) as volume:
        target = volume.read_target()
    recon, info = reconstruct_volume(path, make_method("l1-wavelet"),
                                     ReconOptions(MaskSpec("random", 8, 0.04), device="cpu", progress=False))
    assert info["diagnostics"][0]["lamda"] <= 1e-2
    assert volume_metrics(target, recon)["SSIM"] > 0.6


@pytest.fixture(scope="module")
def s12_64(tmp_path_factory):
    """A synthetic 12-coil 64² scan (the file name seeds the mask) and its reference."""
    from mri_genprior.experiments.synthetic import write_synthetic_file

    path = write_synthetic_file(tmp_path_factory.mktemp("s12") / "s12_64.h5", [90], (64, 64), 12, 0.03, 1)
    with open_volume(path) as volume:
        return path, volume.read_target()


S12_SPEC = MaskSpec("random", 8, 0.08)  # 5 calibration lines


def test_auto_lamda_starts_the_final_solve_from_zero_where_the_folds_predict_better_so(s12_64):
    """After a warm ladder (SENSE's and TV's; L1-wavelet with ``ladder=warm``), on a
    synthetic 12-coil 64² scan at 8×: the fold solves from zero at the chosen λ = 1e-4
    measured a held-out error of 1.19 against the warm ladder's 1.24 (zero-filled 57.3), and
    the final solve from zero 0.630 / 19.70 (zero-filled 0.419 / 16.99). The record says
    which start won and why, and the output is the solve from zero at the chosen λ given
    with ``-p`` (the next test checks that a fixed start solves no folds from the other
    one). (Without cycle spinning, without L1-wavelet's refinement and with the weighted
    held-out errors.)"""
    path, target = s12_64
    options = ReconOptions(S12_SPEC, device="cpu", progress=False)
    recon, info = reconstruct_volume(path, make_method("l1-wavelet", ladder="warm", cycle_spin=False, refine=False,
                                                       weighted_holdout=True, start="auto"), options)
    record = info["diagnostics"][0]
    assert record["start"] == "zero"
    assert record["zero_start_error"] < min(record["validation_errors"]) < record["zero_filled_error"]
    fixed_lamda, _ = reconstruct_volume(path, make_method("l1-wavelet", lamda=record["lamda"], cycle_spin=False),
                                        options)
    np.testing.assert_allclose(fixed_lamda, recon, rtol=0, atol=1e-3 * float(np.abs(recon).max()))  # step size
    m, zf = (volume_metrics(target, x) for x in (
        recon, reconstruct_volume(path, make_method("zero-filled"), options)[0]))
    assert m["SSIM"] > zf["SSIM"] + 0.18 and m["PSNR"] > zf["PSNR"] + 2


def test_l1_wavelets_ladder_solves_every_rung_from_zero_as_a_fixed_lamda_does(s12_64):
    """The same scan: cross-validating the solves from zero (and refining, L1-wavelet's
    default) measured λ = 3.2e-4, 0.721 / 19.99 (cycle-spun); the warm ladder chose 1e-4,
    0.662 / 19.93. The output is the solve at the chosen λ given with ``-p``."""
    path, target = s12_64
    options = ReconOptions(S12_SPEC, device="cpu", progress=False)
    (recon, info), (warm, warm_info) = (reconstruct_volume(path, make_method("l1-wavelet", **params), options)
                                        for params in ({}, {"ladder": "warm", "refine": False}))
    record = info["diagnostics"][0]
    assert record["start"] == "zero" and "zero_start_error" not in record
    assert record["lamda"] > warm_info["diagnostics"][0]["lamda"]
    assert volume_metrics(target, recon)["SSIM"] > volume_metrics(target, warm)["SSIM"] + 0.03
    fixed, _ = reconstruct_volume(path, make_method("l1-wavelet", lamda=record["lamda"]), options)
    np.testing.assert_allclose(recon, fixed, rtol=0, atol=1e-3 * float(np.abs(fixed).max()))


@pytest.mark.parametrize("start", ["warm", "zero"])
def test_after_a_zero_ladder_the_start_whose_folds_predict_better_wins(tmp_path, start):
    """With ``ladder=zero``, ``start=auto`` also runs the folds down a warm ladder to the
    chosen λ and starts the final solve where their held-out error is lower; the output is
    the one that start given with ``-p`` writes."""
    from mri_genprior.experiments.synthetic import write_synthetic_file

    path = write_synthetic_file(tmp_path / "s8_64.h5", [80], (64, 64), 8, 0.02, 0)
    spec = MaskSpec("random", 8, 0.08)
    (auto, info), (fixed, fixed_info) = (
        reconstruct_volume(path, make_method("tv", max_iter=30, fold_iter=0, refine=False,
                                             **{"start": "auto", **params}),
                           ReconOptions(spec, device="cpu", progress=False))
        for params in ({}, {"start": start}))
    record = info["diagnostics"][0]
    best = record["validation_errors"][record["ladder"].index(record["lamda"])]
    won = "warm" if record["warm_start_error"] < best else "zero"
    assert record["start"] == won
    fixed_record = fixed_info["diagnostics"][0]
    assert fixed_record["start"] == start and fixed_record["lamda"] == record["lamda"]
    assert ("warm_start_error" in fixed_record) == (start == "warm")  # start=zero solves no warm folds
    if start == won:
        np.testing.assert_array_equal(auto, fixed)
    else:
        assert np.abs(auto - fixed).max() > 1e-3 * np.abs(fixed).max()


def test_a_fixed_start_after_a_warm_ladder_solves_no_folds_from_zero(tmp_path):
    """L1-wavelet's ``start=zero`` after ``ladder=warm`` keeps the ladder's λ and solves the
    folds from zero at no λ (``start=auto`` does, and records their error)."""
    from mri_genprior.experiments.synthetic import write_synthetic_file

    path = write_synthetic_file(tmp_path / "s8_64.h5", [80], (64, 64), 8, 0.02, 0)
    options = ReconOptions(MaskSpec("random", 8, 0.08), device="cpu", progress=False)
    auto, fixed = (reconstruct_volume(path, make_method("l1-wavelet", ladder="warm", refine=False, max_iter=30,
                                                        start=start), options)[1]["diagnostics"][0]
                   for start in ("auto", "zero"))
    assert "zero_start_error" in auto and "zero_start_error" not in fixed
    assert fixed["start"] == "zero" and fixed["lamda"] == auto["lamda"]


def test_the_final_solves_start_is_checked():
    with pytest.raises(MriGenpriorError, match="parameter start 'cold': choose from auto, warm, zero"):
        make_method("l1-wavelet", start="cold")
    with pytest.raises(MriGenpriorError, match="start=warm applies to lamda=auto only"):
        make_method("l1-wavelet", start="warm", lamda=1e-3)
    with pytest.raises(MriGenpriorError, match=r"parameter fold_iter: expected .* >= 1 \(0: max_iter\), got -1"):
        make_method("tv", fold_iter=-1)
    with pytest.raises(MriGenpriorError, match="parameter ladder 'cold': choose from warm, zero"):
        make_method("tv", ladder="cold")


def test_cycle_spinning_undoes_its_shifts_and_draws_the_same_ones_for_the_same_seed():
    """Spun soft-thresholding (shift-equivariant) is soft-thresholding; the spun wavelet
    threshold is not the plain one, and a solve with the same seed draws the same shifts.
    The span is the period of SigPy's transform, ``2**levels`` of its even-padded image."""
    import pywt

    from mri_genprior.solvers.classical import CycleSpin, wavelet_span

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((41, 36)) + 1j * rng.standard_normal((41, 36))).astype(np.complex64)
    soft = sp.prox.L1Reg(x.shape, 0.5)
    spun = CycleSpin(soft, 16, seed=0)
    for _ in range(3):
        np.testing.assert_array_equal(spun(1.0, x), soft(1.0, x))
    transform = sp.linop.Wavelet(x.shape, wave_name="db4")
    wavelet = sp.prox.UnitaryTransform(sp.prox.L1Reg(transform.oshape, 0.5), transform)
    runs = [[p(1.0, x) for _ in range(4)] for p in (CycleSpin(wavelet, wavelet_span(x.shape), s) for s in (0, 0, 1))]
    np.testing.assert_array_equal(np.stack(runs[0]), np.stack(runs[1]))
    assert np.abs(np.stack(runs[0]) - np.stack(runs[2])).max() > 1e-2
    assert max(np.abs(out - wavelet(1.0, x)).max() for out in runs[0]) > 1e-2  # some draw shifted it
    for shape in [(41, 36), (96, 96), (230, 180), (256, 256)]:
        levels = len(pywt.wavedecn(np.zeros([(n + 1) // 2 * 2 for n in shape]), "db4", mode="zero")) - 1
        assert wavelet_span(shape) == 2 ** levels


def test_cycle_spinning_is_l1_wavelets_and_refused_for_other_regularizers():
    assert make_method("l1-wavelet").cycle_spin and not make_method("tv").cycle_spin
    with pytest.raises(MriGenpriorError, match="parameter cycle_spin: applies to the wavelet regularizer only, "
                                               "not 'tv'"):
        make_method("tv", cycle_spin=True)

