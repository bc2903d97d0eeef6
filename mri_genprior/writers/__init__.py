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

Each file (and the PNG folder as a whole) appears only when complete. One module per
format (:mod:`.fastmri`, :mod:`.nifti`, :mod:`.png`), beside the k-space writers of the input
formats the tests and benchmarks make (:mod:`.bart`, :mod:`.ismrmrd`), as :mod:`mri_genprior.readers`
has one module per input format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np

from .. import check_choice
from .fastmri import checked_reconstruction, write_reconstruction
from .nifti import write_nifti
from .png import write_png

OUTPUT_FORMATS = ("h5", "nifti", "png")


def output_files(fmt: str, out_dir: os.PathLike | str, source: os.PathLike | str) -> List[Path]:
    """Every path written for input ``source`` in format ``fmt``; the first is the main
    output, which appears last (its presence means the volume is done)."""
    stem = Path(out_dir) / Path(source).stem
    files = {"h5": [".h5"], "nifti": [".nii.gz", "_std.nii.gz", ".json"], "png": [""]}
    check_choice("unknown output format", fmt, OUTPUT_FORMATS)
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


