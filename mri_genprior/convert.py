"""Write k-space arrays (e.g. ``.npy`` files) as fastMRI-format HDF5 files, for example to
make a scored reference from fully sampled data, and derive other real test cases from one
fully sampled scan: a lower resolution (:func:`lower_resolution`), a larger field of
view with the scan's own coil noise around it (:func:`pad_field_of_view`), or a lower SNR
(:func:`add_noise`).
(``reconstruct`` also reads ``.npy`` directly, through the same array reader:
:mod:`mri_genprior.readers.arrays`.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import MriGenpriorError
from .io import make_header_xml
from .writers.fastmri import write_kspace_file
from .masks import centred
from .physics import ifft2c_np, rss
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


def _corner_noise_factor(coils: np.ndarray, corner: int) -> np.ndarray:
    """Cholesky factor ``(C, C)`` of the coil covariance of the four ``corner`` × ``corner``
    corners of coil images ``(C, H, W)`` (assumed background, so coil noise)."""
    c, h, w = coils.shape
    if 2 * corner > min(h, w):
        raise MriGenpriorError(f"corners of {corner} pixels do not fit a {h} x {w} image")
    background = np.concatenate([coils[:, rows, cols].reshape(c, -1)
                                 for rows in (slice(0, corner), slice(h - corner, h))
                                 for cols in (slice(0, corner), slice(w - corner, w))], axis=1)
    try:
        return np.linalg.cholesky(background @ background.conj().T / background.shape[1])
    except np.linalg.LinAlgError:
        raise MriGenpriorError("the image corners hold no coil noise to draw from (singular covariance)") from None


def _fully_sampled_images(kspace: np.ndarray, action: str) -> np.ndarray:
    """Coil images ``(N, C, H, W)`` of fully sampled multi-coil ``kspace`` ``(..., C, H, W)``;
    a one-line error naming ``action`` otherwise."""
    if kspace.ndim not in (3, 4):
        raise MriGenpriorError(f"expected multi-coil k-space (coils, H, W) or (slices, coils, H, W), "
                               f"got {kspace.shape}")
    if sampling_mask(np.asarray(volume_array(kspace))) is not None:
        raise MriGenpriorError(f"{action} needs fully sampled k-space, but some samples are zero")
    images = ifft2c_np(kspace)
    return images.reshape((-1,) + images.shape[-3:])


def _coil_noise(factor: np.ndarray, shape, rng: np.random.Generator) -> np.ndarray:
    """Complex Gaussian noise ``(C, *shape)`` of covariance ``factor @ factor^H``."""
    c = factor.shape[0]
    white = (rng.standard_normal((c,) + tuple(shape)) + 1j * rng.standard_normal((c,) + tuple(shape))) / np.sqrt(2)
    return np.einsum("ij,j...->i...", factor, white)


def pad_field_of_view(kspace: np.ndarray, shape, corner: int = 16, seed: int = 0) -> np.ndarray:
    """K-space ``(..., C, *shape)`` of the coil images of fully sampled ``kspace``
    ``(..., C, H, W)`` placed in the centre of a larger field of view ``shape``, whose other
    pixels hold complex Gaussian noise with the coil covariance of each slice's four
    ``corner`` × ``corner`` image corners (assumed background): the same scan with more
    background around it, as in scans whose object fills a quarter of the image.

    Centred orthonormal FFTs (fastMRI's convention); noise drawn from ``seed``."""
    import sigpy as sp

    flat = _fully_sampled_images(kspace, "padding the field of view")
    big = _check_fits(kspace, shape, "larger")
    c, h, w = flat.shape[-3:]
    rng = np.random.default_rng(seed)
    out = np.empty((len(flat), c) + big, dtype=np.complex64)
    for i, coils in enumerate(flat):
        padded = _coil_noise(_corner_noise_factor(coils, corner), big, rng)
        padded[:, centred(big[0], h), centred(big[1], w)] = coils
        out[i] = sp.fft(padded, axes=(-2, -1))
    return out.reshape(kspace.shape[:-3] + (c,) + big)


def fold_field_of_view(kspace: np.ndarray, fraction: float) -> np.ndarray:
    """K-space ``(..., C, H, P)`` of fully sampled ``kspace`` ``(..., C, H, W)`` in a field of view
    ``fraction`` times as wide along the phase encode (the last axis), ``P = round(fraction W)``:
    the coil images summed periodically with period P, the P columns around the image centre
    kept. This is what sampling k-space 1/fraction times as coarsely does (up to a constant
    scale): an object wider than the new field of view wraps around, as in scans prescribed
    tighter than the head. Centred orthonormal FFTs (fastMRI's convention)."""
    import sigpy as sp

    if not 0 < fraction < 1:
        raise MriGenpriorError(f"the field-of-view fraction must be between 0 and 1, got {fraction}")
    flat = _fully_sampled_images(kspace, "folding the field of view")
    w = flat.shape[-1]
    p = int(round(fraction * w))
    if p < 2:
        raise MriGenpriorError(f"folding {w} columns by {fraction} leaves {p}")
    columns = (np.arange(w) - (w // 2 - p // 2)) % p  # input column w/2 (the centre) lands on output p/2
    folded = np.zeros(flat.shape[:-1] + (p,), np.complex64)
    for source, target in enumerate(columns):
        folded[..., target] += flat[..., source]
    return sp.fft(folded, axes=(-2, -1)).astype(np.complex64).reshape(kspace.shape[:-1] + (p,))


def add_noise(kspace: np.ndarray, factor: float, corner: int = 16, seed: int = 0) -> np.ndarray:
    """Fully sampled ``kspace`` ``(..., C, H, W)`` with its coil noise std raised ``factor``-fold:
    complex Gaussian noise of ``factor² − 1`` times the coil covariance of each slice's four
    ``corner`` × ``corner`` image corners (assumed background) is added to every sample, the
    same scan at a lower SNR (an orthonormal FFT keeps white noise white with the same
    covariance, so it is drawn in k-space directly). Noise drawn from ``seed``."""
    if not np.isfinite(factor) or factor <= 1:
        raise MriGenpriorError(f"the noise factor must be above 1 (the scan's own noise), got {factor}")
    flat = _fully_sampled_images(kspace, "adding noise")
    rng = np.random.default_rng(seed)
    noisy = np.asarray(kspace).reshape(flat.shape).astype(np.complex64)
    for i, coils in enumerate(flat):
        noisy[i] += _coil_noise(np.sqrt(factor ** 2 - 1) * _corner_noise_factor(coils, corner),
                                coils.shape[-2:], rng).astype(np.complex64)
    return noisy.reshape(np.shape(kspace))
