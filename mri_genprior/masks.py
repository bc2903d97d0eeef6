"""Undersampling masks.

Masks are float32 arrays: ``(W,)`` for 1-D Cartesian sampling along the phase-encode
axis, or ``(H, W)`` for 2-D sampling (Poisson disc, prospective data).
:func:`expand` turns either into the ``(H, W)`` weights the SENSE operator takes.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from . import MriGenpriorError, check_choice

FASTMRI_MASKS = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
MASK_TYPES = FASTMRI_MASKS + ("poisson",)


def check_sampling(acceleration: float, center_fraction: float) -> None:
    """Refuse an acceleration below 1 or a centre fraction outside (0, 1] (:class:`MriGenpriorError`)."""
    if not acceleration >= 1:
        raise MriGenpriorError(f"acceleration must be >= 1, got {acceleration}")
    if not 0 < center_fraction <= 1:
        raise MriGenpriorError(f"center fraction must be in (0, 1], got {center_fraction}")


def file_seed(name: str) -> Tuple[int, ...]:
    """fastMRI's per-file seed: the character codes of the file name."""
    return tuple(map(ord, name))


def fastmri_mask(
    kind: str,
    width: int,
    acceleration: float,
    center_fraction: float,
    seed: int | Tuple[int, ...] | None,
    padding: Optional[Tuple[int, int]] = None,
) -> np.ndarray:
    """Sample a 1-D ``(W,)`` phase-encode mask with a fastMRI ``MaskFunc``.

    fastMRI's mask functions mask ``shape[-2]`` (they expect a trailing real/imag axis),
    so they are called with shape ``(1, W, 1)``. Columns outside ``padding`` are zeroed,
    as ``fastmri.data.transforms.apply_mask`` does.
    """
    from fastmri.data.subsample import create_mask_for_mask_type

    check_choice("unknown fastMRI mask type", kind, FASTMRI_MASKS)
    check_sampling(acceleration, center_fraction)
    accel = int(acceleration) if float(acceleration).is_integer() else acceleration
    func = create_mask_for_mask_type(kind, [center_fraction], [accel])
    try:
        mask, _ = func((1, width, 1), seed=seed)
    except (ValueError, AssertionError) as err:
        raise MriGenpriorError(f"{kind} mask with acceleration {acceleration} on {width} columns: {err}") from err
    mask = mask.numpy().reshape(width).astype(np.float32)
    if padding is not None:
        mask[: padding[0]] = 0
        mask[padding[1]:] = 0
    return mask


def poisson_mask(shape: Tuple[int, int], acceleration: float, calib: int, seed: int) -> np.ndarray:
    """2-D variable-density Poisson-disc ``(H, W)`` mask from ``sigpy.mri.poisson``."""
    import sigpy.mri as mr

    check_sampling(acceleration, 1.0)
    mask = mr.poisson(tuple(shape), acceleration, calib=(calib, calib), seed=seed, dtype=np.complex64)
    return np.abs(mask).astype(np.float32)


