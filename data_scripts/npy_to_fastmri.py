"""Wrap a raw k-space ``.npy`` array into a fastMRI-format HDF5 file.

Examples (the real 8-coil brain data shipped beside this project)::

    python data_scripts/npy_to_fastmri.py ../shared/data/sigpy_brain_8coil/cartesian_ksp.npy brain.h5
    # fully sampled, with a reconstruction_rss reference: the real development case
    python data_scripts/npy_to_fastmri.py tests/data/brain_8coil_fully_sampled/kspace.npy brain_full.h5 --reference
    # the same brain at a lower resolution (the centre 96 x 96 of its k-space: real96)
    python data_scripts/npy_to_fastmri.py tests/data/brain_8coil_fully_sampled/kspace.npy real96.h5 --reference \
        --lower-resolution 96 96
    # the same brain in a 256 x 256 field of view, its own coil noise around it (pad256)
    python data_scripts/npy_to_fastmri.py tests/data/brain_8coil_fully_sampled/kspace.npy pad256.h5 --reference \
        --pad-fov 256 256
    # the same brain in a phase-encode field of view 0.75 times as wide: the head wraps around (fold75)
    python data_scripts/npy_to_fastmri.py tests/data/brain_8coil_fully_sampled/kspace.npy fold75.h5 --reference \
        --fold-fov 0.75
    # the same brain at half its SNR (coil noise std doubled, noise of its own coil covariance added)
    python data_scripts/npy_to_fastmri.py tests/data/brain_8coil_fully_sampled/kspace.npy noise2.h5 --reference \
        --noise-factor 2
"""

import argparse
import sys

import numpy as np

from mri_genprior import MriGenpriorError
from mri_genprior.convert import add_noise, fold_field_of_view, lower_resolution, pad_field_of_view, wrap_kspace


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help=".npy file, complex (coils, H, W) or (slices, coils, H, W)")
    parser.add_argument("output", help="fastMRI .h5 file to write")
    parser.add_argument("--acquisition", default="unknown", help="acquisition attribute to store")
    parser.add_argument("--reference", action="store_true",
                        help="fully sampled input: normalise it and store its RSS image as reconstruction_rss")
    derive = parser.add_mutually_exclusive_group()
    derive.add_argument("--lower-resolution", nargs=2, type=int, metavar=("H", "W"),
                        help="keep the centre H x W of the k-space (same field of view, lower resolution)")
    derive.add_argument("--pad-fov", nargs=2, type=int, metavar=("H", "W"),
                        help="fully sampled input: place the coil images in an H x W field of view filled with "
                             "coil noise of the covariance of their 16 x 16 corners")
    derive.add_argument("--fold-fov", type=float, metavar="F",
                        help="fully sampled input: a phase-encode field of view F times as wide (0 < F < 1), the "
                             "coil images summed periodically (what coarser k-space sampling does): the object "
                             "wraps around")
    parser.add_argument("--noise-factor", type=float, metavar="F",
                        help="fully sampled input: raise the coil noise std F-fold (F > 1) by adding noise of "
                             "the covariance of the image corners (applied after --lower-resolution/--pad-fov)")
    args = parser.parse_args(argv)
    try:
        kspace = np.load(args.input, allow_pickle=False)
        if args.lower_resolution:
            kspace = lower_resolution(kspace, args.lower_resolution)
        elif args.pad_fov:
            kspace = pad_field_of_view(kspace, args.pad_fov)
        elif args.fold_fov is not None:
            kspace = fold_field_of_view(kspace, args.fold_fov)
        if args.noise_factor is not None:
            kspace = add_noise(kspace, args.noise_factor)
        path = wrap_kspace(kspace, args.output,
                           {"acquisition": args.acquisition, "source": args.input}, reference=args.reference)
    except (MriGenpriorError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
