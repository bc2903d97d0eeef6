"""Coil sensitivities: low-resolution maps, ESPIRiT maps (SigPy) and SENSE coil combination.

:func:`coil_maps` estimates maps from the measured k-space of one slice by one of
:data:`MAPS`:

* ``auto`` (the default): ``espirit`` with at least :data:`ESPIRIT_LINES` calibration
  lines, else ``jsense`` (measured on real and synthetic scans: docs/real_data.md); with
  ``espirit``, a second set of maps (soft-SENSE) where the data need it: where the
  covariance's second eigenvalue exceeds :data:`SECOND_SET_CROP` on at least
  :data:`SECOND_SET_SUPPORT` of the image, as where a field of view tighter than the
  object makes two tissues share a pixel.
* ``jsense``: maps and a low-resolution image estimated jointly from the measured samples
  of the centre :data:`JSENSE_WIDTH` × :data:`JSENSE_WIDTH` k-space block
  (``sigpy.mri.app.JsenseRecon``: JSENSE with NLINV's truncated-Fourier maps and
  Tikhonov term): the measured lines beside the calibration region count too, so it
  works from 4 calibration lines. The maps cover the whole field of view (Σ|S|² = 1).
* ``joint``: ``lowres`` maps refined once by an image estimate: a SENSE image, its coil
  k-space with the measured samples restored, and ``lowres`` maps of a region twice as
  wide as the calibration region (at least :data:`JOINT_LINES` lines).
* ``lowres``: coil images from the whole calibration region (all readout rows × the
  centre lines of a 1-D mask), Hann-windowed, divided by their root sum of squares.
  The maps cover the whole field of view (Σ|S|² = 1 everywhere).
* ``espirit``: ESPIRiT (SigPy's ``EspiritCalib`` steps) on the whole calibration region,
  for a 1-D mask the rectangle of every readout row × the centre lines, blocks 6 wide but
  at most half the lines across, maps cropped where the eigenvalue < 0.95 with holes in
  the support filled (:func:`espirit_maps`); one set.
* ``espirit2``: the same and always a second set (soft-SENSE, Uecker et al. 2014: the
  second eigenvector where its eigenvalue exceeds :data:`SECOND_SET_CROP`).

Several sets of maps come side by side along the last axis, ``(coils, H, M·W)``
(:class:`~mri_genprior.physics.sense.SensePhysics`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from .. import MriGenpriorError, check_choice
from ..masks import calibration_region, centre_calibration, centred, expand
from .operators import cupy


def coil_combine(kspace: np.ndarray, mps: np.ndarray) -> np.ndarray:
    """SENSE coil combination ``Σ_c conj(S_c) · F⁻¹ k_c`` of fully sampled ``(coils, H, W)``
    k-space with maps ``(coils, H, W)`` (``sigpy.mri.linop.Sense(mps).H``): ``(H, W)`` complex64."""
    import sigpy.mri as mr

    return mr.linop.Sense(mps).H(kspace).astype(np.complex64)


MAPS = ("auto", "jsense", "joint", "lowres", "espirit", "espirit2")
DEFAULT_MAPS = "auto"
MIN_CALIBRATION = 4  # fewer fully sampled centre lines than this: no map estimate is usable
JOINT_LINES = 16     # the least width of the region the joint maps are re-estimated from
ESPIRIT_LINES = 7    # from this many calibration lines on, ESPIRiT on the rectangle beats jsense's maps
JSENSE_WIDTH = 24    # jsense: side of the centre k-space block the maps and image are fitted to
SECOND_SET_CROP = 0.9      # a second set of ESPIRiT maps where its eigenvalue exceeds this
SECOND_SET_SUPPORT = 0.01  # auto: a second set when it covers at least this fraction of the image
JSENSE_KERNEL = 8    # jsense: side of each map's k-space support
JSENSE_LAMDA = 1e-2  # jsense: Tikhonov weight (SigPy normalises the data to unit norm)


def lowres_maps(kspace: np.ndarray, region: Tuple[int, int]) -> np.ndarray:
    """Maps ``(coils, H, W)`` complex64 from the centred ``region`` = (rows, columns) of
    ``kspace`` ``(coils, H, W)``: Hann-windowed coil images divided by their RSS."""
    from .preprocess import ifft2c_np, rss

    h, w = kspace.shape[-2:]
    window = np.zeros((h, w), np.float32)
    rows, cols = min(region[0], h), min(region[1], w)
    window[centred(h, rows), centred(w, cols)] = np.outer(np.hanning(rows + 2)[1:-1], np.hanning(cols + 2)[1:-1])
    images = ifft2c_np(kspace * window)
    norm = rss(images)
    return (images / np.maximum(norm, 1e-12 * norm.max())).astype(np.complex64)


def joint_maps(kspace: np.ndarray, mask: np.ndarray, region: Tuple[int, int], iterations: int = 1,
               lamda: float = 1e-2, max_iter: int = 30) -> np.ndarray:
    """Maps ``(coils, H, W)`` complex64 refined by alternating image and map estimates.

    Start from :func:`lowres_maps` of the calibration ``region``; then ``iterations``
    times: a SENSE image (``sigpy.mri.app.SenseRecon``, Tikhonov ``lamda`` for k-space
    scaled by :func:`~mri_genprior.physics.scale_factor`), its coil k-space with the
    measured samples restored, and :func:`lowres_maps` of that k-space's centre, twice
    the calibration width and at least :data:`JOINT_LINES` wide (all readout rows for a
    1-D mask): the measured lines outside the calibration region sharpen the maps.
    """
    import sigpy as sp
    import sigpy.mri as mr


    weights = expand(mask, kspace.shape[-2:])
    width = max(2 * region[1], JOINT_LINES)
    wider = (region[0] if np.ndim(mask) == 1 else width, width)
    mps = lowres_maps(kspace, region)
    for _ in range(iterations):
        x = mr.app.SenseRecon(kspace, mps, lamda=lamda, weights=weights, max_iter=max_iter, show_pbar=False).run()
        full = np.where(weights > 0, kspace, sp.fft(mps * x, axes=(-2, -1)))
        mps = lowres_maps(full, wider)
    return mps


def coil_maps(kspace: np.ndarray, mask: np.ndarray, kind: str = DEFAULT_MAPS,
              device: torch.device | str = "cpu") -> np.ndarray:
    """Sensitivity maps ``(coils, H, M·W)`` (M sets side by side; mostly M = 1) of one slice's
    masked k-space by method ``kind`` (see the module docstring).

    Raises
    ------
    MriGenpriorError
        Unknown ``kind``, or a calibration region narrower than :data:`MIN_CALIBRATION` lines.
    """

    check_choice("unknown coil-map method", kind, MAPS)
    if kspace.shape[0] == 1:
        return np.ones_like(kspace, dtype=np.complex64)
    region = calibration_region(mask, kspace.shape[-2:])
    if region[1] < MIN_CALIBRATION:
        raise MriGenpriorError(f"only {region[1]} fully sampled centre lines: coil maps need at least "
                               f"{MIN_CALIBRATION}; use a larger --center-fraction (e.g. "
                               f"{MIN_CALIBRATION / kspace.shape[-1] + 0.005:.2f})")
    sets = {"auto": None, "espirit2": 2}.get(kind, 1)
    kind = resolve_maps(kind, region[1])
    if kind == "jsense":
        return jsense_maps(kspace, mask, device)
    if kind == "joint":
        return joint_maps(kspace, mask, region)
    if kind == "lowres":
        return lowres_maps(kspace, region)
    return espirit_maps(centre_calibration(kspace, mask), region, device, sets=sets)


def resolve_maps(kind: str, calibration_lines: int) -> str:
    """The map method ``kind`` stands for with ``calibration_lines`` lines: ``auto`` becomes
    ``espirit`` from :data:`ESPIRIT_LINES` lines on, else ``jsense``."""
    if kind != "auto":
        return kind
    return "espirit" if calibration_lines >= ESPIRIT_LINES else "jsense"


def jsense_maps(kspace: np.ndarray, mask: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Maps ``(coils, H, W)`` complex64 estimated jointly with a low-resolution image
    (``sigpy.mri.app.JsenseRecon``, see the module docstring) from the measured samples
    (``mask``, 1-D or 2-D) of ``kspace`` ``(coils, H, W)``.

    Raises
    ------
    MriGenpriorError
        The estimate is not finite (SigPy divides by the maps' root sum of squares).
    """
    import sigpy as sp
    import sigpy.mri as mr


    weights = expand(mask, kspace.shape[-2:]).astype(np.float32)
    width = min(JSENSE_WIDTH, *kspace.shape[-2:])
    sp_device = sigpy_device(device)
    app = mr.app.JsenseRecon(sp.to_device(kspace, sp_device), mps_ker_width=min(JSENSE_KERNEL, width),
                             ksp_calib_width=width, lamda=JSENSE_LAMDA, weights=sp.to_device(weights, sp_device),
                             device=sp_device, show_pbar=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        mps = sp.to_device(app.run(), sp.cpu_device).astype(np.complex64)
    if not np.isfinite(mps).all():
        raise MriGenpriorError("jsense coil maps are not finite (the joint fit diverged); try --maps joint")
    return mps


def espirit_maps(
    kspace: np.ndarray,
    region: Tuple[int, int],
    device: torch.device | str = "cpu",
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
    sets: Optional[int] = 1,
) -> np.ndarray:
    """ESPIRiT sensitivity maps ``(coils, H, W)`` complex64 (Uecker et al. 2014) calibrated
    on the centred ``region`` = (rows, columns) of ``kspace`` ``(coils, H, W)``.

    The steps are ``sigpy.mri.app.EspiritCalib``'s (a square region of at least
    2 × ``kernel_width`` gives its maps): the calibration matrix of k-space blocks, its
    right singular vectors above ``thresh`` × the largest singular value as kernels, their
    image-domain covariance, its top eigenvector per pixel by power iteration
    (``max_iter``), the phase relative to coil 0, maps cropped where the eigenvalue is
    below ``crop``. SigPy calibrates on a square, but a 1-D mask's calibration data are a
    rectangle, every readout row × the centre lines: the blocks come from the whole
    rectangle here (a 230-row scan with 14 lines gives a 2025 × 288 calibration matrix for
    8 coils, a 14 × 14 square 81 × 288: fewer rows than unknowns).

    Each block is ``kernel_width`` along a side, but at most half the region's lines along
    it (7 or 8 calibration lines give 6 × 3 or 6 × 4 blocks), so that enough calibration
    rows remain. Holes in the cropped support (pixels inside the object whose eigenvalue
    dips below ``crop``) are filled. docs/real_data.md has the measurements behind these
    choices.
    Single-coil k-space gets a map of ones.

    ``sets=2`` appends a second set (soft-SENSE): the covariance's second eigenvector
    (``eigh``), phase relative to coil 0, kept where its eigenvalue exceeds
    :data:`SECOND_SET_CROP`, as ``(coils, H, 2W)``; ``sets=None`` appends it only where it
    covers at least :data:`SECOND_SET_SUPPORT` of the image.

    Raises
    ------
    MriGenpriorError
        Fewer than 6 rows or columns in ``region``.
    """
    import sigpy as sp
    from scipy.ndimage import binary_fill_holes

    if kspace.shape[0] == 1:
        return np.ones_like(kspace, dtype=np.complex64)
    coils, shape = kspace.shape[0], kspace.shape[1:]
    width = tuple(min(kernel_width, r // 2) for r in region)  # (rows, columns) of each block
    if min(width) < 3:
        raise MriGenpriorError(f"calibration region of {min(region)} lines is too small for ESPIRiT "
                               "(need >= 6); use a larger center fraction or --maps jsense")
    sp_device = sigpy_device(device)
    xp = sp_device.xp
    with sp_device:
        calib = sp.resize(sp.to_device(kspace, sp_device), (coils, *(min(r, n) for r, n in zip(region, shape))))
        blocks = sp.array_to_blocks(calib, list(width), [1, 1]).reshape(coils, -1, width[0] * width[1])
        _, s, vh = xp.linalg.svd(blocks.transpose(1, 0, 2).reshape(-1, blocks.shape[-1] * coils), full_matrices=False)
        kernels = vh[s > thresh * s.max()].reshape(-1, coils, *width)
        covariance = _kernel_covariance(kernels, kspace.shape, xp)
        mps = xp.ones(kspace.shape[::-1] + (1,), dtype=kspace.dtype)
        power = sp.alg.PowerMethod(lambda x: covariance @ x, mps, max_iter=max_iter,
                                   norm_func=lambda x: xp.sum(xp.abs(x) ** 2, axis=-2, keepdims=True) ** 0.5)
        while not power.done():
            power.update()
        mps = mps.T[0]
        mps *= xp.conj(mps[0] / xp.abs(mps[0]))
        support = binary_fill_holes(sp.to_device(power.max_eig.T[0, 0] > crop, sp.cpu_device))
        mps *= sp.to_device(support, sp_device)
        second = _second_set(covariance, sets, xp) if sets != 1 else None
        if second is not None:
            mps = xp.concatenate([mps, second], axis=-1)
        return sp.to_device(mps, sp.cpu_device).astype(np.complex64)


def _kernel_covariance(kernels, shape: Tuple[int, ...], xp):
    """ESPIRiT's image-domain covariance ``(W, H, C, C)`` (SigPy's layout) of the k-space
    ``kernels`` ``(K, C, *width)`` zero-padded to ``shape`` ``(C, H, W)``: Σ_k G_k G_kᴴ,
    scaled by H·W / block size."""
    import sigpy as sp

    coils, size = shape[0], int(np.prod(kernels.shape[2:]))
    covariance = xp.zeros(shape[:0:-1] + (coils, coils), dtype=kernels.dtype)
    for kernel in kernels:
        image = sp.ifft(sp.resize(kernel, shape), axes=(-2, -1)).T[..., None]
        covariance += image @ image.swapaxes(-1, -2).conj()
    covariance *= np.prod(shape[1:]) / size
    return covariance


def _second_set(covariance, sets: Optional[int], xp):
    """The soft-SENSE second set ``(C, H, W)``: the covariance's second eigenvector, phase
    relative to coil 0, zero where its eigenvalue is at most :data:`SECOND_SET_CROP`; with
    ``sets=None``, ``None`` unless it covers :data:`SECOND_SET_SUPPORT` of the image."""
    values, vectors = xp.linalg.eigh(covariance)  # ascending eigenvalues per pixel
    keep = values[..., -2] > SECOND_SET_CROP
    if sets != 2 and float(keep.mean()) < SECOND_SET_SUPPORT:
        return None
    second = vectors[..., -2] * keep[..., None]
    second *= xp.exp(-1j * xp.angle(second[..., :1]))
    return second.T


def sigpy_device(device: torch.device | str):
    """The ``sigpy.Device`` matching a torch device (CUDA needs CuPy: the ``gpu`` install extra)."""
    import sigpy as sp

    device = torch.device(device)
    if device.type == "cuda":
        cupy()  # where CuPy is missing: one line naming the install extra, not SigPy's ImportError
        return sp.Device(device.index if device.index is not None else torch.cuda.current_device())
    return sp.cpu_device
