"""BART ``.cfl``/``.hdr`` arrays (the format :mod:`mri_genprior.readers.bart` reads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import atomic_path
from ..readers.bart import COIL, DIMS, PHS1, READ, SLICE, base_path


def to_bart(kspace: np.ndarray) -> np.ndarray:
    """fastMRI-order ``(slices, coils, H, W)`` k-space as a 16-dimensional BART array."""
    kspace = np.asarray(kspace)
    out = kspace.transpose(2, 3, 1, 0)  # (H, W, coils, slices)
    shape = [1] * DIMS
    shape[READ], shape[PHS1], shape[COIL], shape[SLICE] = out.shape
    return out.reshape(shape)


def write_cfl(path: os.PathLike | str, array: np.ndarray) -> Path:
    """Write ``array`` (BART dimension order) as ``name.hdr`` + ``name.cfl``, each atomically."""
    base = base_path(path)
    array = np.asarray(array, dtype=np.complex64)
    base.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(base.with_suffix(".hdr")) as tmp:
        tmp.write_text("# Dimensions\n" + " ".join(str(d) for d in array.shape) + "\n")
    with atomic_path(base.with_suffix(".cfl")) as tmp:
        tmp.write_bytes(np.asfortranarray(array).tobytes(order="F"))
    return base.with_suffix(".cfl")
