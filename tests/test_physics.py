from functools import partial

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
import torch

from conftest import GaussianOp, crandn
from mri_genprior import MriGenpriorError
from mri_genprior.experiments.landscape import GaussianMeasurements
from mri_genprior.physics import (HybridSense, SensePhysics, SigpyOperator, SigpyPhysics, complex_randn, crop_or_pad, fft2c, ifft2c,
                                  remove_readout_oversampling, sigpy_device)


def _sense_inputs(rng, b=2, c=4, h=24, w=20):
    mps = crandn(rng, (b, c, h, w))
    weights = (rng.random((b, h, w)) < 0.4).astype(np.float32)
    return mps, weights


def test_fft_convention_equals_fastmri_and_sigpy(rng):
    import fastmri

    x = crandn(rng, (3, 16, 12))
    ours = fft2c(torch.from_numpy(x))
    ref = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(torch.from_numpy(x))).contiguous())
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.numpy(), sp.fft(x, axes=(-2, -1)), atol=1e-5)
    np.testing.assert_allclose(ifft2c(ours).numpy(), x, atol=1e-5)


def test_sense_physics_equals_sigpy_sense(rng, device):
    mps, weights = _sense_inputs(rng)
    x = crandn(rng, (2, 24, 20))
    op = SensePhysics(torch.from_numpy(mps).to(device), torch.from_numpy(weights).to(device))
    ours = op(torch.from_numpy(x).to(device)).cpu().numpy()
    for b in range(2):
        ref = mr.linop.Sense(mps[b], weights=weights[b])(x[b])
        np.testing.assert_allclose(ours[b], ref, atol=1e-4)


def _operators(rng, device):
    """Every operator kind of the package (and a user's own), on small random problems."""
    mps, weights = _sense_inputs(rng, b=2)
    sense = SensePhysics(torch.from_numpy(mps).to(device), torch.from_numpy(weights).to(device))
    bridged = SigpyOperator([mr.linop.Sense(mps[b], weights=weights[b]) for b in range(2)])
    coord = (rng.random((50, 2)).astype(np.float32) - 0.5) * 20  # non-Cartesian: any Linop plugs in
    nufft = SigpyPhysics([mr.linop.Sense(mps[b], coord=coord) for b in range(2)])
    gaussian = GaussianMeasurements(30, 40, torch.Generator().manual_seed(0))
    user = GaussianOp(torch.from_numpy(crandn(rng, (25, 24 * 20))), (24, 20))
    lines = np.broadcast_to(weights[:, :1], weights.shape).copy()  # a 1-D mask: every readout row alike
    hybrid = SensePhysics(torch.from_numpy(mps).to(device), torch.from_numpy(lines).to(device)).hybrid()
    return {"sense-physics": sense, "sigpy-bridge": bridged, "sigpy-physics-nufft": nufft,
            "landscape-gaussian": gaussian, "user-gaussian": user, "hybrid-sense-rows": hybrid.rows(5, 17)}


OPERATORS = ["sense-physics", "sigpy-bridge", "sigpy-physics-nufft", "landscape-gaussian", "user-gaussian",
             "hybrid-sense-rows"]


def test_hybrid_sense_is_sense_after_a_readout_ifft_and_its_rows_separate(rng, device):
    """With a 1-D mask, ``F_H⁻¹`` of SENSE k-space is the hybrid physics' output, and a band of
    image rows gives exactly that band of the output; 2-D masks and missing maps are refused."""
    mps, weights = _sense_inputs(rng)
    lines = np.broadcast_to(weights[:, :1], weights.shape).copy()
    physics = SensePhysics(torch.from_numpy(mps).to(device), torch.from_numpy(lines).to(device))
    x = torch.from_numpy(crandn(rng, (2, 24, 20))).to(device)
    hybrid = physics.hybrid()
    assert physics.one_dimensional and hybrid.oshape == physics.oshape
    torch.testing.assert_close(hybrid.forward(x), HybridSense.data(physics.forward(x)), atol=1e-5, rtol=0)
    torch.testing.assert_close(hybrid.rows(7, 19).forward(x[:, 7:19]), hybrid.forward(x)[..., 7:19, :], atol=1e-5,
                               rtol=0)
    with pytest.raises(MriGenpriorError, match="1-D mask"):
        SensePhysics(torch.from_numpy(mps), torch.from_numpy(weights)).hybrid()
    with pytest.raises(MriGenpriorError, match="needs one set of coil maps"):
        SensePhysics(None, torch.from_numpy(lines)).hybrid()


