import numpy as np
import pytest
import sigpy as sp
import sigpy.mri as mr
import torch

from conftest import crandn
from mri_genprior.physics import (SenseOp, SigpyOperator, crop_or_pad, fft2c, ifft2c, remove_readout_oversampling)


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


def test_sense_op_equals_sigpy_sense(rng, device):
    mps, weights = _sense_inputs(rng)
    x = crandn(rng, (2, 24, 20))
    op = SenseOp(torch.from_numpy(mps).to(device), torch.from_numpy(weights).to(device))
    ours = op(torch.from_numpy(x).to(device)).cpu().numpy()
    for b in range(2):
        ref = mr.linop.Sense(mps[b], weights=weights[b])(x[b])
        np.testing.assert_allclose(ours[b], ref, atol=1e-4)


def _operators(rng, device):
    mps, weights = _sense_inputs(rng, b=1)
    sense = SenseOp(torch.from_numpy(mps).to(device), torch.from_numpy(weights).to(device))
    bridged = SigpyOperator(mr.linop.Sense(sp.to_device(mps[0], sp.cpu_device), weights=weights[0]))
    coord = (rng.random((50, 2)).astype(np.float32) - 0.5) * 20  # non-Cartesian: any Linop plugs in
    nufft = SigpyOperator(mr.linop.Sense(mps[0], coord=coord))
    return {"sense": (sense, (1, 24, 20)), "sigpy-sense": (bridged, (1, 24, 20)), "sigpy-nufft": (nufft, (1, 24, 20))}


@pytest.mark.parametrize("name", ["sense", "sigpy-sense", "sigpy-nufft"])
def test_adjoint_identity(name, rng, device):
    op, ishape = _operators(rng, device)[name]
    dev = device if name == "sense" else torch.device("cpu")
    x = torch.from_numpy(crandn(rng, ishape)).to(dev)
    ax = op.forward(x)
    y = torch.from_numpy(crandn(rng, tuple(ax.shape))).to(dev)
    lhs = torch.vdot(ax.flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), op.adjoint(y).flatten())
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


def test_bridge_gradient_is_adjoint(rng):
    mps, weights = _sense_inputs(rng, b=1)
    linop = mr.linop.Sense(mps[0], weights=weights[0])
    op = SigpyOperator(linop)
    x = torch.from_numpy(crandn(rng, (1, 24, 20))).requires_grad_(True)
    y = torch.from_numpy(crandn(rng, (1, 4, 24, 20)))
    loss = (op(x) - y).abs().pow(2).sum()
    loss.backward()
    expected = 2 * linop.H(linop(x.detach().numpy()[0]) - y.numpy()[0])
    np.testing.assert_allclose(x.grad.numpy()[0], expected, rtol=1e-4, atol=1e-4)
    # and torch's own finite-difference check on a tiny operator
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
