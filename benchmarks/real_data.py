"""Every method at its defaults on the real, fully sampled 8-coil brain: SSIM, PSNR, seconds.

The scan (``tests/data/brain_8coil_fully_sampled``, BSD-3, see the README there) is
wrapped into a fastMRI file with its RSS reference, undersampled retrospectively with
fastMRI's random mask (4×: centre fraction 0.08; 8×: 0.04) and scored with fastMRI's
metrics against that reference. Prints a Markdown table (measured, no assertions).
Example::

    python benchmarks/real_data.py                       # every registered method but the trained priors
    python benchmarks/real_data.py --methods zero-filled,l1-wavelet --maps espirit --no-prewhiten --no-noise-floor
    python benchmarks/real_data.py --files other_fully_sampled.h5 ...   # any fastMRI files with a reference
    python benchmarks/real_data.py --figure docs/figures/real_data/brain_8coil.png   # + images, |error| maps
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mri_genprior.convert import wrap_kspace
from mri_genprior.experiments.figures import example_panel
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.physics import MAPS
from mri_genprior.recon import DEFAULT_MAPS, MaskSpec, reconstruct_volume
from mri_genprior.solvers import METHODS, make_method

REAL = Path(__file__).resolve().parents[1] / "tests/data/brain_8coil_fully_sampled/kspace.npy"
SETTINGS = ((4, 0.08), (8, 0.04))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(n for n, e in METHODS.items() if not e.takes_prior))
    p.add_argument("--files", nargs="*", type=Path, help="fastMRI files with a reference (default: the real brain)")
    p.add_argument("--maps", default=DEFAULT_MAPS, choices=MAPS)
    p.add_argument("--no-prewhiten", dest="prewhiten", action="store_false")
    p.add_argument("--no-noise-floor", dest="noise_floor", action="store_false")
    p.add_argument("-p", "--param", action="append", default=[], metavar="METHOD:KEY=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--figure", type=Path, help="PNG of every method's images and |error| maps (first file)")
    args = p.parse_args()
    params = {}
    for item in args.param:
        key, value = item.split("=", 1)
        method, name = key.split(":", 1)
        params.setdefault(method, {})[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or [wrap_kspace(np.load(REAL), Path(tmp) / "brain_8coil.h5", reference=True)]
        print(f"| file | method | accel | SSIM | PSNR | seconds |\n|---|---|---|---|---|---|")
        names, panel = args.methods.split(","), {}
        for file in files:
            with open_volume(file) as volume:
                target = volume.read_target()
            for accel, fraction in SETTINGS:
                for name in names:
                    method = make_method(name, **params.get(name, {}))
                    start = time.perf_counter()
                    recon, _ = reconstruct_volume(file, method, MaskSpec("random", accel, fraction), args.device,
                                                  progress=False, maps=args.maps, prewhiten=args.prewhiten,
                                                  noise_floor=args.noise_floor)
                    seconds = time.perf_counter() - start
                    m = volume_metrics(target, recon)
                    print(f"| {Path(file).name} | {name} | {accel}x | {m['SSIM']:.3f} | {m['PSNR']:.2f} | "
                          f"{seconds:.1f} |", flush=True)
                    if file == files[0]:
                        panel[name, accel] = recon[0]
            if args.figure and file == files[0]:
                example_panel(args.figure, target[0], panel, names, [a for a, _ in SETTINGS],
                              f"{Path(file).name}: every method at its defaults")


if __name__ == "__main__":
    main()
