"""Seconds and peak memory per slice at fastMRI scale: each method at its defaults, beside one
fixed-λ solve of the same method and SigPy's own app on the same slice, mask and maps.

The volume is synthetic in fastMRI brain geometry (16 coils, 640 × 320 k-space: 320² images
with 2× readout oversampling; ``--coils``, ``--size``), or ``--data FILES`` (fastMRI files).
Every measurement runs in its own process with ``--threads`` OpenMP / BLAS / torch threads,
so its peak resident memory is its own. Rows:

* ``default``: ``reconstruct_volume`` with the method's defaults (λ chosen once per volume);
* ``fixed λ``: the same with ``-p lamda=<the λ the default chose>`` (one solve per slice);
* ``sigpy``: ``EspiritCalib`` + ``SenseRecon`` / ``L1WaveletRecon`` / ``TotalVariationRecon``
  at that λ, 100 iterations, on the same masked, scaled k-space.

BART's ``ecalib`` + ``pics`` is not part of it yet: its λ is on another scale and the
binary was not installed where this was written.

    python benchmarks/fastmri_scale.py                                    # sense, tv, l1-wavelet, 1 thread
    python benchmarks/fastmri_scale.py --methods sense --threads 1 2 --slices 2
    python benchmarks/fastmri_scale.py --data file_brain_AXT2_200_2000019.h5 --methods l1-wavelet
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGPY_APPS = {"sense": "SenseRecon", "l1-wavelet": "L1WaveletRecon", "tv": "TotalVariationRecon"}


def measure(args) -> dict:
    """One measurement in this process: ``{"seconds": per slice, "lamda": ..., "peak_gb": ...}``."""
    import numpy as np
    import torch

    from mri_genprior.recon import MaskSpec, ReconOptions, prepare_batch, reconstruct_volume, volume_mask
    from mri_genprior.io import open_volume
    from mri_genprior.solvers import make_method

    torch.set_num_threads(args.threads)
    spec = MaskSpec("random", args.accel, args.center_fraction)
    start = time.perf_counter()
    if args.mode in ("default", "fixed"):
        params = {} if args.mode == "default" else {"lamda": args.lamda}
        _, info = reconstruct_volume(args.file, make_method(args.method, **params),
                                     ReconOptions(spec, device="cpu", progress=False))
        lamdas = [d.get("lamda") for d in info.get("diagnostics", [])]
        slices = len(lamdas) or 1
    else:
        lamdas = []
        with open_volume(args.file) as volume:
            mask, crop, _ = volume_mask(volume, spec)
            slices = volume.num_slices
            for i in range(slices):
                batch = prepare_batch(volume, [i], mask, crop, False, torch.device("cpu"))
                y = batch.y[0].numpy()
                sigpy_solve(y, args.method, args.lamda)
    seconds = (time.perf_counter() - start) / slices
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"seconds": seconds, "lamda": float(np.median(lamdas)) if lamdas else args.lamda, "peak_gb": peak}


def sigpy_solve(y, method: str, lamda: float):
    """SigPy's own pipeline: ``EspiritCalib`` maps, then its app at ``lamda``, 100 iterations."""
    import numpy as np
    import sigpy.mri as mr

    weights = (np.abs(y[:1]) > 0).astype(np.float32)[0]
    maps = mr.app.EspiritCalib(y, show_pbar=False).run()
    app = getattr(mr.app, SIGPY_APPS[method])
    return app(y, maps, lamda, weights=weights, max_iter=100, show_pbar=False).run()


def run_one(file: Path, method: str, mode: str, threads: int, accel: int, center_fraction: float,
            lamda: float) -> dict:
    """:func:`measure` in a fresh process with ``threads`` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--measure", str(file), method, mode, str(threads), str(accel),
               str(center_fraction), str(lamda)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{method} {mode}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        names = ("file", "method", "mode", "threads", "accel", "center_fraction", "lamda")
        kinds = (Path, str, str, int, int, float, float)
        print(json.dumps(measure(argparse.Namespace(**{n: k(v) for n, k, v in zip(names, kinds, sys.argv[2:])}))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="sense,tv,l1-wavelet")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--data", type=Path, nargs="*", help="fastMRI files (default: a synthetic brain volume)")
    p.add_argument("--coils", type=int, default=16)
    p.add_argument("--size", type=int, nargs="+", default=[320], metavar="H [W]",
                   help="image size (W = H if one number); k-space is 2H × W (knee: --coils 15 --size 320 368)")
    p.add_argument("--slices", type=int, default=1)
    p.add_argument("--runs", default="default,fixed,sigpy", help="which rows (fixed and sigpy need default)")
    p.add_argument("--accel", type=int, default=4)
    p.add_argument("--center-fraction", type=float, default=0.08)
    args = p.parse_args()
    from mri_genprior.experiments.synthetic import AXIAL_RANGE, write_synthetic_file

    with tempfile.TemporaryDirectory() as tmp:
        step = min(4, (AXIAL_RANGE[1] - AXIAL_RANGE[0]) // args.slices)  # planes 4 apart from 80 where they fit
        first = 80 if 80 + step * args.slices <= AXIAL_RANGE[1] else AXIAL_RANGE[0]
        planes = list(range(first, first + step * args.slices, step))
        files = args.data or [write_synthetic_file(Path(tmp) / "brain.h5", planes, (args.size[0], args.size[-1]),
                                                   args.coils, 0.01, 0)]
        print(f"files {[f.name for f in files]}, {args.accel}x, centre fraction {args.center_fraction}")
        print("| file | method | threads | run | λ | s / slice | × fixed λ | peak memory GB |")
        print("|---|---|---|---|---|---|---|---|")
        for file in files:
            for method in args.methods.split(","):
                for threads in args.threads:
                    rows = {"default": run_one(file, method, "default", threads, args.accel, args.center_fraction,
                                               0.0)}
                    lamda = rows["default"]["lamda"]
                    for mode in [r for r in args.runs.split(",") if r != "default"]:
                        rows[mode] = run_one(file, method, mode, threads, args.accel, args.center_fraction, lamda)
                    for mode, row in rows.items():
                        print(f"| {file.name} | {method} | {threads} | {mode} | {row['lamda']:.3g} | "
                              f"{row['seconds']:.1f} | {row['seconds'] / rows.get('fixed', row)['seconds']:.2f} | "
                              f"{row['peak_gb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