@pytest.mark.parametrize("name", OPERATORS)
def test_adjoint_identity(name, rng, device):
    op = _operators(rng, device)[name]
    assert op.adjointness_test(batch=2) < 1e-5


@pytest.mark.parametrize("name", OPERATORS)
def test_autograd_gradient_is_the_adjoint(name, rng, device):
    """d‖A x − y‖²/dx̄ through autograd equals 2 Aᴴ(A x − y) for every operator."""
    op = _operators(rng, device)[name]
    g = torch.Generator().manual_seed(1)
    x = complex_randn((2,) + tuple(op.ishape), g, op.device).requires_grad_(True)
    y = complex_randn((2,) + tuple(op.oshape), g, op.device)
    (op.forward(x) - y).abs().pow(2).sum().backward()
    with torch.no_grad():
        expected = 2 * op.adjoint(op.forward(x) - y)
    assert float((x.grad - expected).norm() / expected.norm()) < 1e-5


def test_wrong_adjoint_is_caught(rng):
    class Broken(GaussianOp):
        def adjoint(self, y):
            return 2 * super().adjoint(y)

    assert Broken(torch.from_numpy(crandn(rng, (25, 12))), (3, 4)).adjointness_test() > 0.1


def test_shape_errors_name_the_operator(rng, device):
    op = _operators(rng, device)["sense-physics"]
    with pytest.raises(MriGenpriorError, match=r"SensePhysics: expected image of shape \(batch, 24, 20\)"):
        op.forward(torch.zeros(2, 20, 24, dtype=torch.complex64, device=device))
    with pytest.raises(MriGenpriorError, match=r"CoilPhysics: expected coil images of shape \(batch, 4, 24, 20\)"):
        op.coil_images(4).forward(torch.zeros(2, 3, 24, 20, dtype=torch.complex64, device=device))


def test_sense_physics_linop_is_sigpy_sense(rng, device):
    mps, weights = _sense_inputs(rng)
    physics = SensePhysics.from_numpy(mps, weights, device)
    x = crandn(rng, (2, 24, 20))
    ours = physics(torch.from_numpy(x).to(device)).cpu().numpy()
    for b in range(2):
        via_linop = sp.to_device(physics.linop(b)(sp.to_device(x[b], sigpy_device(device))))
        np.testing.assert_allclose(via_linop, ours[b], atol=1e-4)
    picked = physics.select([1, 1, 0])
    assert picked.batch == 3 and torch.equal(picked.maps[2], physics.maps[0])


def test_two_sets_of_maps_sum_their_images_coil_by_coil_as_sigpy_hstack_does(rng, device):
    """Soft-SENSE: maps (B, C, H, 2W) take images (B, H, 2W) to Σ_m S_m x_m; the adjoint passes
    the adjointness test, equals SigPy's Hstack of one Sense per set, and the written RSS
    is that of the coil images F⁻¹(√W y) where measured."""
    mps, weights = _sense_inputs(rng)
    two = np.concatenate([mps, crandn(rng, mps.shape)], axis=-1)
    physics = SensePhysics.from_numpy(two, weights, device)
    assert physics.sets == 2 and physics.ishape == (24, 40) and physics.oshape == (mps.shape[1], 24, 20)
    assert physics.adjointness_test(batch=2) < 1e-5
    x = crandn(rng, (2, 24, 40))
    ours = physics(torch.from_numpy(x).to(device)).cpu().numpy()
    halves = [SensePhysics.from_numpy(part, weights, device)(torch.from_numpy(np.ascontiguousarray(xp)).to(device))
              for part, xp in zip(np.split(two, 2, axis=-1), np.split(x, 2, axis=-1))]
    np.testing.assert_allclose(ours, sum(h.cpu().numpy() for h in halves), atol=1e-4)
    for b in range(2):
        linop = physics.linop(b)
        via_linop = sp.to_device(linop(sp.to_device(x[b], sigpy_device(device))))
        np.testing.assert_allclose(via_linop, ours[b], atol=1e-4)
        back = physics.adjoint(torch.from_numpy(ours).to(device))[b].cpu().numpy()
        np.testing.assert_allclose(sp.to_device(linop.H(sp.to_device(ours[b], sigpy_device(device)))), back,
                                   atol=1e-3)
    assert physics.output(x, torch.from_numpy(ours).to(device)).shape == (2, 24, 20)


