"""Study figures (matplotlib, Agg backend, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from ..io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 90) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    _pyplot().close(fig)
    return path


def metrics_vs_acceleration(path: Path, summary: Sequence[dict], methods: Sequence[str]) -> Path:
    """SSIM and PSNR (mean ± std over volumes) against acceleration, one line per method."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, unit in zip(axes, ("SSIM", "PSNR"), ("", " (dB)")):
        for name in methods:
            points = sorted((s["acceleration"], *s[metric]) for s in summary if s["method"] == name)
            if points:
                accel, mean, std = map(np.array, zip(*points))
                ax.errorbar(accel, mean, yerr=std, marker="o", capsize=3, label=name)
        ax.set_xlabel("acceleration")
        ax.set_ylabel(metric + unit)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def example_panel(path: Path, target: np.ndarray, images: Dict[Tuple[str, float], np.ndarray],
                  methods: Sequence[str], accels: Sequence[float], title: str = "") -> Path:
    """Rows: per acceleration, the images then their |error| maps; columns: reference + methods."""
    plt = _pyplot()
    rows, cols = 2 * len(accels), len(methods) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    vmax = float(target.max())
    for i, accel in enumerate(accels):
        axes[2 * i, 0].imshow(target, cmap="gray", vmin=0, vmax=vmax)
        axes[2 * i, 0].set_title("reference", fontsize=9)
        axes[2 * i + 1, 0].axis("off")
        for j, name in enumerate(methods, start=1):
            if (name, accel) not in images:
                axes[2 * i, j].axis("off")
                axes[2 * i + 1, j].axis("off")
                continue
            img = images[name, accel]
            axes[2 * i, j].imshow(img, cmap="gray", vmin=0, vmax=vmax)
            axes[2 * i, j].set_title(f"{name} {accel:g}x", fontsize=9)
            axes[2 * i + 1, j].imshow(np.abs(img - target), cmap="magma", vmin=0, vmax=0.3 * vmax)
            axes[2 * i + 1, j].set_title("|error| (0-30%)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_size_inches()[1]))  # room for the title
    return _save(fig, path)
