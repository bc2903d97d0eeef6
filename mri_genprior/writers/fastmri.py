"""Write fastMRI HDF5 files atomically: reconstructions (the submission format, with
provenance attributes) and raw k-space files (``kspace``, ``ismrmrd_header``, optional
``mask`` and ``reconstruction_rss``; the synthetic data and the converters use it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from .. import MriGenpriorError, __version__
from ..io import atomic_path


def _set_attrs(handle: h5py.File, attrs: dict) -> None:
    """Store attributes; dicts/lists become JSON strings, None values are left out."""
    for key, value in attrs.items():
        if value is None:
            continue
        handle.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value


def checked_reconstruction(recon: np.ndarray, name: str) -> np.ndarray:
    """``recon`` as float32 ``(slices, H, W)``; MriGenpriorError if it holds NaN or Inf."""
    recon = np.asarray(recon, dtype=np.float32)
    if recon.ndim != 3:
        raise ValueError(f"reconstruction must be (slices, H, W), got {recon.shape}")
    if not np.all(np.isfinite(recon)):
        raise MriGenpriorError(f"{name}: reconstruction contains NaN or Inf; nothing written")
    return recon


def write_reconstruction(out_dir: os.PathLike | str, name: str, recon: np.ndarray, attrs: dict,
                         extra: Optional[dict] = None) -> Path:
    """Write a fastMRI submission file ``out_dir/name`` atomically.

    Parameters
    ----------
    recon : ``(slices, H, W)`` real array, stored as float32 in dataset ``reconstruction``
        with ``fastmri.save_reconstructions``.
    attrs : provenance (method, acceleration, settings, ...); dicts and lists are stored
        as JSON strings. The package version is always added.
    extra : further float32 datasets by name (e.g. ``reconstruction_std``).
    """
    from fastmri import save_reconstructions

    out_dir = Path(out_dir)
    recon = checked_reconstruction(recon, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    with atomic_path(final) as tmp:
        save_reconstructions({tmp.name: recon}, out_dir)
        with h5py.File(tmp, "a") as handle:
            for key, value in (extra or {}).items():
                handle.create_dataset(key, data=np.asarray(value, dtype=np.float32))
            _set_attrs(handle, {**attrs, "mri_genprior_version": __version__})
    return final


def write_kspace_file(
    path: os.PathLike | str,
    kspace: np.ndarray,
    header_xml: str,
    attrs: dict,
    mask: Optional[np.ndarray] = None,
    target: Optional[np.ndarray] = None,
) -> Path:
    """Write a fastMRI-format raw-data file atomically.

    Parameters
    ----------
    kspace : ``(slices, coils, H, W)`` or ``(slices, H, W)`` complex.
    header_xml : ISMRMRD header (see :func:`mri_genprior.io.make_header_xml`).
    mask : optional ``(W,)`` or ``(H, W)`` sampling mask (prospective data).
    target : optional ``(slices, rh, rw)`` reference, stored as ``reconstruction_rss``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("kspace", data=np.asarray(kspace, dtype=np.complex64))
            handle.create_dataset("ismrmrd_header", data=np.bytes_(header_xml))
            if mask is not None:
                handle.create_dataset("mask", data=np.asarray(mask))
            if target is not None:
                handle.create_dataset("reconstruction_rss", data=np.asarray(target, dtype=np.float32))
            _set_attrs(handle, attrs)
    return path
