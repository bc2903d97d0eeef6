"""MRI physics: FFT conventions, SENSE operators, ESPIRiT maps, scaling and crops.

Two interchangeable torch operators implement ``y = A x`` with autograd:

* :class:`SenseOp` — batched multi-coil Cartesian SENSE in native torch (fast path for
  the latent solvers; equal to ``sigpy.mri.linop.Sense`` — see the tests).
* :class:`SigpyOperator` — wraps *any* SigPy ``Linop`` (non-Cartesian ``Sense`` with
  ``coord``, other coil models, ...) as an autograd function whose backward is the
  adjoint ``linop.H``; CPU arrays go through NumPy, CUDA arrays through CuPy via DLPack.

Both take and return complex64 torch tensors and expose ``forward``, ``adjoint`` and
``__call__`` (= forward), with a leading batch axis.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch

from . import MriGenpriorError

FFT_DIMS = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes (complex tensors)."""
    x = torch.fft.ifftshift(x, dim=FFT_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(x, dim=FFT_DIMS, norm="ortho"), dim=FFT_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes."""
    k = torch.fft.ifftshift(k, dim=FFT_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(k, dim=FFT_DIMS, norm="ortho"), dim=FFT_DIMS)


def ifft2c_np(kspace: np.ndarray) -> np.ndarray:
    """NumPy/SigPy twin of :func:`ifft2c` (``sigpy.ifft`` over the last two axes)."""
    import sigpy as sp

    return sp.ifft(kspace, axes=FFT_DIMS).astype(np.complex64)


def rss(coil_images: np.ndarray, axis: int = 0) -> np.ndarray:
    """Root sum of squares over the coil axis."""
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=axis))


def crop_or_pad(x: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Centre-crop or zero-pad the last two axes of ``x`` to ``shape``.

    Uses fastMRI's centring (``fastmri.data.transforms.center_crop``) when cropping;
    images narrower than ``shape`` (some fastMRI brain files) are zero-padded.
    """
    out = x
    for axis, size in zip((-2, -1), shape):
        n = out.shape[axis]
        if n > size:
            start = (n - size) // 2
            out = np.take(out, np.arange(start, start + size), axis=axis)
        elif n < size:
            before = (size - n) // 2
            widths = [(0, 0)] * out.ndim
            widths[axis] = (before, size - n - before)
            out = np.pad(out, widths)
    return out


def remove_readout_oversampling(kspace: np.ndarray, height: int) -> np.ndarray:
    """Crop the readout (H) field of view of ``(..., H, W)`` k-space to ``height``.

    Inverse FFT along H, centre crop, FFT back. Valid only when the readout is fully
    sampled (1-D phase-encode masks), which is always true for Cartesian fastMRI data.
    """
    import sigpy as sp

    if kspace.shape[-2] == height:
        return kspace
    if kspace.shape[-2] < height:
        raise MriGenpriorError(f"readout length {kspace.shape[-2]} is shorter than the recon size {height}")
    img = sp.ifft(kspace, axes=(-2,))
    start = (kspace.shape[-2] - height) // 2
    return sp.fft(img[..., start:start + height, :], axes=(-2,)).astype(np.complex64)


def percentile_scale(magnitude: np.ndarray, percentile: float = 99.0) -> float:
    """The slice normalisation every part of the package uses: the ``percentile`` of a
    magnitude image. Dividing by it puts the image roughly in [0, 1]."""
    value = float(np.percentile(magnitude, percentile))
    if not np.isfinite(value) or value <= 0:
        raise MriGenpriorError("image is empty (its 99th-percentile magnitude is not positive)")
    return value


def scale_factor(kspace: np.ndarray, percentile: float = 99.0) -> float:
    """Slice normalisation of ``(coils, H, W)`` k-space (already masked): the
    :func:`percentile_scale` of its zero-filled RSS image.

    Dividing the k-space by this puts the image roughly in [0, 1]; multiplying the
    result by it restores the units of ``reconstruction_rss``. Training images are
    normalised by the same function applied to the fully sampled image.
    """
    try:
        return percentile_scale(rss(ifft2c_np(kspace)), percentile)
    except MriGenpriorError:
        raise MriGenpriorError("k-space is empty (zero-filled image is all zero)") from None


def coil_combine(kspace: np.ndarray, mps: np.ndarray) -> np.ndarray:
    """SENSE coil combination ``Σ_c conj(S_c) · F⁻¹ k_c`` of fully sampled ``(coils, H, W)``
    k-space with maps ``(coils, H, W)`` (``sigpy.mri.linop.Sense(mps).H``): ``(H, W)`` complex64."""
    import sigpy.mri as mr

    return mr.linop.Sense(mps).H(kspace).astype(np.complex64)


def espirit_maps(
    kspace: np.ndarray,
    calib_width: int,
    device: torch.device | str = "cpu",
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
) -> np.ndarray:
    """ESPIRiT sensitivity maps ``(coils, H, W)`` complex64 via ``sigpy.mri.app.EspiritCalib``.

    Single-coil k-space (one coil) gets a map of ones. The kernel width shrinks to
    ``calib_width // 2`` for small calibration regions (at least 3): wider kernels leave
    too few calibration rows, and the maps then miss part of the signal (on 64×64
    synthetic data with 10 lines, kernel 6 left an 11% SENSE model residual, kernel 5
    1%).
    """
    import sigpy as sp
    import sigpy.mri as mr

    if kspace.shape[0] == 1:
        return np.ones_like(kspace, dtype=np.complex64)
    kernel_width = min(kernel_width, calib_width // 2)
    if kernel_width < 3:
        raise MriGenpriorError(
            f"calibration region of {calib_width} lines is too small for ESPIRiT (need >= 6); "
            "use a larger center fraction"
        )
    sp_device = sigpy_device(device)
    app = mr.app.EspiritCalib(
        sp.to_device(kspace, sp_device), calib_width=calib_width, thresh=thresh,
        kernel_width=kernel_width, crop=crop, device=sp_device, show_pbar=False,
    )
    return sp.to_device(app.run(), sp.cpu_device).astype(np.complex64)


def sigpy_device(device: torch.device | str):
    """The ``sigpy.Device`` matching a torch device (CUDA needs CuPy)."""
    import sigpy as sp

    device = torch.device(device)
    if device.type == "cuda":
        return sp.Device(device.index if device.index is not None else torch.cuda.current_device())
    return sp.cpu_device


def _tensor_to_array(x: torch.Tensor):
    """Share a torch tensor's memory as a NumPy (CPU) or CuPy (CUDA) array."""
    x = x.detach().resolve_conj().contiguous()
    if x.is_cuda:
        import cupy

        return cupy.from_dlpack(x)
    return x.numpy()


def _array_to_tensor(a, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return torch.from_dlpack(a)
    return torch.from_numpy(np.ascontiguousarray(a))


def _apply_linop(linop, x: torch.Tensor) -> torch.Tensor:
    """Apply a SigPy Linop to each item of the batch ``x`` = (B, *linop.ishape)."""
    import sigpy as sp

    if tuple(x.shape[1:]) != tuple(linop.ishape):
        raise MriGenpriorError(f"{linop}: expected input (batch, {tuple(linop.ishape)}), got {tuple(x.shape)}")
    arr = _tensor_to_array(x)
    with sp.get_device(arr):
        out = [linop(arr[b]) for b in range(arr.shape[0])]
        xp = sp.get_array_module(arr)
        dtype = xp.complex128 if arr.dtype == xp.complex128 else xp.complex64
        stacked = xp.stack(out).astype(dtype, copy=False)
    return _array_to_tensor(stacked, x.device)


class _LinopFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, linop):
        ctx.linop = linop
        return _apply_linop(linop, x)

    @staticmethod
    def backward(ctx, grad):
        return _apply_linop(ctx.linop.H, grad), None


class SigpyOperator:
    """Any SigPy ``Linop`` as a batched torch operator with autograd.

    Parameters
    ----------
    linop : ``sigpy.linop.Linop`` with complex input ``ishape`` and output ``oshape``.
        Its arrays must live on the same device as the tensors passed in.

    Notes
    -----
    ``forward(x)`` takes ``(B, *ishape)`` and returns ``(B, *oshape)``; the backward pass
    (and :meth:`adjoint`) applies ``linop.H``. Batches are applied item by item.
    """

    def __init__(self, linop):
        self.linop = linop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LinopFunction.apply(x, self.linop)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return _LinopFunction.apply(y, self.linop.H)

    __call__ = forward


class SenseOp:
    """Batched Cartesian SENSE operator ``A = sqrt(W) · F · S`` in torch.

    Parameters
    ----------
    mps : ``(B, C, H, W)`` complex sensitivity maps (B may be 1 and broadcast).
    weights : ``(B, H, W)`` or ``(1, H, W)`` real sampling weights (the mask). As in
        ``sigpy.mri.linop.Sense``, the square root of the weights is applied.

    Notes
    -----
    ``forward``: ``(B, H, W)`` image -> ``(B, C, H, W)`` k-space; ``adjoint`` the reverse.
    """

    def __init__(self, mps: torch.Tensor, weights: torch.Tensor):
        if mps.ndim != 4 or weights.ndim != 3 or tuple(mps.shape[-2:]) != tuple(weights.shape[-2:]):
            raise MriGenpriorError(
                f"SenseOp: maps (B, C, H, W) and weights (B, H, W) must agree, got {tuple(mps.shape)} "
                f"and {tuple(weights.shape)}"
            )
        self.mps = mps.to(torch.complex64)
        self.sqrt_weights = weights.to(torch.float32).sqrt()[:, None]

    @property
    def image_shape(self) -> Tuple[int, int]:
        return tuple(self.mps.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sqrt_weights * fft2c(self.mps * x[:, None])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sum(self.mps.conj() * ifft2c(self.sqrt_weights * y), dim=1)

    __call__ = forward


def batched_sense(mps: Sequence[np.ndarray] | np.ndarray, weights: np.ndarray, device: torch.device) -> SenseOp:
    """A :class:`SenseOp` on ``device`` from NumPy maps ``(B, C, H, W)`` and weights ``(B, H, W)``."""
    return SenseOp(torch.as_tensor(np.asarray(mps), device=device), torch.as_tensor(np.asarray(weights), device=device))