@pytest.mark.parametrize("case", ["2d-masks-odd-size", "shared-column-mask", "coil-images"])
@pytest.mark.parametrize("with_holdout", [False, True])
def test_fused_cartesian_misfit_equals_the_autograd_residual(case, with_holdout, rng, device):
    """The fused misfit (uncentred k-space, sampled columns only, hand-written gradient)
    gives the losses and gradients of ‖A x − y‖² written with autograd."""
    from mri_genprior.physics.operators import residual_misfit
    from mri_genprior.physics import random_subset

    b, c, h, w = 3, 4, 25, 17
    if case == "2d-masks-odd-size":
        weights = (rng.random((b, h, w)) < 0.4).astype(np.float32)
    else:  # one column pattern for every readout row, broadcast over the batch
        weights = np.repeat((rng.random((1, 1, w)) < 0.3).astype(np.float32), h, axis=1)
    physics = SensePhysics.from_numpy(crandn(rng, (b, c, h, w)), weights, device)
    if case == "coil-images":
        physics = physics.coil_images(c)
    y = torch.from_numpy(crandn(rng, (b, c, h, w))).to(device)  # non-zero off the samples too: a constant
    held = random_subset((y * physics.sqrt_weights)[:, :1] != 0, 0.2, torch.Generator().manual_seed(0)) if with_holdout else None
    x = torch.from_numpy(crandn(rng, (b,) + tuple(physics.ishape))).to(device).requires_grad_(True)
    results = []
    for misfit in (residual_misfit(physics.forward, y, held), physics.misfit(y, held)):
        train, val = misfit(x)
        (train * torch.arange(1.0, b + 1, device=device)).sum().backward()
        results.append((train.detach(), val, x.grad.clone()))
        x.grad = None
    (train0, val0, grad0), (train1, val1, grad1) = results
    torch.testing.assert_close(train1, train0, rtol=1e-5, atol=0)
    assert (val1 is None) == (val0 is None) == (not with_holdout)
    if with_holdout:
        assert not val1.requires_grad
        torch.testing.assert_close(val1, val0, rtol=1e-5, atol=0)
    assert float((grad1 - grad0).norm() / grad0.norm()) < 1e-5


def test_bridge_gradcheck_double_precision(rng):
    tiny = SigpyOperator(sp.linop.Multiply((3,), crandn(rng, (3,)).astype(np.complex128)))
    z = torch.from_numpy(crandn(rng, (1, 3))).to(torch.complex128).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: tiny(t), (z,))


def test_readout_oversampling_removal_equals_image_crop(rng):
    k = crandn(rng, (2, 32, 12))
    cropped = remove_readout_oversampling(k, 16)
    img = sp.ifft(k, axes=(-2, -1))
    np.testing.assert_allclose(sp.ifft(cropped, axes=(-2, -1)), crop_or_pad(img, (16, 12)), atol=1e-5)


def test_crop_or_pad_handles_narrow_images():
    x = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    out = crop_or_pad(x, (4, 8))
    assert out.shape == (4, 8)
    np.testing.assert_array_equal(out[:, 2:6], x[1:5])
    assert out[:, :2].sum() == 0 and out[:, 6:].sum() == 0


def _real_maps_case(kspace, seed, accel=8):
    """The real coils at ``accel`` (fastMRI random mask ``seed``, centre fraction
    0.32 / ``accel``: 0.04 at 8×, 0.08 at 4×): a function giving the part of the fully
    sampled coil images maps cannot represent, ‖c − S Sᴴ c‖ / ‖c‖ (Σ|S|² = 1), the
    scaled measurements, the mask and the calibration region."""
    from mri_genprior.masks import calibration_region, expand, make_mask
    from mri_genprior.physics import ifft2c_np, scale_factor

    coils = ifft2c_np(kspace)
    mask = make_mask("random", kspace.shape[-2:], accel, 0.32 / accel, seed)
    y = (kspace * expand(mask, kspace.shape[-2:])).astype(np.complex64)
    y /= scale_factor(y)

    return partial(_unrepresented, coils), y, mask, calibration_region(mask, kspace.shape[-2:])


