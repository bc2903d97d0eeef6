"""Bora et al.'s measurement savings: CSGM against Lasso (L1-wavelet) with Gaussian measurements.

Held-out magnitude brain slices x (64×64, p99-normalised, from the synthetic data
script) are measured as y = A x with a Gaussian A (m × 4096, N(0, 1/m)). CSGM fits
``G(z)`` of a trained prior through ``solvers.latent.fit`` (4 restarts, Adam); Lasso
solves min ½‖A x − y‖² + λ‖Ψ x‖₁ with SigPy (Daubechies-4 wavelets, FISTA), with λ chosen
per m from a grid by the true error (an oracle choice that favours Lasso). For each m,
the mean relative error ‖x̂ − x‖ / ‖x‖ over the slices is written to ``savings.csv``
and plotted in ``savings.png``; the script prints the smallest m at which each method
reaches the target error and their ratio (the measurement-savings factor).

Usage: ``python data_scripts/measurement_savings.py OUT --prior RUN/generator.pt --test DIR``
(a magnitude prior, e.g. from ``mri-genprior train --target rss``), a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from mri_genprior.priors.datasets import training_images
from mri_genprior.experiments.landscape import GaussianMeasurements
from mri_genprior.priors import load_checkpoint
from mri_genprior.solvers.latent import FitOptions, LatentNorm, fit


def csgm(op, y, network, restarts: int, steps: int) -> torch.Tensor:
    """Best-of-``restarts`` CSGM estimates ``(N, n)`` for measurements ``y`` ``(N, m)``."""
    n_items = y.shape[0]
    z0 = torch.randn(n_items * restarts, network.latent_dim, generator=torch.Generator().manual_seed(0))
    result = fit(op, y.repeat_interleave(restarts, 0), network, z0, FitOptions(steps=steps, lr=0.05),
                 (network.config["image_size"],) * 2, penalties=[LatentNorm(0.001)])
    best = result.data_loss.view(n_items, restarts).argmin(1)
    return result.images.view(n_items, restarts, -1)[torch.arange(n_items), best].real


def lasso(a: np.ndarray, y: np.ndarray, shape, lamda: float, iterations: int = 300) -> np.ndarray:
    import sigpy as sp

    A = sp.linop.MatMul((shape[0] * shape[1], 1), a) * sp.linop.Reshape((shape[0] * shape[1], 1), shape)
    W = sp.linop.Wavelet(shape, wave_name="db4")
    proxg = sp.prox.UnitaryTransform(sp.prox.L1Reg(W.oshape, lamda), W)
    return sp.app.LinearLeastSquares(A, y[:, None], proxg=proxg, max_iter=iterations, show_pbar=False).run().ravel()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--prior", type=Path, required=True, help="magnitude (1-channel) generator checkpoint")
    p.add_argument("--test", type=Path, required=True, help="held-out fastMRI files (with reconstruction_rss)")
    p.add_argument("--slices", type=int, default=6)
    p.add_argument("--measurements", default="25,50,100,200,400,800,1600,3200")
    p.add_argument("--lamdas", default="0.01,0.05,0.2", help="Lasso weights tried per m (best kept)")
    p.add_argument("--target", type=float, default=0.105, help="relative error defining 'recovered'")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    network, config = load_checkpoint(args.prior)
    network.requires_grad_(False)
    size = config["image_size"]
    images, _ = training_images([args.test], "rss", size, progress=False)
    x = torch.from_numpy(images[:: max(1, len(images) // args.slices)][: args.slices, 0].reshape(-1, size * size))
    rows = []
    for m in [int(v) for v in args.measurements.split(",")]:
        op = GaussianMeasurements(m, size * size, torch.Generator().manual_seed(m))
        y = op.forward(x[:, None].to(torch.complex64))
        x_csgm = csgm(op, y, network, restarts=4, steps=500)
        a = op.a.numpy().astype(np.float64)
        truth = x.numpy().astype(np.float64)

        def errors(est):
            return np.linalg.norm(est - truth, axis=1) / np.linalg.norm(truth, axis=1)

        by_lamda = {lam: errors(np.stack([lasso(a, y[i].real.numpy().astype(np.float64), (size, size), lam)
                                          for i in range(len(x))])) for lam in map(float, args.lamdas.split(","))}
        lamda = min(by_lamda, key=lambda lam: by_lamda[lam].mean())
        for name, err, extra in (("csgm", errors(x_csgm.numpy()), ""), ("lasso", by_lamda[lamda], lamda)):
            rows.append({"m": m, "method": name, "relative_error": float(err.mean()), "std": float(err.std()),
                         "lamda": extra})
            print(rows[-1])
    with open(args.out / "savings.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    needed = {}
    for name in ("csgm", "lasso"):
        ok = [r["m"] for r in rows if r["method"] == name and r["relative_error"] <= args.target]
        needed[name] = min(ok) if ok else None
    print(f"measurements to reach relative error {args.target}: {needed}")
    if needed["csgm"] and needed["lasso"]:
        print(f"measurement-savings factor (lasso / csgm): {needed['lasso'] / needed['csgm']:.1f}")
    _plot(args.out / "savings.png", rows, args.target)


def _plot(path: Path, rows, target: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name in ("csgm", "lasso"):
        pts = [(r["m"], r["relative_error"], r["std"]) for r in rows if r["method"] == name]
        m, err, std = map(np.array, zip(*pts))
        ax.errorbar(m, err, yerr=std, marker="o", capsize=3, label=name)
    ax.axhline(target, ls=":", color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("Gaussian measurements m (n = 4096)")
    ax.set_ylabel("relative error")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
