"""λ chosen once per volume (``scope=volume``, the default of L1-wavelet, SENSE and TV): the central slice's choice,
scaled per slice."""

import numpy as np
import pytest

from mri_genprior import MriGenpriorError
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method


@pytest.mark.parametrize("name", ["l1-wavelet", "sense", "tv"])
def test_lamda_is_chosen_once_per_volume_and_scaled_by_each_slices_noise(name, synth_file):
    """``scope=volume`` (the default of l1-wavelet, sense and tv): λ is cross-validated on the
    central slice only and every slice is solved once at λ σ_b / σ_ref; the recorded choice
    reproduces the output. (That it scores as a λ chosen for every slice does is measured on
    7-slice volumes in docs/real_data.md, "Once per volume".)"""
    from mri_genprior.recon import prepare_batch, volume_mask

    with open_volume(synth_file) as volume:
        target = volume.read_target()
        spec = MaskSpec("random", 4, 0.08)
        mask, crop, _ = volume_mask(volume, spec)
        batch = prepare_batch(volume, range(2), mask, crop, True, "cpu")
    sigma = batch.physics.noise_std(batch.y).numpy()
    options = ReconOptions(spec, device="cpu", progress=False)
    recon, info = reconstruct_volume(synth_file, make_method(name), options)
    chosen = info["volume_choice"]
    assert chosen["slice"] == 1 and len(chosen["validation_errors"]) >= 3
    assert info["settings"]["lamda"] == "auto" and info["settings"]["scope"] == "volume"
    np.testing.assert_allclose(chosen["noise_std"], sigma[1], rtol=1e-6)
    lamdas = [d["lamda"] for d in info["diagnostics"]]
    np.testing.assert_allclose(lamdas, chosen["lamda"] * sigma / sigma[1], rtol=1e-5)
    assert abs(lamdas[0] / lamdas[1] - 1) > 0.01  # the slices' noise differs in normalised units
    assert chosen["continuation"] == (10 if name == "sense" else 0)  # sense: after a warm ladder
    assert chosen["start"] == make_method(name).ladder and "zero_start_error" not in chosen  # no other start solved
    again, _ = reconstruct_volume(synth_file, make_method(name, lamda=chosen["lamda"], noise_reference=chosen["noise_std"],
                                                          continuation=chosen["continuation"]), options)
    np.testing.assert_array_equal(again, recon)
    zero_filled, zf_info = reconstruct_volume(synth_file, make_method("zero-filled"), options)
    assert "volume_choice" not in zf_info
    assert volume_metrics(target, recon)["SSIM"] > volume_metrics(target, zero_filled)["SSIM"] + 0.1


def test_a_lamda_for_the_volume_needs_solves_from_zero_and_a_noise_reference_a_fixed_lamda():
    for name, params in (("tv", {"ladder": "warm", "refine": False}), ("sense", {"start": "warm"})):
        with pytest.raises(MriGenpriorError, match="scope=volume: needs ladder=zero start=zero"):
            make_method(name, scope="volume", **params)
    assert make_method("sense").chooses_per_volume and make_method("sense", start="warm").scope == "slice"
    warm = make_method("l1-wavelet", ladder="warm", refine=False)
    assert make_method("tv", ladder="warm", refine=False).scope == warm.scope == "slice" and not warm.chooses_per_volume
    with pytest.raises(MriGenpriorError, match="noise_reference"):
        make_method("l1-wavelet", noise_reference=0.1)
    with pytest.raises(MriGenpriorError, match="continuation"):
        make_method("sense", continuation=10)  # λ chosen per slice: nothing to continue to
    with pytest.raises(MriGenpriorError, match="parameter scope"):
        make_method("l1-wavelet", scope="slices")
