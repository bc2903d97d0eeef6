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
import dataclasses
import os
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import h5py

from .. import MriGenpriorError
from ..io import Volume, input_files, open_volume
from .arrays import array_volume, open_npy, sampling_mask, volume_array
from .bart import base_path, open_cfl
from .ismrmrd_raw import counter_sets, find_group, open_ismrmrd

__all__ = ["INPUT_FORMATS", "detect_format", "open_input", "input_paths", "volumes_of", "VolumeRef", "array_volume",
           "sampling_mask", "volume_array"]

INPUT_FORMATS = ("fastmri", "ismrmrd", "bart", "npy")
SUFFIXES = (".h5", ".cfl", ".npy")  # what a directory is searched for
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"


def detect_format(path: os.PathLike | str) -> str:
    """The input format of ``path``: one of :data:`INPUT_FORMATS`.

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


@dataclasses.dataclass(frozen=True)
class VolumeRef:
    """One volume of an input file: the file, the ISMRMRD counters that pick it out of a
    file with several contrasts, phases, repetitions or sets (``select``, as sorted
    ``(name, value)`` pairs), and the name its outputs take (:attr:`source`)."""

    path: Path
    select: Optional[Tuple[Tuple[str, int], ...]] = None
    name: Optional[str] = None

    @property
    def source(self) -> Path:
        """The input path under the volume's name (outputs are named from its stem)."""
        return self.path if self.name is None else self.path.with_name(self.name)


def volumes_of(path: os.PathLike | str) -> List[VolumeRef]:
    """The volumes of an input: one, or for an ISMRMRD file with several contrasts,
    repetitions, sets or phases one per combination, named ``<stem>_c<k>_r<k>`` (plus
    ``_s<k>`` / ``_p<k>`` where the file has several sets / phases)."""
    path = Path(path)
    if detect_format(path) != "ismrmrd":
        return [VolumeRef(path)]
    combos = counter_sets(path)
    if len(combos) < 2:
        return [VolumeRef(path)]
    varying = {name for name in combos[0] if len({c[name] for c in combos}) > 1}
    refs = []
    for combo in combos:
        name = f"{path.stem}_c{combo['contrast']}_r{combo['repetition']}"
        name += "".join(f"_{key[0]}{combo[key]}" for key in ("set", "phase") if key in varying)
        refs.append(VolumeRef(path, tuple(sorted(combo.items())), name + path.suffix))
    return refs


@contextlib.contextmanager
def open_input(path: os.PathLike | str, select: Optional[Tuple[Tuple[str, int], ...]] = None) -> Iterator[Volume]:
    """Open ``path`` in whichever supported format it is (see the module docstring); ``select``
    picks one volume of an ISMRMRD file with several (:func:`volumes_of`)."""
    fmt = detect_format(path)
    if select and fmt != "ismrmrd":
        raise MriGenpriorError(f"{path}: only ISMRMRD files hold several volumes to select from")
    if fmt == "fastmri":
        with open_volume(path) as volume:
            yield volume
    elif fmt == "ismrmrd":
        with open_ismrmrd(path, dict(select) if select else None) as volume:
            yield volume
    else:
        yield open_cfl(path) if fmt == "bart" else open_npy(path)


def input_paths(paths: Sequence[os.PathLike | str]) -> List[Path]:
    """Expand files and directories (their ``*.h5``, ``*.cfl`` and ``*.npy``, sorted) into a
    list of inputs; a BART ``.hdr`` stands for its ``.cfl``."""
    paths = [Path(p).with_suffix(".cfl") if Path(p).suffix == ".hdr" else p for p in paths]
    return input_files(paths, SUFFIXES)
