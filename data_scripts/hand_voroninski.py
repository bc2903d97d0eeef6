"""Reproduce Hand & Voroninski's landscape results with the package's own latent solver.

Writes into OUT (CSV + PNG):

* ``ray.csv`` / ``ray.png``: the empirical risk along the line z = t·z₀ (t ∈ [−1.5, 1.5])
  for depths 1–3; its local minimum on the negative side is compared with −ρ_d.
* ``basins.csv``: for each depth, from random starts and from starts near −z₀, the
  fraction of trials that end at z₀ or in the mirrored basin, for plain gradient
  descent and for the sign-flip rule, with ‖ẑ‖/‖z₀‖ and ‖x̂‖/‖x₀‖ of the mirrored trials.
* ``transition.csv`` / ``transition.png``: success probability against m/k.
* ``phase_retrieval.csv`` / ``phase_retrieval.png``: the same with magnitude-only
  measurements |A G(z)|.

Usage: ``python data_scripts/hand_voroninski.py OUT [--trials 100]`` (a few minutes on a CPU).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from mri_genprior.experiments.landscape import recover, rho, risk_along_ray

DEPTHS = {1: (10, 500), 2: (10, 100, 500), 3: (10, 50, 250, 1000)}


def write_csv(path: Path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


def ray(out: Path):
    rows = []
    ts = np.linspace(-1.5, 1.5, 121)
    for depth, dims in DEPTHS.items():
        f = risk_along_ray(dims, 200, ts, seed=depth)
        negative = ts < -0.02
        t_min = float(ts[negative][np.argmin(f[negative])])
        at_zero = f[int(np.argmin(np.abs(ts)))]
        rows += [{"depth": depth, "t": round(float(t), 4), "risk": v / at_zero, "rho_d": rho(depth),
                  "negative_argmin": t_min} for t, v in zip(ts, f)]
        print(f"depth {depth}: risk along t·z0 has its negative-side minimum at t = {t_min:.3f}; "
              f"theory -rho_d = {-rho(depth):.3f}")
    write_csv(out / "ray.csv", rows)
    return rows


def basins(out: Path, trials: int):
    rows = []
    for depth, dims in DEPTHS.items():
        for start in ("random", "near -z0"):
            for rule in ("gd", "sign-flip"):
                o = recover(dims, 200, trials, rule == "sign-flip", seed=depth, steps=1500,
                            start_near_negative=start != "random")
                neg = o.negative()
                rows.append({"depth": depth, "start": start, "algorithm": rule, "trials": trials,
                             "success": float(o.success().float().mean()), "mirrored": float(neg.float().mean()),
                             "latent_ratio_mirrored": float(o.latent_ratio[neg].mean()) if neg.any() else "",
                             "image_ratio_mirrored": float(o.image_ratio[neg].mean()) if neg.any() else "",
                             "rho_d": rho(depth)})
                print(rows[-1])
    write_csv(out / "basins.csv", rows)


def transition(out: Path, trials: int, magnitude: bool, name: str):
    rows = []
    dims = DEPTHS[2]
    ratios = (8, 12, 16, 24, 32, 48) if magnitude else (1, 2, 3, 4, 6, 8, 12)
    for ratio in ratios:
        for rule in ("gd", "sign-flip"):
            success = np.mean([float(recover(dims, ratio * dims[0], trials // 4, rule == "sign-flip", seed=s,
                                             magnitude=magnitude).success().float().mean()) for s in range(4)])
            rows.append({"m_over_k": ratio, "algorithm": rule, "success": success, "trials": 4 * (trials // 4)})
            print(name, rows[-1])
    write_csv(out / f"{name}.csv", rows)
    return rows


def plots(out: Path, ray_rows, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for depth in DEPTHS:
        pts = [(r["t"], r["risk"]) for r in ray_rows if r["depth"] == depth]
        ax.plot(*zip(*pts), label=f"d = {depth}")
        if rho(depth) > 1e-9:
            ax.axvline(-rho(depth), ls=":", color=ax.lines[-1].get_color())
    ax.set_xlabel("t (z = t·z₀); dotted: −ρ_d")
    ax.set_ylabel("f(t·z₀) / f(0)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ray.png", dpi=100)
    for name, rows in curves.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for rule in ("gd", "sign-flip"):
            pts = [(r["m_over_k"], r["success"]) for r in rows if r["algorithm"] == rule]
            ax.plot(*zip(*pts), marker="o", label=rule)
        ax.set_xlabel("m / k")
        ax.set_ylabel("success probability")
        ax.set_title(name.replace("_", " "))
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
    print(f"figures in {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--trials", type=int, default=100)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ray_rows = ray(args.out)
    basins(args.out, args.trials)
    curves = {"transition": transition(args.out, args.trials, False, "transition"),
              "phase_retrieval": transition(args.out, args.trials, True, "phase_retrieval")}
    plots(args.out, ray_rows, curves)


if __name__ == "__main__":
    main()
