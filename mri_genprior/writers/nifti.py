"""NIfTI-1 output: the image, its std and a JSON provenance sidecar (see :mod:`mri_genprior.writers`)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import List, Optional

import numpy as np

from .. import __version__
from ..io import atomic_path

log = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def nifti_affine(voxel_size_mm, shape=None, geometry: Optional[dict] = None) -> np.ndarray:
    """The voxel-to-RAS+ affine of a ``(readout, phase encode, slice)`` volume of ``shape``.

    With ``geometry`` (per-slice ``position`` and the ``read_dir``, ``phase_dir``,
    ``slice_dir`` of the ISMRMRD acquisitions, LPS mm): voxel ``(i, j, k)`` sits at
    ``p_k + (i − N_x/2) Δx r + (j − N_y/2) Δy c`` (the centred FFT's origin at pixel N/2),
    slices stepped by ``(p_last − p_0)/(n − 1)`` (by ``Δz s`` for one slice), flipped from
    LPS to RAS. Without it ``diag(voxel size, 1)``; the unit affine with a warning if the
    size is unknown too."""
    if voxel_size_mm is None:
        log.warning("no field of view in the header: the NIfTI affine is the identity (1 mm voxels)")
        return np.eye(4)
    if geometry is None or shape is None:
        return np.diag([*map(float, voxel_size_mm), 1.0])
    dx, dy, dz = map(float, voxel_size_mm)
    position = np.asarray(geometry["position"], float)
    read, phase, normal = (np.asarray(geometry[name][0], float) for name in ("read_dir", "phase_dir", "slice_dir"))
    step = (position[-1] - position[0]) / (len(position) - 1) if len(position) > 1 else dz * normal
    if len(position) > 2 and np.abs(np.diff(position, axis=0) - step).max() > 1e-3:
        log.warning("slice positions are not evenly spaced: the NIfTI affine uses their mean spacing")
    affine = np.eye(4)
    affine[:3, :3] = LPS_TO_RAS @ np.stack([dx * read, dy * phase, step], axis=1)
    affine[:3, 3] = LPS_TO_RAS @ (position[0] - shape[0] / 2 * dx * read - shape[1] / 2 * dy * phase)
    return affine


def _nifti_bytes(volume: np.ndarray, affine: np.ndarray, description: str, scanner: bool) -> bytes:
    import nibabel

    image = nibabel.Nifti1Image(np.ascontiguousarray(volume.transpose(1, 2, 0)), affine)
    if scanner:  # the affine is in the scanner's coordinates: say so in both the qform and the sform
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description[:79].encode()
    return gzip.compress(image.to_bytes(), compresslevel=6)


def write_nifti(files: List[Path], recon: np.ndarray, info: dict, std: Optional[np.ndarray] = None) -> Path:
    """``files`` = (image ``.nii.gz``, std ``.nii.gz``, ``.json`` sidecar), as
    :func:`output_files` names them; the image is renamed into place last, so its
    presence means all are complete. Returns the image path."""
    final, std_file, json_file = files
    affine = nifti_affine(info.get("voxel_size_mm"), recon.shape[1:], info.get("geometry"))
    scanner = info.get("geometry") is not None and info.get("voxel_size_mm") is not None
    description = f"mri_genprior {__version__} {info.get('method', '')}"
    sidecar = {**info, "mri_genprior_version": __version__}
    with atomic_path(json_file) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=1, default=str))
    if std is not None:
        with atomic_path(std_file) as tmp:
            tmp.write_bytes(_nifti_bytes(np.asarray(std, np.float32), affine, description + " std", scanner))
    else:
        std_file.unlink(missing_ok=True)  # a std left by an earlier run would not belong to this image
    with atomic_path(final) as tmp:
        tmp.write_bytes(_nifti_bytes(recon, affine, description, scanner))
    return final
