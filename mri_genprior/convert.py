"""Write k-space arrays (e.g. ``.npy`` files) as fastMRI-format HDF5 files, for example to
make a scored reference from fully sampled data, and derive other real test cases from one
fully sampled scan: a lower resolution (:func:`lower_resolution`) or a larger field of
view with the scan's own coil noise around it (:func:`pad_field_of_view`).
(``reconstruct`` also reads ``.npy`` directly, through the same array reader:
:mod:`mri_genprior.readers.arrays`.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import MriGenpriorError
from .io import make_header_xml, write_kspace_file
from .physics import ifft2c_np, rss
from .physics.preprocess import centred
from .readers.arrays import sampling_mask, volume_array


def wrap_kspace(kspace: np.ndarray, out: os.PathLike | str, attrs: dict | None = None,
                reference: bool = False) -> Path:
    """Write ``(coils, H, W)`` or ``(slices, coils, H, W)`` k-space as a fastMRI file.

    The centred-FFT convention of fastMRI is assumed. Zero entries are taken as not
    sampled: if any are present the file gets a ``mask`` (1-D or 2-D, see
    :func:`~mri_genprior.readers.arrays.sampling_mask`) and is treated as prospectively
    undersampled. There is no readout oversampling (recon size = k-space size).

    With ``reference=True`` (fully sampled k-space only) the k-space is divided by the
    maximum of its RSS image and that RSS image is stored as ``reconstruction_rss``, as
    fastMRI makes its references: the file can then be undersampled retrospectively and
    scored.
    """
    kspace = np.asarray(volume_array(kspace))
    if kspace.ndim != 4:
        raise MriGenpriorError(f"expected multi-coil k-space, got shape {kspace.shape}")
    if not np.all(np.isfinite(kspace)):
        raise MriGenpriorError("k-space contains NaN or Inf values")
    mask = sampling_mask(kspace)
    target = None
    if reference:
        if mask is not None:
            raise MriGenpriorError("a reference needs fully sampled k-space, but some samples are zero")
        image = rss(ifft2c_np(kspace), axis=1)
        kspace = kspace / image.max()
        target = image / image.max()
    h, w = kspace.shape[-2:]
    header = make_header_xml((h, w, 1), (h, w, 1), pe_center=w // 2, pe_max=w - 1)
    return write_kspace_file(out, kspace, header, dict(attrs or {}), mask=mask, target=target)


def _check_fits(kspace: np.ndarray, shape, relation: str) -> tuple:
    """``shape`` as ``(h, w)`` ints if it is a ``relation`` ("smaller" or "larger", or equal)
    grid than ``kspace``'s last two axes; else a one-line error."""
    shape = tuple(int(n) for n in shape)
    h, w = kspace.shape[-2:]
    fits = len(shape) == 2 and min(shape) >= 1 and (
        shape[0] <= h and shape[1] <= w if relation == "smaller" else shape[0] >= h and shape[1] >= w)
    if not fits:
        raise MriGenpriorError(f"expected a {relation} grid than the k-space's {h} x {w}, got {shape}")
    return shape


def lower_resolution(kspace: np.ndarray, shape) -> np.ndarray:
    """The centred ``shape`` ``(h, w)`` block of k-space ``(..., H, W)``
    (DC at ``H // 2``, ``W // 2``, kept at ``h // 2``, ``w // 2``): the same field of view at
    a lower resolution, with the same samples and so the same noise."""
    h, w = _check_fits(kspace, shape, "smaller")
    return np.ascontiguousarray(kspace[..., centred(kspace.shape[-2], h), centred(kspace.shape[-1], w)])


def pad_field_of_view(kspace: np.ndarray, shape, corner: int = 16, seed: int = 0) -> np.ndarray:
    """K-space ``(..., C, *shape)`` of the coil images of fully sampled ``kspace``
    ``(..., C, H, W)`` placed in the centre of a larger field of view ``shape``, whose other
    pixels hold complex Gaussian noise with the coil covariance of each slice's four
    ``corner`` × ``corner`` image corners (assumed background): the same scan with more
    background around it, as in scans whose object fills a quarter of the image.

    Centred orthonormal FFTs (fastMRI's convention); noise drawn from ``seed``."""
    import sigpy as sp

    if kspace.ndim not in (3, 4):
        raise MriGenpriorError(f"expected multi-coil k-space (coils, H, W) or (slices, coils, H, W), "
                               f"got {kspace.shape}")
    big = _check_fits(kspace, shape, "larger")
    if sampling_mask(np.asarray(volume_array(kspace))) is not None:
        raise MriGenpriorError("padding the field of view needs fully sampled k-space, but some samples are zero")
    images = ifft2c_np(kspace)
    c, h, w = images.shape[-3:]
    if 2 * corner > min(h, w):
        raise MriGenpriorError(f"corners of {corner} pixels do not fit a {h} x {w} image")
    rng = np.random.default_rng(seed)
    flat = images.reshape(-1, c, h, w)
    out = np.empty((len(flat), c) + big, dtype=np.complex64)
    for i, coils in enumerate(flat):
        background = np.concatenate([coils[:, rows, cols].reshape(c, -1)
                                     for rows in (slice(0, corner), slice(h - corner, h))
                                     for cols in (slice(0, corner), slice(w - corner, w))], axis=1)
        try:
            factor = np.linalg.cholesky(background @ background.conj().T / background.shape[1])
        except np.linalg.LinAlgError:
            raise MriGenpriorError("the image corners hold no coil noise to pad with (singular covariance)") from None
        white = (rng.standard_normal((c,) + big) + 1j * rng.standard_normal((c,) + big)) / np.sqrt(2)
        padded = np.einsum("ij,j...->i...", factor, white)
        padded[:, centred(big[0], h), centred(big[1], w)] = coils
        out[i] = sp.fft(padded, axes=(-2, -1))
    return out.reshape(images.shape[:-3] + (c,) + big)