def _unrepresented(coils, mps):
    """‖c − S Sᴴ c‖ / ‖c‖: the part of coil images ``coils`` maps ``mps`` (Σ|S|² = 1) cannot represent."""
    return np.linalg.norm(coils - mps * (mps.conj() * coils).sum(0)) / np.linalg.norm(coils)


def test_joint_maps_fit_the_real_coils_better_than_lowres_maps():
    """Real 8-coil brain, 8× (7 calibration lines): the unrepresented part measured 0.154
    for low-resolution maps and 0.116 for joint maps on three masks."""
    from conftest import REAL_KSPACE
    from mri_genprior.physics import joint_maps, lowres_maps

    misfit, y, mask, region = _real_maps_case(np.load(REAL_KSPACE), 0)
    assert region == (230, 7)
    lowres, joint = misfit(lowres_maps(y, region)), misfit(joint_maps(y, mask, region))
    assert joint < 0.85 * lowres, (joint, lowres)


@pytest.mark.parametrize("seed", [0, 2])
def test_jsense_maps_fit_the_real_coils_from_four_calibration_lines(seed):
    """The real brain's centre 96×96 k-space at 8× leaves 4 calibration lines; the
    unrepresented part measured 0.180 for jsense maps against 0.259 / 0.245 (joint) and
    0.332 (lowres) on these masks."""
    from conftest import REAL_KSPACE
    from mri_genprior.physics import joint_maps, jsense_maps

    misfit, y, mask, region = _real_maps_case(np.load(REAL_KSPACE)[:, 67:163, 42:138], seed)
    assert region == (96, 4)
    jsense, joint = misfit(jsense_maps(y, mask)), misfit(joint_maps(y, mask, region))
    assert jsense < 0.8 * joint, (jsense, joint)


def test_espirit_maps_on_a_square_are_sigpys():
    """On a square calibration region the maps are ``sigpy.mri.app.EspiritCalib``'s."""
    import sigpy.mri.app as app
    from conftest import REAL_KSPACE
    from mri_genprior.physics import espirit_maps, scale_factor

    kspace = np.load(REAL_KSPACE)
    kspace = (kspace / scale_factor(kspace)).astype(np.complex64)
    ours = espirit_maps(kspace, (20, 20))
    sigpys = app.EspiritCalib(kspace, calib_width=20, show_pbar=False).run()
    np.testing.assert_allclose(ours, sigpys, atol=1e-5)


def test_espirit_maps_from_the_calibration_rectangle_fit_the_real_coils_where_a_square_fails():
    """The real brain's centre 96×96 k-space at 4× (8 calibration lines): ESPIRiT on the
    96 × 8 rectangle (6 × 4 blocks) leaves 0.085 of the coil images unrepresented, on the
    8 × 8 square (SigPy's region, 4 × 4 blocks) 0.359."""
    from conftest import REAL_KSPACE
    from mri_genprior.physics import espirit_maps

    misfit, y, mask, region = _real_maps_case(np.load(REAL_KSPACE)[:, 67:163, 42:138], 1, accel=4)
    assert region == (96, 8)
    rectangle, square = misfit(espirit_maps(y, region)), misfit(espirit_maps(y, (8, 8)))
    assert rectangle < 0.1 and rectangle < 0.5 * square, (rectangle, square)


def test_espirit_maps_take_a_calibration_run_one_column_off_centre_without_its_gap():
    """Real brain, 7 centre lines and a random line beside them on the side the centred
    crop of 8 columns does not reach (columns 87–94; ``centred(180, 8)`` is 86–93): the maps
    come from the 8 measured lines (0.112 unrepresented), not from a crop that holds an
    unmeasured zero column (0.233; 0.170 with the square 4 × 4 blocks used before)."""
    from conftest import REAL_KSPACE
    from mri_genprior.masks import calibration_region, centre_calibration, expand
    from mri_genprior.physics import coil_maps, espirit_maps, ifft2c_np, scale_factor

    kspace = np.load(REAL_KSPACE)
    coils = ifft2c_np(kspace)
    mask = np.zeros(180, np.float32)
    mask[87:95] = 1
    mask[::8] = 1
    y = (kspace * expand(mask, kspace.shape[-2:])).astype(np.complex64)
    y /= scale_factor(y)
    assert calibration_region(mask, kspace.shape[-2:]) == (230, 8)
    assert np.array_equal(centre_calibration(y, mask)[..., 86:94], y[..., 87:95])
    fixed, gap = _unrepresented(coils, coil_maps(y, mask, "espirit")), _unrepresented(coils, espirit_maps(y, (230, 8)))
    assert fixed < 0.13 and gap > fixed + 0.03, (fixed, gap)


