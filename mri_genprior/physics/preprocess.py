"""Grid, crop and scale conventions shared by the pipeline, training and the methods."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .. import MriGenpriorError
from .operators import FFT_DIMS


def ifft2c_np(kspace: np.ndarray) -> np.ndarray:
    """NumPy/SigPy twin of :func:`ifft2c` (``sigpy.ifft`` over the last two axes)."""
    import sigpy as sp

    return sp.ifft(kspace, axes=FFT_DIMS).astype(np.complex64)


def rss(coil_images: np.ndarray, axis: int = 0) -> np.ndarray:
    """Root sum of squares over the coil axis."""
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=axis))


def crop_or_pad(x, shape: Tuple[int, int]):
    """Centre-crop or zero-pad the last two axes of ``x`` (a NumPy array or a torch tensor)
    to ``shape``.

    Uses fastMRI's centring (``fastmri.data.transforms.center_crop``) when cropping;
    images narrower than ``shape`` (some fastMRI brain files, generators smaller than the
    image grid) are zero-padded, ``(size − n) // 2`` before.
    """
    import torch

    out = x
    for axis, size in zip((-2, -1), shape):
        n = out.shape[axis]
        if n > size:
            start = (n - size) // 2
            out = out[(Ellipsis, slice(start, start + size)) + (slice(None),) * (-1 - axis)]
        elif n < size:
            before, after = (size - n) // 2, size - n - (size - n) // 2
            if isinstance(out, torch.Tensor):
                out = torch.nn.functional.pad(out, [0, 0] * (-1 - axis) + [before, after])
            else:
                widths = [(0, 0)] * out.ndim
                widths[axis] = (before, after)
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
