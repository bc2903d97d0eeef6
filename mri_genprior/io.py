"""Read fastMRI HDF5 volumes; what every reader and writer shares (headers, atomic writes).

A fastMRI file holds ``kspace`` — ``(slices, coils, H, W)`` multi-coil or
``(slices, H, W)`` single-coil, complex — and optionally ``mask`` (``(W,)`` for test
files; ``(H, W)`` is accepted for 2-D sampling), ``reconstruction_rss`` /
``reconstruction_esc`` targets, attributes, and an ``ismrmrd_header`` XML string whose
encoded/recon sizes and phase-encode limits define the output size and padding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import xml.etree.ElementTree as etree
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from . import MriGenpriorError

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"
TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")


@dataclasses.dataclass(frozen=True)
class Header:
    """Matrix sizes from the ISMRMRD header.

    Attributes
    ----------
    encoded : (x, y, z) encoded matrix (x = readout, incl. oversampling).
    recon : (x, y, z) reconstructed matrix (the output image is ``recon[:2]``).
    padding : (left, right) phase-encode columns that hold acquired data; columns
        outside ``[left, right)`` are zero padding and are never sampled.
    fov_mm : (x, y, z) reconSpace field of view in mm, or None if the header has none.
    """

    encoded: Tuple[int, int, int]
    recon: Tuple[int, int, int]
    padding: Tuple[int, int]
    fov_mm: Optional[Tuple[float, float, float]] = None

    @property
    def voxel_size_mm(self) -> Optional[Tuple[float, float, float]]:
        """(x, y, z) voxel size of the output image in mm (z: the slice thickness), or None."""
        if self.fov_mm is None:
            return None
        return tuple(f / n for f, n in zip(self.fov_mm, self.recon))

    @classmethod
    def from_kspace_shape(cls, shape: Sequence[int]) -> "Header":
        """Header for files without one: no oversampling, no padding."""
        h, w = int(shape[-2]), int(shape[-1])
        return cls((h, w, 1), (h, w, 1), (0, w))


@dataclasses.dataclass
class Volume:
    """A lazily read k-space volume. :func:`open_volume` opens fastMRI files;
    :func:`mri_genprior.readers.open_input` opens every supported format.

    Attributes
    ----------
    path : the file (for arrays in memory, their name: it seeds the per-file mask).
    kspace : array-like indexed by slice (an h5py dataset, a NumPy array or memmap, or a
        reader's lazy view), ``(slices, coils, H, W)`` or ``(slices, H, W)`` complex.
    mask : ``(W,)`` or ``(H, W)`` float32 sampling mask of prospectively undersampled
        data, or None for fully sampled data.
    target : ``(slices, rh, rw)`` reference image (h5py dataset), or None.
    header : sizes, padding and field of view.
    attrs : the file's root attributes.
    source : provenance of the input: ``{"format": ...}`` plus what the reader flagged
        (for example partial Fourier).
    """

    path: Path
    kspace: object
    mask: Optional[np.ndarray]
    target: Optional[h5py.Dataset]
    header: Header
    attrs: dict
    source: dict = dataclasses.field(default_factory=lambda: {"format": "fastmri"})

    @property
    def num_slices(self) -> int:
        return int(self.kspace.shape[0])

    @property
    def multicoil(self) -> bool:
        return self.kspace.ndim == 4

    @property
    def kspace_shape(self) -> Tuple[int, int]:
        """(H, W) of one slice's k-space."""
        return tuple(self.kspace.shape[-2:])

    def read_slice(self, index: int) -> np.ndarray:
        """Return slice ``index`` as ``(coils, H, W)`` complex64 (coils = 1 if single-coil).

        Raises
        ------
        MriGenpriorError
            If the slice holds NaN or Inf values, or cannot be read.
        """
        try:
            data = np.ascontiguousarray(self.kspace[index], dtype=np.complex64)
        except (OSError, KeyError, ValueError) as err:
            raise MriGenpriorError(f"{self.path}: cannot read kspace slice {index}: {err}") from err
        if not np.all(np.isfinite(data)):
            raise MriGenpriorError(f"{self.path}: kspace slice {index} contains NaN or Inf values")
        return data if self.multicoil else data[None]

    def read_target(self) -> Optional[np.ndarray]:
        """The reference volume ``(slices, rh, rw)`` float32, or None."""
        return None if self.target is None else np.asarray(self.target, dtype=np.float32)


def parse_header(xml: bytes | str) -> Header:
    """Parse encoded/recon sizes, phase-encode padding and the reconSpace field of view
    from an ISMRMRD header (the first encoding).

    Follows ``fastmri.data.mri_data.SliceDataset._retrieve_metadata``; without
    ``kspace_encoding_step_1`` limits every phase-encode column counts as acquired.
    """
    try:
        root = etree.fromstring(xml)
        ns = {"m": ISMRMRD_NS}

        def values(path: str, cast) -> Optional[tuple]:
            found = [root.find(f"m:encoding/{path}/m:{ax}", ns) for ax in "xyz"]
            return None if any(f is None for f in found) else tuple(cast(f.text) for f in found)

        encoded = values("m:encodedSpace/m:matrixSize", int)
        recon = values("m:reconSpace/m:matrixSize", int)
        if encoded is None or recon is None:
            raise ValueError("no encodedSpace/reconSpace matrixSize")
        fov = values("m:reconSpace/m:fieldOfView_mm", float)
        limits = root.find("m:encoding/m:encodingLimits/m:kspace_encoding_step_1", ns)
        if limits is None:
            center, maximum = encoded[1] // 2, encoded[1]
        else:
            center = int(limits.find("m:center", ns).text)
            maximum = int(limits.find("m:maximum", ns).text) + 1
    except (etree.ParseError, AttributeError, TypeError, ValueError) as err:
        raise MriGenpriorError(f"malformed ismrmrd_header: {err}") from err
    left = encoded[1] // 2 - center
    fov = fov if fov is not None and all(f > 0 for f in fov) else None
    return Header(encoded, recon, (left, left + maximum), fov)


def make_header_xml(encoded: Sequence[int], recon: Sequence[int], pe_center: int, pe_max: int,
                    fov_mm: Optional[Sequence[float]] = None, slices: int = 1, pe_min: int = 0) -> str:
    """An ISMRMRD header (made with the ``ismrmrd`` package) with the fields fastMRI reads.

    Parameters
    ----------
    encoded, recon : (x, y, z) matrix sizes.
    pe_center, pe_max, pe_min : ``kspace_encoding_step_1`` centre, maximum and minimum
        (inclusive).
    fov_mm : (x, y, z) reconSpace field of view; default 1 mm in-plane voxels and 1 mm
        slices. The encodedSpace field of view keeps the reconSpace voxel size.
    slices : the ``slice`` encoding limit (maximum = slices − 1).
    """
    from ismrmrd import xsd

    fov = tuple(float(f) for f in (fov_mm or (recon[0], recon[1], 1.0)))
    scale = (encoded[0] / recon[0], encoded[1] / recon[1], 1.0)

    def space(size: Sequence[int], field: Sequence[float]):
        return xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=size[0], y=size[1], z=size[2]),
                                     fieldOfView_mm=xsd.fieldOfViewMm(x=field[0], y=field[1], z=field[2]))

    encoding = xsd.encodingType(
        encodedSpace=space(encoded, [f * s for f, s in zip(fov, scale)]), reconSpace=space(recon, fov),
        encodingLimits=xsd.encodingLimitsType(
            kspace_encoding_step_1=xsd.limitType(minimum=pe_min, maximum=pe_max, center=pe_center),
            slice=xsd.limitType(minimum=0, maximum=slices - 1, center=0)),
        trajectory=xsd.trajectoryType.CARTESIAN)
    header = xsd.ismrmrdHeader(experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000),
                               encoding=[encoding])
    return xsd.ToXML(header)


