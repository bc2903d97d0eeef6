"""PNG previews: one per slice and a contact sheet (see :mod:`mri_genprior.writers`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_dir

WINDOW_PERCENTILE = 99.5


def write_png(final: Path, recon: np.ndarray) -> Path:
    """One preview per slice and a contact sheet, in the folder ``final``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vmax = float(np.percentile(recon, WINDOW_PERCENTILE)) or 1.0
    with atomic_dir(final) as tmp:
        for i, image in enumerate(recon):
            plt.imsave(tmp / f"slice_{i:03d}.png", image, cmap="gray", vmin=0.0, vmax=vmax, format="png")
        cols = int(np.ceil(np.sqrt(len(recon))))
        rows = int(np.ceil(len(recon) / cols))
        aspect = recon.shape[1] / recon.shape[2]
        fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.0 * rows * aspect + 0.3), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < len(recon):
                ax.imshow(recon[i], cmap="gray", vmin=0.0, vmax=vmax)
                ax.set_title(f"slice {i}", fontsize=8)
        fig.suptitle(final.name, fontsize=9)
        fig.tight_layout()
        fig.savefig(tmp / "contact_sheet.png", dpi=100)
        plt.close(fig)
    return final
