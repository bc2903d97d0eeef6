"""Write k-space arrays (e.g. ``.npy`` files) as fastMRI-format HDF5 files, for example to
make a scored reference from fully sampled data. (``reconstruct`` also reads ``.npy``
directly, through the same array reader: :mod:`mri_genprior.readers.arrays`.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import MriGenpriorError
from .io import make_header_xml, write_kspace_file
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
