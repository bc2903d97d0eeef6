"""Baselines for the score prior's in-distribution table (docs/score.md): L1-wavelet at its oracle λ
(best SSIM over a grid) and CSGM / Sparse-Gen with a VAE prior trained on the same split.

Run in the folder made by the commands of tests/data/score_prior_64/README.md, after
``mri-genprior train --data all -o vae --preset small --model vae`` (``all/`` then holds the
8 training files)::

    python benchmarks/score_baselines.py

Prints measured figures on test/synth_brain_003.h5 (Poisson masks, centre fraction 0.16), no assertions.
"""
import time

import h5py

from mri_genprior.metrics import volume_metrics
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method

f = "test/synth_brain_003.h5"
with h5py.File(f) as h:
    target = h["reconstruction_rss"][()]
print("| accel | method | SSIM | PSNR | s/slice |\n|---|---|---|---|---|")
for accel in (4, 8, 12, 16):
    spec = MaskSpec("poisson", accel, 0.16)
    best = None
    for lam in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2):
        r, _ = reconstruct_volume(f, make_method("l1-wavelet", lamda=lam),
                                  ReconOptions(spec, device="cpu", batch_size=9, progress=False))
        m = volume_metrics(target, r)
        if best is None or m["SSIM"] > best[1]["SSIM"]:
            best = (lam, m)
    print(f"| {accel}x | l1-wavelet oracle λ={best[0]:g} | {best[1]['SSIM']:.3f} | {best[1]['PSNR']:.2f} | |", flush=True)
    for name in ("csgm", "sparse-gen"):
        t = time.perf_counter()
        r, _ = reconstruct_volume(f, make_method(name, prior="vae/generator.pt"),
                                  ReconOptions(spec, device="cpu", batch_size=9, progress=False))
        m = volume_metrics(target, r)
        print(f"| {accel}x | {name} | {m['SSIM']:.3f} | {m['PSNR']:.2f} | {(time.perf_counter() - t) / 9:.2f} |", flush=True)
