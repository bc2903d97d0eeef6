"""Open any supported k-space input as a :class:`~mri_genprior.io.Volume`.

The format is detected from the file itself, not its name:

* HDF5 with a ``kspace`` dataset: fastMRI (:func:`mri_genprior.io.open_volume`);
* HDF5 with an ISMRMRD dataset group: ISMRMRD raw data (:mod:`.ismrmrd_raw`);
* a ``# Dimensions`` text header beside a ``.cfl``: BART (:mod:`.bart`);
* NumPy's ``.npy`` magic: a k-space array (:mod:`.arrays`).

Every reader converts on the fly (lazily, slice by slice) without a temporary copy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, List, Sequence

import h5py

from .. import MriGenpriorError
from ..io import Volume, input_files, open_volume
from .arrays import array_volume, open_npy, sampling_mask, volume_array
from .bart import base_path, open_cfl
from .ismrmrd_raw import find_group, open_ismrmrd

__all__ = ["FORMATS", "detect_format", "open_input", "input_paths", "array_volume", "sampling_mask", "volume_array"]

FORMATS = ("fastmri", "ismrmrd", "bart", "npy")
SUFFIXES = (".h5", ".cfl", ".npy")  # what a directory is searched for
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"


def detect_format(path: os.PathLike | str) -> str:
    """The input format of ``path``: one of :data:`FORMATS`.

    Raises
    ------
    MriGenpriorError
        Missing file or an unrecognised format.
    """
    path = Path(path)
    bart_header = base_path(path).with_suffix(".hdr")
    if path.suffix in (".cfl", ".hdr") and bart_header.is_file():
        return "bart"
    if not path.is_file():
        raise MriGenpriorError(f"{path}: no such file")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(NPY_MAGIC):
        return "npy"
    if magic == HDF5_MAGIC:
        try:
            with h5py.File(path, "r") as handle:
                if "kspace" in handle:
                    return "fastmri"
                if find_group(handle) is not None:
                    return "ismrmrd"
                keys = sorted(handle.keys())
        except OSError as err:
            raise MriGenpriorError(f"{path}: not a readable HDF5 file ({err})") from err
        raise MriGenpriorError(f"{path}: HDF5 file holds neither a fastMRI 'kspace' dataset nor an ISMRMRD "
                               f"dataset (found: {keys})")
    raise MriGenpriorError(f"{path}: unrecognised input format; expected fastMRI or ISMRMRD HDF5, BART .cfl/.hdr "
                           "or NumPy .npy")


@contextlib.contextmanager
def open_input(path: os.PathLike | str) -> Iterator[Volume]:
    """Open ``path`` in whichever supported format it is (see the module docstring)."""
    fmt = detect_format(path)
    if fmt == "fastmri":
        with open_volume(path) as volume:
            yield volume
    elif fmt == "ismrmrd":
        with open_ismrmrd(path) as volume:
            yield volume
    else:
        yield open_cfl(path) if fmt == "bart" else open_npy(path)


def input_paths(paths: Sequence[os.PathLike | str]) -> List[Path]:
    """Expand files and directories (their ``*.h5``, ``*.cfl`` and ``*.npy``, sorted) into a
    list of inputs; a BART ``.hdr`` stands for its ``.cfl``."""
    paths = [Path(p).with_suffix(".cfl") if Path(p).suffix == ".hdr" else p for p in paths]
    return input_files(paths, SUFFIXES)
