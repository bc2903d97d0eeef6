"""``mri-genprior demo``: synthetic data → several methods at 4× and 8× → table and figure.

Runs with no data and no network: the anatomy is the MNI152 template shipped inside
nilearn. CSGM needs a trained prior and is not part of the demo yet (see the docs).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import h5py
import numpy as np

from .metrics import volume_metrics
from .recon import MaskSpec, reconstruct_file
from .solvers import make_method
from .synthetic import write_synthetic_dataset

METHODS = {"zero-filled": {}, "l1-wavelet": {}, "tv": {}, "convdecoder": {"steps": 300}}
ACCELS = (4, 8)
CENTER_FRACTION = 0.16  # 20 calibration lines on the 128-wide demo matrix (ESPIRiT needs them)


def run_demo(out_dir: Path, device: str = "auto", size: int = 128, slices: int = 2) -> Path:
    """Run the demo study into ``out_dir``; return the path of the results table."""
    out_dir = Path(out_dir)
    start = time.perf_counter()
    print(f"mri-genprior demo: {slices} synthetic 8-coil brain slices ({size}x{size}), methods "
          f"{', '.join(METHODS)} at {', '.join(f'{a}x' for a in ACCELS)}. About 2 minutes on 2 CPU cores.")
    data = write_synthetic_dataset(out_dir / "data", num_files=1, slices=slices, size=(size, size), seed=0)[0]
    with h5py.File(data) as f:
        target = f["reconstruction_rss"][()]
    rows, images = [], {}
    for accel in ACCELS:
        spec = MaskSpec("random", accel, CENTER_FRACTION)
        for name, params in METHODS.items():
            t0 = time.perf_counter()
            path = reconstruct_file(data, out_dir / "recon" / f"{name}_{accel}x", make_method(name, **params),
                                    spec, device, progress=True)
            with h5py.File(path) as f:
                recon = f["reconstruction"][()]
                achieved = float(f.attrs["acceleration"])
            metrics = volume_metrics(target, recon)
            rows.append({"method": name, "acceleration": accel, "achieved_acceleration": round(achieved, 2),
                         **{k: round(v, 4) for k, v in metrics.items()},
                         "seconds": round(time.perf_counter() - t0, 1)})
            images[name, accel] = recon[slices // 2]
            print(f"  {accel}x {name:12s} SSIM {metrics['SSIM']:.3f}  PSNR {metrics['PSNR']:.2f} dB")
    table = _write_tables(out_dir, rows)
    figure = _write_figure(out_dir / "demo.png", target[slices // 2], images)
    print(f"done in {time.perf_counter() - start:.0f} s\n  table:  {table}\n  figure: {figure}\n"
          f"  reconstructions (fastMRI submission files): {out_dir / 'recon'}")
    return table


def _write_tables(out_dir: Path, rows) -> Path:
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
    body = "".join("| " + " | ".join(str(v) for v in r.values()) + " |\n" for r in rows)
    path = out_dir / "results.md"
    path.write_text(header + body)
    return path


def _write_figure(path: Path, target: np.ndarray, images: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(METHODS)
    fig, axes = plt.subplots(2 * len(ACCELS), len(methods) + 1, figsize=(2.4 * (len(methods) + 1), 4.8 * len(ACCELS)))
    vmax = target.max()
    for i, accel in enumerate(ACCELS):
        axes[2 * i, 0].imshow(target, cmap="gray", vmin=0, vmax=vmax)
        axes[2 * i, 0].set_title("reference")
        axes[2 * i + 1, 0].axis("off")
        for j, name in enumerate(methods, start=1):
            img = images[name, accel]
            axes[2 * i, j].imshow(img, cmap="gray", vmin=0, vmax=vmax)
            axes[2 * i, j].set_title(f"{name} {accel}x", fontsize=9)
            axes[2 * i + 1, j].imshow(np.abs(img - target), cmap="magma", vmin=0, vmax=0.3 * vmax)
            axes[2 * i + 1, j].set_title("|error|", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
