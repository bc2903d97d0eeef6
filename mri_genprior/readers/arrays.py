"""K-space arrays (in memory, ``.npy`` files) as volumes.

An array holds ``(slices, coils, H, W)``, one multi-coil slice ``(coils, H, W)``, or
single-coil data ``(slices, H, W)`` (with ``single_coil=True``) or ``(H, W)``; centred
FFT convention of fastMRI, H = readout, W = phase encode. Without a header there is no
readout oversampling and no phase-encode padding.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from .. import MriGenpriorError
from ..io import Header, Volume, check_header, parse_header, validate_mask


def volume_array(kspace, single_coil: bool = False) -> np.ndarray:
    """``kspace`` as ``(slices, coils, H, W)`` (multi-coil) or ``(slices, H, W)`` (single-coil),
    a view where possible (a memmap stays lazy).

    Raises
    ------
    MriGenpriorError
        A rank other than 2–4, a non-complex dtype, or a 4-D array with ``single_coil``.
    """
    torch = sys.modules.get("torch")  # a tensor implies torch is imported; do not import it for NumPy input
    if torch is not None and isinstance(kspace, torch.Tensor):
        kspace = kspace.detach().cpu().numpy()
    kspace = np.asanyarray(kspace)
    if not np.iscomplexobj(kspace):
        raise MriGenpriorError(f"k-space must be complex, got dtype {kspace.dtype}")
    shape = kspace.shape
    if len(shape) == 2 or (len(shape) == 3 and not single_coil):
        kspace = kspace[None]
    if kspace.ndim not in (3, 4) or (single_coil and kspace.ndim == 4):
        expected = "(slices, H, W) or (H, W)" if single_coil else "(slices, coils, H, W), (coils, H, W) or (H, W)"
        raise MriGenpriorError(f"k-space of shape {shape}: expected {expected}")
    if 0 in kspace.shape:
        raise MriGenpriorError(f"k-space of shape {kspace.shape} is empty")
    return kspace


def sampling_mask(kspace, padding: Optional[tuple] = None) -> Optional[np.ndarray]:
    """The sampling pattern of zero-filled k-space, or None if it is fully sampled.

    ``kspace`` is ``(slices, [coils,] H, W)``. A location counts as sampled where any
    coil of any slice is non-zero; phase-encode columns outside ``padding`` (the header's
    acquired range) are ignored when deciding whether everything was sampled. Returns
    ``(W,)`` if every readout line is either fully sampled or empty, else ``(H, W)``.
    """
    h, w = kspace.shape[-2:]
    sampled = np.zeros((h, w), dtype=bool)
    for index in range(kspace.shape[0]):  # one slice at a time: no full-size temporary
        data = np.ascontiguousarray(kspace[index])
        sampled |= np.any(data != 0, axis=tuple(range(data.ndim - 2)))
    left, right = padding or (0, w)
    if sampled[:, left:right].all():
        return None
    rows_agree = np.all(sampled == sampled[:1], axis=0)
    return sampled[0].astype(np.float32) if rows_agree.all() else sampled.astype(np.float32)


def array_volume(kspace, mask=None, header=None, name: str = "kspace", single_coil: bool = False,
                 fmt: str = "array") -> Volume:
    """Wrap a k-space array into a :class:`~mri_genprior.io.Volume`.

    Parameters
    ----------
    kspace : NumPy array, memmap or torch tensor; see the module docstring for shapes.
    mask : ``(W,)`` or ``(H, W)`` sampling mask of prospectively undersampled data; None
        infers it from the zero entries (:func:`sampling_mask`): fully sampled arrays are
        undersampled retrospectively by the caller's mask settings.
    header : a :class:`~mri_genprior.io.Header`, an ISMRMRD header XML string (sizes,
        readout oversampling, padding, field of view), or None.
    name : stands for the file name: it seeds fastMRI's per-file mask and names outputs.
    fmt : the input format recorded in the provenance.
    """
    try:
        kspace = volume_array(kspace, single_coil)
    except MriGenpriorError as err:
        raise MriGenpriorError(f"{name}: {err}") from err
    shape = tuple(kspace.shape[-2:])
    if header is None:
        header = Header.from_kspace_shape(shape)
    elif not isinstance(header, Header):
        header = parse_header(header)
    path = Path(name)
    check_header(header, shape, path)
    if mask is None:
        mask = sampling_mask(kspace, header.padding)
    else:
        mask = validate_mask(np.asarray(mask), shape, path)
    return Volume(path, kspace, mask, None, header, attrs={}, source={"format": fmt})


def open_npy(path: os.PathLike | str) -> Volume:
    """A ``.npy`` file of k-space (read lazily through a memmap); zeros are unsampled."""
    try:
        kspace = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise MriGenpriorError(f"{path}: not a readable .npy file ({err})") from err
    return array_volume(kspace, name=str(path), fmt="npy")