def centred(size: int, length: int) -> slice:
    """The run of ``length`` indices of ``range(size)`` centred on the k-space centre
    ``size // 2`` (for an even ``length``, one index more before the centre than after it):
    where the calibration region of a centred mask lies."""
    return slice(size // 2 - length // 2, size // 2 + (length + 1) // 2)


def expand(mask: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Broadcast a ``(W,)`` or ``(H, W)`` mask to ``(H, W)`` float32 weights."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim == 1:
        if mask.shape[0] != shape[1]:
            raise MriGenpriorError(f"1-D mask of length {mask.shape[0]} does not match {shape[1]} phase encodes")
        return np.broadcast_to(mask[None, :], shape).copy()
    if mask.shape != tuple(shape):
        raise MriGenpriorError(f"mask of shape {mask.shape} does not match k-space {tuple(shape)}")
    return mask


def acceleration(mask: np.ndarray, padding: Optional[Tuple[int, int]] = None) -> float:
    """Achieved acceleration: acquirable samples / sampled samples.

    ``padding`` restricts a 1-D mask to the columns that hold data, so the figure is
    comparable to the nominal fastMRI acceleration.
    """
    mask = np.asarray(mask) != 0
    if mask.ndim == 1 and padding is not None:
        mask = mask[padding[0]:padding[1]]
    sampled = int(mask.sum())
    if sampled == 0:
        raise MriGenpriorError("mask samples nothing")
    return mask.size / sampled


def _calibration_run(mask: np.ndarray) -> Tuple[int, int]:
    """``(first, stop)`` of the contiguous sampled columns of a 1-D ``mask`` around the
    centre column ``W // 2`` (``(W // 2, W // 2)`` when the centre is not sampled)."""
    c = mask.shape[0] // 2
    if not mask[c]:
        return c, c
    lo, hi = c, c
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi + 1 < mask.shape[0] and mask[hi + 1]:
        hi += 1
    return lo, hi + 1


def calibration_width(mask: np.ndarray) -> int:
    """Width of the fully sampled, centred calibration region of a mask.

    For a 1-D mask: the number of contiguous sampled columns around the centre (a random
    line beside the centre lines, or fastMRI's centring on an odd number of columns, can
    make that run one column off :func:`~mri_genprior.physics.preprocess.centred`: see
    :func:`centre_calibration`). For a 2-D mask: the side of the largest fully sampled
    centred square.
    """
    mask = np.asarray(mask) != 0
    if mask.ndim == 1:
        first, stop = _calibration_run(mask)
        return stop - first
    ch, cw = mask.shape[0] // 2, mask.shape[1] // 2
    width = 0
    for half in range(1, min(mask.shape) // 2 + 1):
        if not mask[ch - half:ch + half, cw - half:cw + half].all():
            break
        width = 2 * half
    return width


def centre_calibration(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``kspace`` ``(..., H, W)`` with its columns rolled cyclically so that a 1-D mask's
    calibration run lies where ``centred(W, calibration_width(mask))`` (and
    ``sigpy.resize``) crops it; 2-D masks' squares are centred already (returned as is).

    Without it the centred crop of a run that is one column off (a random line beside the
    centre lines on one side; fastMRI's centre lines on an odd number of columns) holds an
    unmeasured, zero column. Only for estimates that use the crop's contents alone (ESPIRiT's
    calibration matrix, the calibration noise variance): the roll multiplies every coil image
    by the same linear phase, which they do not depend on.
    """
    mask = np.asarray(mask) != 0
    if mask.ndim != 1:
        return kspace
    first, stop = _calibration_run(mask)
    shift = centred(mask.shape[0], stop - first).start - first
    return np.roll(kspace, shift, axis=-1) if shift else kspace


def calibration_region(mask: np.ndarray, shape: Tuple[int, int]) -> Tuple[int, int]:
    """The centred, fully sampled calibration region ``(rows, columns)`` of k-space ``shape``.

    A 1-D mask samples whole readout lines, so its region is a rectangle: every readout
    row × the contiguous centre columns. A 2-D mask gives the largest centred square.
    """
    width = calibration_width(mask)
    return (int(shape[0]), width) if np.asarray(mask).ndim == 1 else (width, width)


def make_mask(
    kind: str,
    shape: Tuple[int, int],
    acceleration: float,
    center_fraction: float,
    seed: int | Sequence[int] | None,
    padding: Optional[Tuple[int, int]] = None,
) -> np.ndarray:
    """Retrospective mask of any supported ``kind`` for k-space of ``shape = (H, W)``.

    fastMRI kinds give ``(W,)``; ``poisson`` gives ``(H, W)`` with a calibration square
    of side ``round(center_fraction * W)``.
    """
    if kind == "poisson":
        seed_int = int(np.random.SeedSequence(list(seed) if isinstance(seed, tuple) else seed).generate_state(1)[0])
        calib = max(4, int(round(center_fraction * shape[1])))
        return poisson_mask(shape, acceleration, calib, seed_int)
    return fastmri_mask(kind, shape[1], acceleration, center_fraction,
                        tuple(seed) if isinstance(seed, (list, tuple)) else seed, padding)
