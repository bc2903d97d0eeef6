"""Write a reconstructed volume in the chosen output format, atomically.

* ``h5`` (default): the fastMRI submission file ``<stem>.h5`` (dataset ``reconstruction``
  plus provenance attributes; ``reconstruction_std`` when the method gives one).
* ``nifti``: ``<stem>.nii.gz`` (NIfTI-1, float32, axes (readout x, phase y, slice)),
  its affine in the scanner's RAS+ coordinates from the ISMRMRD acquisitions' positions
  and directions where the input has them (qform and sform code 1, scanner), else
  ``diag(voxel size, 1)`` from the header's reconSpace field of view and matrix size (a
  unit affine and a warning without them); ``<stem>_std.nii.gz`` for the std, and the
  provenance as a JSON sidecar ``<stem>.json``.
* ``png``: a folder ``<stem>/`` with one preview per slice (``slice_000.png``, ...;
  magnitude windowed to the volume's 99.5th percentile) and ``contact_sheet.png``.

Each file (and the PNG folder as a whole) appears only when complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from . import MriGenpriorError, __version__
from .io import atomic_dir, atomic_path, checked_reconstruction, write_reconstruction

log = logging.getLogger(__name__)

FORMATS = ("h5", "nifti", "png")
WINDOW_PERCENTILE = 99.5


def output_files(fmt: str, out_dir: os.PathLike | str, source: os.PathLike | str) -> List[Path]:
    """Every path written for input ``source`` in format ``fmt``; the first is the main
    output, which appears last (its presence means the volume is done)."""
    stem = Path(out_dir) / Path(source).stem
    files = {"h5": [".h5"], "nifti": [".nii.gz", "_std.nii.gz", ".json"], "png": [""]}
    if fmt not in files:
        raise MriGenpriorError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    return [stem.with_name(stem.name + suffix) for suffix in files[fmt]]


def output_path(fmt: str, out_dir: os.PathLike | str, source: os.PathLike | str) -> Path:
    """The main output of input ``source`` for format ``fmt``."""
    return output_files(fmt, out_dir, source)[0]


def write_output(fmt: str, out_dir: os.PathLike | str, source: os.PathLike | str, recon: np.ndarray,
                 info: dict) -> Path:
    """Write ``recon`` ``(slices, H, W)`` and its provenance ``info`` (as returned by
    :func:`mri_genprior.recon.reconstruct_volume`; ``reconstruction_std`` is taken out of
    it) for input ``source``; return the output path."""
    info = dict(info)
    std = info.pop("reconstruction_std", None)
    files = output_files(fmt, out_dir, source)
    final = files[0]
    recon = checked_reconstruction(recon, final.name)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if fmt == "h5":
        return write_reconstruction(out_dir, final.name, recon, info,
                                    None if std is None else {"reconstruction_std": std})
    if fmt == "nifti":
        return write_nifti(files, recon, info, std)
    return write_png(final, recon)


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


def write_png(final: Path, recon: np.ndarray) -> Path:
    """One preview per slice and a contact sheet, in the folder ``final``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmax = float(np.percentile(recon, WINDOW_PERCENTILE)) or 1.0
    with atomic_dir(final) as tmp:
        for i, image in enumerate(recon):
            plt.imsave(tmp / f"slice_{i:03d}.png", image, cmap="gray", vmin=0.0, vmax=vmax, format="png")
        cols = int(np.ceil(np.sqrt(len(recon))))
        rows = int(np.ceil(len(recon) / cols))
        aspect = recon.shape[1] / recon.shape[2]
        fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows * aspect + 0.3), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < len(recon):
                ax.imshow(recon[i], cmap="gray", vmin=0.0, vmax=vmax)
                ax.set_title(f"slice {i}", fontsize=8)
        fig.suptitle(final.name, fontsize=9)
        fig.tight_layout()
        fig.savefig(tmp / "contact_sheet.png", dpi=100)
        plt.close(fig)
    return final
