"""NMSE, PSNR and SSIM with the semantics of fastMRI's ``evaluate.py``.

Per volume: target and prediction are centre-cropped to ``(W, W)`` with W the target's
width, ``data_range`` is the target volume's maximum, SSIM uses skimage's 7×7 window
and is averaged over slices. The metric functions are fastMRI's own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

import h5py
import numpy as np

from . import MriGenpriorError
from .io import TARGET_KEYS

METRIC_NAMES = ("NMSE", "PSNR", "SSIM")


def _crop_pair(target: np.ndarray, pred: np.ndarray):
    from fastmri.data.transforms import center_crop

    size = (target.shape[-1], target.shape[-1])
    if pred.shape[-2] < size[0] or pred.shape[-1] < size[1]:
        raise MriGenpriorError(f"prediction {pred.shape} is smaller than the evaluation crop {size}")
    return center_crop(target, size), center_crop(pred, size)


def volume_metrics(target: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    """fastMRI metrics of one volume; ``target``/``pred`` are ``(slices, H, W)`` magnitudes."""
    from fastmri import evaluate

    if target.ndim != 3 or pred.ndim != 3 or target.shape[0] != pred.shape[0]:
        raise MriGenpriorError(f"target {target.shape} and prediction {pred.shape} must be (slices, H, W) alike")
    t, p = _crop_pair(np.asarray(target, np.float64), np.asarray(pred, np.float64))
    return {name: np.asarray(func(t, p)).item()
            for name, func in (("NMSE", evaluate.nmse), ("PSNR", evaluate.psnr), ("SSIM", evaluate.ssim))}


def evaluate_dirs(target_dir: os.PathLike | str, pred_dir: os.PathLike | str,
                  acquisition: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Metrics of every target file with a same-named prediction.

    Returns ``{file name: {NMSE, PSNR, SSIM}}``. The target dataset is the first of
    ``reconstruction_rss`` / ``reconstruction_esc`` present (fastMRI's multicoil /
    singlecoil keys); the prediction dataset is ``reconstruction``.
    """
    target_dir, pred_dir = Path(target_dir), Path(pred_dir)
    for d in (target_dir, pred_dir):
        if not d.is_dir():
            raise MriGenpriorError(f"{d}: not a directory")
    results = {}
    for tgt_file in sorted(target_dir.glob("*.h5")):
        pred_file = pred_dir / tgt_file.name
        if not pred_file.exists():
            continue
        try:
            with h5py.File(tgt_file, "r") as tf, h5py.File(pred_file, "r") as pf:
                if acquisition and tf.attrs.get("acquisition") != acquisition:
                    continue
                key = next((k for k in TARGET_KEYS if k in tf), None)
                if key is None:
                    raise MriGenpriorError(f"{tgt_file}: no reference image ({' or '.join(TARGET_KEYS)})")
                if "reconstruction" not in pf:
                    raise MriGenpriorError(f"{pred_file}: no 'reconstruction' dataset")
                results[tgt_file.name] = volume_metrics(tf[key][()], pf["reconstruction"][()])
        except OSError as err:
            raise MriGenpriorError(f"cannot read {tgt_file.name}: {err}") from err
    if not results:
        raise MriGenpriorError(f"no prediction in {pred_dir} matches a target file in {target_dir}")
    return results


def summarize(results: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """Mean and sample standard deviation of each metric over volumes (fastMRI's table).

    fastMRI's runstats-based table fails on a single volume; here its std is 0.
    """
    ddof = 1 if len(results) > 1 else 0
    return {m: {"mean": float(np.mean([r[m] for r in results.values()])),
                "std": float(np.std([r[m] for r in results.values()], ddof=ddof))} for m in METRIC_NAMES}


def format_table(summary: Dict[str, Dict[str, float]]) -> str:
    """``NMSE = x +/- 2s PSNR = ...`` — the line fastMRI's ``Metrics.__repr__`` prints."""
    return " ".join(f"{m} = {summary[m]['mean']:.4g} +/- {2 * summary[m]['std']:.4g}" for m in METRIC_NAMES)
