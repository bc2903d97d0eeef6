"""Every method at its defaults on the real, fully sampled 8-coil brain: SSIM, PSNR, seconds.

The scan (``tests/data/brain_8coil_fully_sampled``, BSD-3, see the README there) is
wrapped into a fastMRI file with its RSS reference, undersampled retrospectively with
fastMRI's random mask (4×: centre fraction 0.08; 8×: 0.04) and scored with fastMRI's
metrics against that reference. Prints a Markdown table; with ``--check`` it exits 1 unless
every method beats zero-filling by 0.02 SSIM and 1 dB PSNR at every acceleration, and with
``--oracle`` it also solves L1-wavelet at every λ of a quarter-decade grid and exits 1 unless
its default is within 0.01 SSIM of the grid's best (the acceptance runs on the whole brain;
the test suite checks the same on a 96² crop). Example::

    python benchmarks/real_data.py                       # every registered method but the trained priors
    python benchmarks/real_data.py --methods zero-filled,l1-wavelet --maps espirit --no-prewhiten --no-noise-floor
    python benchmarks/real_data.py --files other_fully_sampled.h5 ...   # any fastMRI files with a reference
    python benchmarks/real_data.py --figure docs/figures/real_data/brain_8coil.png   # + images, |error| maps
    python benchmarks/real_data.py --methods zero-filled,sense,l1-wavelet,tv,convdecoder --check --oracle
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mri_genprior.convert import wrap_kspace
from mri_genprior.experiments.figures import example_panel
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.physics import MAPS
from mri_genprior.recon import DEFAULT_MAPS, MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import METHODS, make_method

REAL = Path(__file__).resolve().parents[1] / "tests/data/brain_8coil_fully_sampled/kspace.npy"
SETTINGS = ((4, 0.08), (8, 0.04))
MARGIN = {"SSIM": 0.02, "PSNR": 1.0}  # --check: every method above zero-filling by this much
QUARTERS = tuple(10.0 ** (-k / 4) for k in range(2, 13))  # --oracle: λ = 0.316 … 1e-3 in quarter decades


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
    p.add_argument("--check", action="store_true", help="exit 1 unless every method beats zero-filling")
    p.add_argument("--oracle", action="store_true", help="exit 1 unless l1-wavelet's default is near its best λ")
    args = p.parse_args()
    params = {}
    for item in args.param:
        key, value = item.split("=", 1)
        method, name = key.split(":", 1)
        params.setdefault(method, {})[name] = value
    with tempfile.TemporaryDirectory() as tmp:
        files = args.files or [wrap_kspace(np.load(REAL), Path(tmp) / "brain_8coil.h5", reference=True)]
        print("| file | method | accel | SSIM | PSNR | seconds |\n|---|---|---|---|---|---|")
        names, panel, failures = args.methods.split(","), {}, []
        for file in files:
            with open_volume(file) as volume:
                target = volume.read_target()
            for accel, fraction in SETTINGS:
                spec = MaskSpec("random", accel, fraction)

                def run(name, **extra):
                    method = make_method(name, **{**params.get(name, {}), **extra})
                    options = ReconOptions(spec, maps=args.maps, prewhiten=args.prewhiten,
                                           noise_floor=args.noise_floor, device=args.device, progress=False)
                    return reconstruct_volume(file, method, options)[0]

                zf = volume_metrics(target, run("zero-filled"))
                for name in names:
                    start = time.perf_counter()
                    recon = run(name)
                    seconds = time.perf_counter() - start
                    m = volume_metrics(target, recon)
                    print(f"| {Path(file).name} | {name} | {accel}x | {m['SSIM']:.3f} | {m['PSNR']:.2f} | "
                          f"{seconds:.1f} |", flush=True)
                    if args.check and name != "zero-filled" and any(m[k] <= zf[k] + MARGIN[k] for k in MARGIN):
                        failures.append(f"{Path(file).name} {accel}x: {name} does not beat zero-filled by {MARGIN}")
                    if file == files[0]:
                        panel[name, accel] = recon[0]
                if args.oracle:
                    default = volume_metrics(target, run("l1-wavelet"))["SSIM"]
                    grid = {lamda: volume_metrics(target, run("l1-wavelet", lamda=lamda))["SSIM"] for lamda in QUARTERS}
                    best = max(grid, key=grid.get)
                    print(f"l1-wavelet {accel}x: default {default:.3f}, grid best {grid[best]:.3f} at λ = {best:.3g}")
                    if default <= grid[best] - 0.01:
                        failures.append(f"{Path(file).name} {accel}x: l1-wavelet's default is not within 0.01 "
                                        "of its grid's best")
            if args.figure and file == files[0]:
                example_panel(args.figure, target[0], panel, names, [a for a, _ in SETTINGS],
                              f"{Path(file).name}: every method at its defaults")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
