"""BART ``.cfl``/``.hdr`` k-space (https://mrirecon.github.io/bart/).

A BART array is complex64, column-major, with up to 16 dimensions; the header
``name.hdr`` lists them after ``# Dimensions``. K-space uses READ (0), PHS1 (1),
COIL (3) and SLICE (13); BART's centred FFT matches fastMRI's, so READ becomes the
readout H and PHS1 the phase encode W. Other dimensions must have size 1 (3-D k-space,
several maps, echoes or averages are refused with a clear error).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np

from .. import MriGenpriorError
from ..io import Volume
from .arrays import array_volume

DIMS = 16
READ, PHS1, COIL, SLICE = 0, 1, 3, 13
NAMES = {2: "PHS2 (3-D encoding)", 4: "MAPS", 5: "TE", 6: "COEFF", 7: "COEFF2", 8: "ITER", 9: "CSHIFT",
         10: "TIME", 11: "TIME2", 12: "LEVEL", 14: "AVG", 15: "BATCH"}


def base_path(path: os.PathLike | str) -> Path:
    """``name`` for ``name``, ``name.cfl`` or ``name.hdr``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".cfl", ".hdr") else path


def read_dims(hdr: os.PathLike | str) -> List[int]:
    """The dimensions listed in a BART header file, padded to 16."""
    try:
        lines = Path(hdr).read_text().splitlines()
        dims = [int(v) for v in lines[lines.index("# Dimensions") + 1].split()]
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as err:
        raise MriGenpriorError(f"{hdr}: not a BART header with a '# Dimensions' line ({err})") from err
    if not dims or len(dims) > DIMS or min(dims) < 1:
        raise MriGenpriorError(f"{hdr}: invalid BART dimensions {dims}")
    return dims + [1] * (DIMS - len(dims))


def open_cfl(path: os.PathLike | str) -> Volume:
    """Open ``name.cfl`` + ``name.hdr`` lazily (a memmap) as a volume; zeros are unsampled."""
    base = base_path(path)
    dims = read_dims(base.with_suffix(".hdr"))
    cfl = base.with_suffix(".cfl")
    expected = int(np.prod(dims)) * 8
    size = cfl.stat().st_size if cfl.is_file() else None
    if size != expected:
        found = "missing" if size is None else f"{size} bytes"
        raise MriGenpriorError(f"{cfl}: {found}, but the dimensions in its .hdr need {expected} bytes")
    extra = [f"{NAMES[i]}={d}" for i, d in enumerate(dims) if d > 1 and i not in (READ, PHS1, COIL, SLICE)]
    if extra:
        raise MriGenpriorError(f"{cfl}: only READ, PHS1, COIL and SLICE may exceed 1 for 2-D k-space; found "
                               + ", ".join(extra))
    data = np.memmap(cfl, dtype="<c8", mode="r", shape=tuple(dims), order="F")
    index = tuple(slice(None) if i in (READ, PHS1, COIL, SLICE) else 0 for i in range(DIMS))
    kspace = data[index].transpose(3, 2, 0, 1)  # (READ, PHS1, COIL, SLICE) -> (slices, coils, H, W)
    single = dims[COIL] == 1
    return array_volume(kspace[:, 0] if single else kspace, name=str(cfl), single_coil=single, fmt="bart")
