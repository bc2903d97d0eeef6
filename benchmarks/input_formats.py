"""Reading k-space: seconds per slice for each input format against the fastMRI file.

Writes one random k-space volume of fastMRI brain size (default 4 slices × 16 coils ×
640 readout × 320 phase encode, 2× readout oversampling) as a fastMRI file, an ISMRMRD
raw file (one acquisition per line), a BART ``.cfl`` and a ``.npy``, then reads every
slice through :func:`mri_genprior.readers.open_input` and prints the seconds per slice
and the ratio to the fastMRI file, from one run. Prints measured figures, no assertions::

    python benchmarks/input_formats.py --slices 4 --coils 16
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mri_genprior.io import make_header_xml
from mri_genprior.readers import open_input
from mri_genprior.writers.bart import to_bart, write_cfl
from mri_genprior.writers.fastmri import write_kspace_file
from mri_genprior.writers.ismrmrd import write_ismrmrd


def read_all(path) -> float:
    """Seconds per slice to open ``path`` and read every slice."""
    start = time.perf_counter()
    with open_input(path) as volume:
        for i in range(volume.num_slices):
            volume.read_slice(i)
        slices = volume.num_slices
    return (time.perf_counter() - start) / slices


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--coils", type=int, default=16)
    p.add_argument("--readout", type=int, default=640)
    p.add_argument("--lines", type=int, default=320)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.slices, args.coils, args.readout, args.lines)
    kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    header = make_header_xml((args.readout, args.lines, 1), (args.readout // 2, args.lines, 1), args.lines // 2,
                             args.lines - 1, slices=args.slices)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"fastmri": write_kspace_file(tmp / "a.h5", kspace, header, {}),
                 "ismrmrd": write_ismrmrd(tmp / "b.h5", kspace, header),
                 "bart": write_cfl(tmp / "c", to_bart(kspace)),
                 "npy": tmp / "d.npy"}
        np.save(files["npy"], kspace)
        seconds = {name: read_all(path) for name, path in files.items()}
    print(f"k-space {shape} complex64, {kspace.nbytes / 2**20 / args.slices:.0f} MiB per slice")
    print("| format | s/slice | × fastMRI |\n|---|---|---|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {value / seconds['fastmri']:.2f} |")


if __name__ == "__main__":
    main()
