"""Training images for generative priors, straight from fastMRI files.

Each slice becomes one ``(channels, size, size)`` float32 image on the same footing as
the solvers' unknown (see :mod:`mri_genprior.recon`):

* ``target="complex"`` (2 channels, real and imaginary): fully sampled k-space →
  readout-oversampling removal → divide by :func:`~mri_genprior.physics.scale_factor`
  → ESPIRiT maps from the central ``calib_width`` lines → SENSE coil combination
  (:func:`~mri_genprior.physics.coil_combine`) — exactly the image ``x`` that the
  solvers' ``A x = y`` is written for.
* ``target="rss"`` (1 channel): the file's ``reconstruction_rss`` divided by its
  :func:`~mri_genprior.physics.percentile_scale`; a magnitude prior, used by the solvers
  with the calibration-phase model (:func:`mri_genprior.physics.operators.to_complex`).

Both are centre-cropped (or zero-padded) to ``size × size`` with
:func:`~mri_genprior.physics.crop_or_pad`, the function the solvers embed a generator's
image in the solve grid with.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from .. import MriGenpriorError, check_choice
from ..io import Volume, input_files, open_volume
from ..physics import coil_combine, crop_or_pad, espirit_maps, percentile_scale, remove_readout_oversampling, \
    scale_factor

TARGETS = ("complex", "rss")


def _complex_image(volume: Volume, index: int, size: int, calib_width: int) -> np.ndarray:
    kspace = volume.read_slice(index)
    kspace = remove_readout_oversampling(kspace, min(volume.header.recon[0], kspace.shape[-2]))
    kspace = kspace / scale_factor(kspace)
    width = min(calib_width, kspace.shape[-1])
    maps = espirit_maps(kspace, (width, width))
    image = crop_or_pad(coil_combine(kspace, maps), (size, size))
    return np.stack([image.real, image.imag])


def _rss_image(volume: Volume, index: int, size: int) -> np.ndarray:
    target = np.asarray(volume.target[index], dtype=np.float32)
    if not np.all(np.isfinite(target)):
        raise MriGenpriorError(f"{volume.path}: {volume.target.name.lstrip('/')} slice {index} has NaN or Inf values")
    return crop_or_pad(target / percentile_scale(target), (size, size))[None]


def training_images(paths: Sequence[os.PathLike | str], target: str = "complex", size: int = 64,
                    acquisitions: Sequence[str] = (), calib_width: int = 24,
                    progress: bool = True) -> Tuple[np.ndarray, List[Tuple[str, int]]]:
    """Images ``(N, C, size, size)`` float32 from every slice of ``paths`` (see the module docstring).

    Parameters
    ----------
    paths : fastMRI ``.h5`` files or directories of them.
    target : ``"complex"`` (needs fully sampled k-space) or ``"rss"`` (needs ``reconstruction_rss``).
    acquisitions : keep only files whose ``acquisition`` attribute is one of these
        (e.g. ``CORPD_FBK``, ``AXT2``); empty keeps all.
    calib_width : calibration lines for ESPIRiT (complex target).

    Returns
    -------
    images, sources : the stacked images and ``(file name, slice)`` of each.
    """
    check_choice("unknown training target", target, TARGETS)
    images, sources, kept = [], [], 0
    for path in tqdm(input_files(paths), desc="training images", unit="file", disable=not progress, leave=False):
        with open_volume(path) as volume:
            if acquisitions and volume.attrs.get("acquisition") not in acquisitions:
                continue
            kept += 1
            if target == "complex" and volume.mask is not None:
                raise MriGenpriorError(f"{path}: holds undersampled k-space (it has a mask); the complex target "
                                       "needs fully sampled files (or use --target rss)")
            if target == "rss" and (volume.target is None or volume.target.name != "/reconstruction_rss"):
                raise MriGenpriorError(f"{path}: no 'reconstruction_rss' dataset for the rss target")
            for index in range(volume.num_slices):
                images.append(_complex_image(volume, index, size, calib_width) if target == "complex"
                              else _rss_image(volume, index, size))
                sources.append((Path(path).name, index))
    if not images:
        wanted = f" with acquisition in {list(acquisitions)}" if acquisitions and not kept else ""
        raise MriGenpriorError(f"no training slices found{wanted}")
    return np.stack(images).astype(np.float32), sources
