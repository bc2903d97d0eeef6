"""Wrap a raw k-space ``.npy`` array into a fastMRI-format HDF5 file.

Examples (the real 8-coil brain data shipped beside this project)::

    python data_scripts/npy_to_fastmri.py ../shared/data/sigpy_brain_8coil/cartesian_ksp.npy brain.h5
    # fully sampled, with a reconstruction_rss reference: the real development case
    python data_scripts/npy_to_fastmri.py tests/data/brain_8coil_fully_sampled/kspace.npy brain_full.h5 --reference
"""

import argparse
import sys

import numpy as np

from mri_genprior import MriGenpriorError
from mri_genprior.convert import wrap_kspace


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help=".npy file, complex (coils, H, W) or (slices, coils, H, W)")
    parser.add_argument("output", help="fastMRI .h5 file to write")
    parser.add_argument("--acquisition", default="unknown", help="acquisition attribute to store")
    parser.add_argument("--reference", action="store_true",
                        help="fully sampled input: normalise it and store its RSS image as reconstruction_rss")
    args = parser.parse_args(argv)
    try:
        path = wrap_kspace(np.load(args.input, allow_pickle=False), args.output,
                           {"acquisition": args.acquisition, "source": args.input}, reference=args.reference)
    except (MriGenpriorError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
