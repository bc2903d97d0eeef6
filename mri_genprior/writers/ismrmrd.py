"""ISMRMRD raw files (the format :mod:`mri_genprior.readers.ismrmrd_raw` reads), one
acquisition per sampled phase-encode line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..io import atomic_path, parse_header
from ..readers.ismrmrd_raw import DEFAULT_GROUP


def write_ismrmrd(path: os.PathLike | str, kspace: np.ndarray, header_xml: str, mask: Optional[np.ndarray] = None,
                  noise: Optional[np.ndarray] = None, geometry: Optional[dict] = None) -> Path:
    """Write ``(slices, coils, H, W)`` k-space as an ISMRMRD raw file, one acquisition per
    sampled phase-encode line, atomically (for tests and examples).

    Parameters
    ----------
    header_xml : ISMRMRD header (:func:`mri_genprior.io.make_header_xml`); its
        ``kspace_encoding_step_1`` centre sets the encoding counters.
    mask : ``(W,)`` lines to write (default: every line inside the header's padding).
    noise : optional ``(coils, samples)`` noise measurement written first.
    geometry : optional ``{"position": (slices, 3), "read_dir", "phase_dir", "slice_dir": (3,)}``
        written into every acquisition header of each slice (LPS, mm).
    """
    import ismrmrd

    kspace = np.asarray(kspace, dtype=np.complex64)
    header = parse_header(header_xml)
    h, w = kspace.shape[-2:]
    left, right = header.padding
    lines = np.zeros(w, bool)
    lines[left:right] = True
    if mask is not None:
        lines &= np.asarray(mask) > 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with ismrmrd.Dataset(str(tmp), DEFAULT_GROUP, mode="w") as dataset:
            dataset.write_xml_header(header_xml)
            if noise is not None:
                acq = ismrmrd.Acquisition.from_array(np.asarray(noise, np.complex64))
                acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
                dataset.append_acquisition(acq)
            columns = np.flatnonzero(lines)
            for s in range(kspace.shape[0]):
                for col in columns:
                    acq = ismrmrd.Acquisition.from_array(kspace[s, :, :, col], center_sample=h // 2)
                    acq.idx.kspace_encode_step_1 = int(col - left)
                    acq.idx.slice = s
                    if geometry is not None:
                        acq.position[:] = [float(v) for v in geometry["position"][s]]
                        for name in ("read_dir", "phase_dir", "slice_dir"):
                            getattr(acq, name)[:] = [float(v) for v in geometry[name]]
                    if col == columns[-1]:
                        acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
                    dataset.append_acquisition(acq)
    return path
