"""Score-prior posterior sampling: quality, uncertainty calibration, network evaluations and speed.

For each held-out fastMRI file (with a reference), acceleration and sampler: SSIM and PSNR
of the posterior mean, the Spearman correlation between the posterior std map and the
actual |error| per slice (mean over slices), network evaluations (NFE) per sample and
seconds per slice. Then the batched throughput: all slices × samples in one batch
against a loop over single slices. Prints Markdown tables (measured, no assertions).
Example::

    python benchmarks/score_prior.py --prior runs/score/generator.pt --data test/ --accels 4,8,12,16
    python benchmarks/score_prior.py --prior ... --data brain.h5 --mask random --center-fraction 0.08
"""

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mri_genprior.io import input_files, open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prior", required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--methods", default="dds", help="comma-separated: dds, dps, langevin and any other method")
    p.add_argument("--accels", default="4,8,12,16")
    p.add_argument("--mask", default="poisson")
    p.add_argument("--center-fraction", type=float, default=0.16)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    files = input_files(args.data)
    print("| method | accel | SSIM | PSNR | Spearman(std, abs error) | NFE | s/slice |\n|---|---|---|---|---|---|---|")
    for accel in [float(a) for a in args.accels.split(",")]:
        for name in args.methods.split(","):
            sampler = name in ("dds", "dps", "langevin")
            method = make_method(name, **({"prior": args.prior, "samples": args.samples} if sampler else {}))
            scores, rhos, seconds, slices = [], [], 0.0, 0
            for file in files:
                with open_volume(file) as volume:
                    target = volume.read_target()
                start = time.perf_counter()
                options = ReconOptions(MaskSpec(args.mask, accel, args.center_fraction), device=args.device,
                                       batch_size=args.batch_size, progress=False)
                recon, info = reconstruct_volume(file, method, options)
                seconds += time.perf_counter() - start
                slices += len(recon)
                scores.append(volume_metrics(target, recon))
                if "reconstruction_std" in info:
                    rhos += [spearmanr(s.ravel(), np.abs(r - t).ravel())[0]
                             for s, r, t in zip(info["reconstruction_std"], recon, target)]
            ssim, psnr = np.mean([s["SSIM"] for s in scores]), np.mean([s["PSNR"] for s in scores])
            rho = f"{np.mean(rhos):.2f} (min {np.min(rhos):.2f})" if rhos else "-"
            nfe = method.nfe if sampler else "-"
            print(f"| {name} | {accel:g}x | {ssim:.3f} | {psnr:.2f} | {rho} | {nfe} | {seconds / slices:.2f} |",
                  flush=True)
    method = make_method("dds", prior=args.prior, samples=args.samples)
    mask = MaskSpec(args.mask, 8.0, args.center_fraction)
    timings = {}
    for batch in (1, args.batch_size):
        start = time.perf_counter()
        recon, _ = reconstruct_volume(files[0], method,
                                      ReconOptions(mask, device=args.device, batch_size=batch, progress=False))
        timings[batch] = (time.perf_counter() - start) / len(recon)
    print(f"\nbatched throughput, dds, {args.samples} samples, {Path(files[0]).name} ({len(recon)} slices): "
          f"{timings[1]:.2f} s/slice one slice at a time, {timings[args.batch_size]:.2f} s/slice in batches of "
          f"{args.batch_size} (ratio {timings[1] / timings[args.batch_size]:.2f})")


if __name__ == "__main__":
    main()