def test_auto_maps_by_calibration_lines():
    from mri_genprior.physics import resolve_maps

    assert [resolve_maps("auto", n) for n in (4, 6, 7, 8, 20)] == ["jsense"] * 2 + ["espirit"] * 3
    assert resolve_maps("lowres", 20) == "lowres"


def test_validation_folds_hold_out_runs_of_readout_rows():
    """1-D mask: the folds split the measured lines outside the calibration region into
    runs of H/8 readout rows, disjoint and covering them, and not line by line."""
    from mri_genprior.physics.sense import READOUT_SEGMENTS

    h, w, calib = 64, 40, 6
    mask = np.zeros(w, np.float32)
    mask[w // 2 - calib // 2: w // 2 + calib // 2] = 1
    mask[[2, 5, 9, 13, 27, 30, 33, 37]] = 1
    weights = torch.from_numpy(np.broadcast_to(mask, (1, h, w)).copy())
    physics = SensePhysics(None, weights)
    y = torch.ones((1, 2, h, w), dtype=torch.complex64) * weights[:, None]
    folds = physics.validation_folds(y, 4, torch.Generator().manual_seed(0))[:, 0, 0]
    outside = np.broadcast_to(mask, (h, w)).astype(bool).copy()
    outside[:, w // 2 - calib // 2: w // 2 + calib // 2] = False
    assert folds.shape == (4, h, w)
    np.testing.assert_array_equal(folds.sum(0).numpy(), outside.astype(np.int64))  # disjoint, covering
    runs = folds.numpy().reshape(4, READOUT_SEGMENTS, h // READOUT_SEGMENTS, w)
    assert (runs == runs[:, :, :1]).all()  # whole runs of rows are held out together
    split = [len({int(f) for f in folds[:, :, col].nonzero()[:, 0]}) > 1 for col in np.flatnonzero(outside[0])]
    assert sum(split) >= len(split) // 2, split  # lines are not held out whole


def test_validation_weights_are_the_distance_from_the_kspace_centre(device):
    """Cartesian SENSE weighs a held-out sample's squared error by its distance from the
    centre, as a fraction of the grid (zero at DC, 1/2 at the middle of each edge); a
    physics without k-space geometry (any SigPy Linop) weighs every sample alike."""
    h, w = 12, 10
    physics = SensePhysics(None, torch.ones((1, h, w), device=device))
    weights = physics.validation_weights().cpu().numpy()
    assert weights.shape == (1, h, w)
    assert weights[0, h // 2, w // 2] == 0
    np.testing.assert_allclose([weights[0, 0, w // 2], weights[0, h // 2, 0]], [0.5, 0.5])
    np.testing.assert_allclose(weights[0, 0, 0], np.sqrt(0.5), rtol=1e-6)
    linop = mr.linop.Sense(np.ones((3, 8, 8), np.complex64), coord=np.random.default_rng(0).uniform(-4, 4, (50, 2)))
    generic = SigpyPhysics([linop], device).validation_weights()
    assert tuple(generic.shape) == (1, 50) and bool((generic == 1).all())


def test_sigpy_on_cuda_without_cupy_names_the_install_extra():
    """Without CuPy, a CUDA run fails at its first SigPy step with a one-line error naming
    the ``gpu`` install extra (not an ImportError deep in SigPy)."""
    import importlib.util

    from mri_genprior.physics.coils import sigpy_device

    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here: the error cannot arise")
    with pytest.raises(MriGenpriorError, match=r'needs CuPy.*pip install "mri_genprior\[gpu\]"'):
        sigpy_device("cuda:0")
