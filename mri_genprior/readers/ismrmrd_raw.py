"""ISMRMRD raw data (https://ismrmrd.github.io), the vendor-neutral format fastMRI was
converted from. The header is parsed by the ``ismrmrd`` package (``ismrmrd.xsd``), the
flags are its constants, and the acquisitions are its HDF5 records
(``ismrmrd.hdf5.acquisition_dtype``); files are written with ``ismrmrd.Dataset``.

Cartesian 2-D only. The imaging acquisitions (noise, calibration-only, navigator,
phase-correction and similar scans are left out) are sorted into k-space
``(slices, coils, H, W)`` by their encoding counters: H = encodedSpace x (the readout,
with its oversampling; sample ``center_sample`` lands on row H/2), W = encodedSpace y
(``kspace_encode_step_1`` + W/2 − the limits' centre, as fastMRI does). Repeated lines
(averages) are averaged. Partially acquired k-space (partial Fourier, asymmetric echo)
is zero-filled and flagged in the provenance. A slice is assembled when it is read.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import h5py
import numpy as np

from .. import MriGenpriorError
from ..io import Volume, parse_header

DEFAULT_GROUP = "dataset"
COUNTERS = ("contrast", "phase", "repetition", "set")


def _skip_flags():
    import ismrmrd

    names = ("NOISE_MEASUREMENT", "PARALLEL_CALIBRATION", "NAVIGATION_DATA", "PHASECORR_DATA", "HPFEEDBACK_DATA",
             "DUMMYSCAN_DATA", "RTFEEDBACK_DATA", "SURFACECOILCORRECTIONSCAN_DATA", "PHASE_STABILIZATION_REFERENCE",
             "PHASE_STABILIZATION")
    return sum(1 << (getattr(ismrmrd, f"ACQ_IS_{n}") - 1) for n in names)


def find_group(handle: h5py.File) -> Optional[str]:
    """The ISMRMRD dataset group of an open HDF5 file (``dataset`` or the first group
    holding ``xml`` and ``data``), or None."""
    names = [DEFAULT_GROUP] + sorted(k for k in handle if k != DEFAULT_GROUP)
    return next((n for n in names if isinstance(handle.get(n), h5py.Group) and "xml" in handle[n]
                 and "data" in handle[n]), None)


class AcquisitionGrid:
    """Lazy ``(slices, coils, H, W)`` (or ``(slices, H, W)`` for one coil) k-space of an
    ISMRMRD dataset; ``grid[i]`` reads slice i's acquisitions and places them.

    A slice's acquisitions are read in one h5py call on the ``data`` field of ISMRMRD's
    acquisition records: the bytes ``ismrmrd.Dataset.read_acquisition`` reads one line
    at a time, 17× faster (1.47 → 0.086 s per 16-coil 640 × 320 slice, measured with
    ``benchmarks/input_formats.py``).

    Parameters
    ----------
    records : the dataset's ``data`` (h5py dataset of acquisition records).
    heads : the acquisition headers of the imaging lines (structured array).
    numbers : their acquisition numbers (increasing).
    slice_of, columns, rows : per imaging line, its slice (0-based), phase-encode column
        and first readout row.
    shape : (slices, coils, H, W).
    """

    dtype = np.dtype(np.complex64)

    def __init__(self, records, heads, numbers, slice_of, columns, rows, shape):
        self.records, self.heads, self.numbers = records, heads, numbers
        self.slice_of, self.columns, self.rows = slice_of, columns, rows
        self.shape = tuple(shape) if shape[1] > 1 else (shape[0],) + tuple(shape[2:])
        self.ndim = len(self.shape)

    def __getitem__(self, index: int) -> np.ndarray:
        import ismrmrd

        coils, h, w = (self.shape[1:] if self.ndim == 4 else (1,) + self.shape[1:])
        out = np.zeros((coils, h, w), np.complex64)
        count = np.zeros(w, np.int64)
        lines = np.flatnonzero(self.slice_of == index)
        reverse = 1 << (ismrmrd.ACQ_IS_REVERSE - 1)
        for line, data in zip(lines, self.records.fields("data")[self.numbers[lines]]):
            head = self.heads[line]
            samples = int(head["number_of_samples"])
            data = data.view(np.complex64).reshape(coils, samples)
            if head["flags"] & reverse:
                data = data[:, ::-1]
            first, last = int(head["discard_pre"]), samples - int(head["discard_post"])
            row, col = self.rows[line], self.columns[line]
            out[:, row + first:row + last, col] += data[:, first:last]
            count[col] += 1
        out /= np.maximum(count, 1)
        return out if self.ndim == 4 else out[0]


def _partial_fourier(lo: int, hi: int, centre: int) -> Optional[float]:
    """Acquired fraction of the symmetric extent around ``centre`` of ``[lo, hi)``, if < 0.95."""
    extent = 2 * max(centre - lo, hi - centre)
    fraction = (hi - lo) / extent
    return round(fraction, 4) if fraction < 0.95 else None


def counter_sets(path: os.PathLike | str) -> List[Dict[str, int]]:
    """The distinct ``{contrast, phase, repetition, set}`` of an ISMRMRD file's imaging
    acquisitions, sorted: each is one volume (:func:`open_ismrmrd`'s ``select``)."""
    with h5py.File(path, "r") as handle:
        group = find_group(handle)
        if group is None:
            raise MriGenpriorError(f"{path}: no ISMRMRD dataset (a group with 'xml' and 'data')")
        heads = handle[group]["data"].fields("head")[:]
    idx = heads[(heads["flags"] & _skip_flags()) == 0]["idx"]
    combos = np.unique(np.stack([idx[name] for name in COUNTERS], axis=1), axis=0) if idx.size else []
    return [dict(zip(COUNTERS, map(int, combo))) for combo in combos]


@contextlib.contextmanager
def open_ismrmrd(path: os.PathLike | str, select: Optional[Dict[str, int]] = None) -> Iterator[Volume]:
    """Open an ISMRMRD raw HDF5 file as a lazily assembled volume: the imaging acquisitions
    whose counters equal ``select`` (e.g. ``{"contrast": 1, "repetition": 0}``), or all.

    Raises
    ------
    MriGenpriorError
        Not an ISMRMRD file, a non-Cartesian or 3-D encoding, several contrasts, phases,
        repetitions or sets without ``select``, slices with different sampling patterns,
        acquisitions that fall outside the encoded matrix, or no imaging acquisitions.
    """
    from ismrmrd import xsd

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise MriGenpriorError(f"{path}: not a readable HDF5 file ({err})") from err
    with handle:
        group = find_group(handle)
        if group is None:
            raise MriGenpriorError(f"{path}: no ISMRMRD dataset (a group with 'xml' and 'data')")
        try:
            records = handle[group]["data"]
            heads = records.fields("head")[:]
            xml = handle[group]["xml"][0]
            encoding = xsd.CreateFromDocument(xml).encoding[0]
        except (OSError, KeyError, ValueError) as err:
            raise MriGenpriorError(f"{path}: cannot read ISMRMRD acquisitions ({err})") from err
        except Exception as err:  # noqa: BLE001 - xsdata raises many parser errors
            raise MriGenpriorError(f"{path}: malformed ISMRMRD header ({type(err).__name__}: {err})") from err
        if encoding.trajectory != xsd.trajectoryType.CARTESIAN:
            raise MriGenpriorError(f"{path}: {encoding.trajectory.value} trajectory; only Cartesian data are supported")
        if encoding.encodedSpace.matrixSize.z > 1:
            raise MriGenpriorError(f"{path}: 3-D encoding (encodedSpace z = {encoding.encodedSpace.matrixSize.z}); "
                                   "only 2-D (multi-slice) Cartesian data are supported")
        yield _volume(path, records, heads, parse_header(xml), select)


def _volume(path: Path, records, heads: np.ndarray, header, select: Optional[Dict[str, int]] = None) -> Volume:
    """Index the imaging acquisitions of ``heads`` (those matching ``select``) into slices, rows and columns."""
    chosen = (heads["flags"] & _skip_flags()) == 0
    for name, value in (select or {}).items():
        chosen &= heads["idx"][name] == value
    numbers = np.flatnonzero(chosen)
    imaging = heads[numbers]
    if imaging.size == 0:
        raise MriGenpriorError(f"{path}: no imaging acquisitions" + (f" with {select}" if select else ""))
    idx = imaging["idx"]
    for name in COUNTERS:
        if np.unique(idx[name]).size > 1:
            raise MriGenpriorError(f"{path}: {np.unique(idx[name]).size} values of the '{name}' counter in one "
                                   "volume (the reconstruct command splits them into volumes)")
    if np.unique(idx["kspace_encode_step_2"]).size > 1:
        raise MriGenpriorError(f"{path}: several kspace_encode_step_2 values (3-D encoding) are not supported")
    channels = np.unique(imaging["active_channels"])
    if channels.size > 1:
        raise MriGenpriorError(f"{path}: acquisitions have different channel counts {channels.tolist()}")
    h, w = header.encoded[:2]
    columns = idx["kspace_encode_step_1"].astype(np.int64) + header.padding[0]
    rows = h // 2 - imaging["center_sample"].astype(np.int64)
    ends = rows + imaging["number_of_samples"]
    if columns.min() < 0 or columns.max() >= w or rows.min() < 0 or ends.max() > h:
        raise MriGenpriorError(f"{path}: acquisitions fall outside the encoded matrix {h}×{w}")
    slices, slice_of = np.unique(idx["slice"], return_inverse=True)
    patterns = {tuple(np.unique(columns[idx["slice"] == s])) for s in slices}
    if len(patterns) > 1:
        raise MriGenpriorError(f"{path}: slices have different phase-encode sampling patterns; not supported")
    sampled = np.zeros(w, np.float32)
    sampled[list(patterns.pop())] = 1
    left, right = header.padding
    mask = None if sampled[left:right].all() else sampled
    source = {"format": "ismrmrd", **({"counters": dict(select)} if select else {})}
    flags = {"readout": _partial_fourier(int(rows.min()), int(ends.max()), h // 2),
             "phase_encode": _partial_fourier(int(columns.min()), int(columns.max()) + 1, w // 2)}
    if any(flags.values()):
        source["partial_fourier"] = {k: v for k, v in flags.items() if v}
    geometry = slice_geometry(imaging, slice_of, len(slices))
    if geometry is not None:
        source["geometry"] = geometry
    grid = AcquisitionGrid(records, imaging, numbers, slice_of, columns, rows=rows,
                           shape=(len(slices), int(channels[0]), h, w))
    return Volume(path, grid, mask, None, header, attrs={}, source=source)


def slice_geometry(heads: np.ndarray, slice_of: np.ndarray, count: int) -> Optional[dict]:
    """Each slice's centre ``position`` and its ``read_dir``, ``phase_dir``, ``slice_dir`` (the
    scanner's LPS patient coordinates, mm) from its first acquisition; None when the headers
    carry no orientation (zero direction vectors)."""
    first = [int(np.flatnonzero(slice_of == s)[0]) for s in range(count)]
    geometry = {name: [[float(v) for v in heads[i][name]] for i in first]
                for name in ("position", "read_dir", "phase_dir", "slice_dir")}
    if not all(np.linalg.norm(d) > 0 for name in ("read_dir", "phase_dir") for d in geometry[name]):
        return None
    return geometry