def validate_mask(mask: np.ndarray, shape: Tuple[int, int], path: Path) -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim == 1 and mask.shape[0] == shape[1]:
        return mask
    if mask.ndim == 2 and mask.shape == shape:
        return mask
    raise MriGenpriorError(
        f"{path}: mask of shape {mask.shape} does not match kspace (H, W) = {shape}; "
        "expected (W,) or (H, W)"
    )


def check_header(header: Header, shape: Tuple[int, int], path: Path) -> None:
    """Raise MriGenpriorError if the header's acquired phase-encode range does not fit the k-space ``(H, W)``."""
    if header.padding[1] > shape[1] or header.padding[0] < 0:
        raise MriGenpriorError(f"{path}: header padding {header.padding} exceeds kspace width {shape[1]}")


def input_files(paths: Sequence[os.PathLike | str], suffixes: Sequence[str] = (".h5",)) -> List[Path]:
    """Expand files and directories (their files ending in ``suffixes``, sorted) into a list of files."""
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix in suffixes and not f.name.startswith("."))
            if not found:
                raise MriGenpriorError(f"{p}: directory holds no {', '.join(suffixes)} files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise MriGenpriorError(f"{p}: no such file or directory")
    return files


def writable_dir(path: os.PathLike | str) -> Path:
    """Create directory ``path`` (and its parents) if needed; a clear error if that fails or it is read-only.

    Callers validate their settings and inputs first, so a refused run leaves no empty directory.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MriGenpriorError(f"cannot create output directory {path}: {err.strerror}") from err
    if not os.access(path, os.W_OK):
        raise MriGenpriorError(f"output directory {path} is not writable")
    return path


@contextlib.contextmanager
def open_volume(path: os.PathLike | str) -> Iterator[Volume]:
    """Open a fastMRI HDF5 file for lazy, validated reading.

    Raises
    ------
    MriGenpriorError
        Missing or unreadable file, missing ``kspace``, wrong rank or dtype, a mask
        that does not match the k-space, or a malformed header.
    """
    path = Path(path)
    if not path.is_file():
        raise MriGenpriorError(f"{path}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise MriGenpriorError(f"{path}: not a readable HDF5 file ({err})") from err
    with handle:
        if "kspace" not in handle:
            raise MriGenpriorError(f"{path}: no 'kspace' dataset (found: {sorted(handle.keys())})")
        kspace = handle["kspace"]
        if kspace.ndim not in (3, 4):
            raise MriGenpriorError(
                f"{path}: kspace has rank {kspace.ndim}; expected (slices, coils, H, W) or (slices, H, W)"
            )
        if kspace.dtype.kind != "c":
            raise MriGenpriorError(f"{path}: kspace has dtype {kspace.dtype}; expected complex")
        if kspace.shape[0] == 0:
            raise MriGenpriorError(f"{path}: kspace has no slices")
        shape = tuple(kspace.shape[-2:])
        try:
            mask = validate_mask(handle["mask"][()], shape, path) if "mask" in handle else None
        except OSError as err:
            raise MriGenpriorError(f"{path}: cannot read mask ({err})") from err
        target = next((handle[k] for k in TARGET_KEYS if k in handle), None)
        if "ismrmrd_header" in handle:
            header = parse_header(handle["ismrmrd_header"][()])
        else:
            header = Header.from_kspace_shape(shape)
        check_header(header, shape, path)
        yield Volume(path, kspace, mask, target, header, dict(handle.attrs))


TMP_SUFFIX = ".tmp"


def remove_stale_temporaries(final: os.PathLike | str) -> None:
    """Delete temporary files that :func:`atomic_path` left beside ``final`` when its
    writer was killed (SIGKILL skips the clean-up), files or folders. Only call when no
    writer is active."""
    final = Path(final)
    for tmp in final.parent.glob(f".{final.name}.*{TMP_SUFFIX}"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    On any exception the temporary file is removed, so no partial output is left.
    """
    final = Path(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TMP_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final``."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TMP_SUFFIX, dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
