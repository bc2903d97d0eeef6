"""Acceleration-factor studies: files × methods × accelerations → tables and figures.

A study directory holds::

    recon/<method>/<accel>x/<file>.h5   one fastMRI submission file per cell (atomic)
    results.csv                         one row per volume × method × acceleration
    summary.md                          mean ± sample std per method and acceleration
    metrics_vs_accel.png                SSIM and PSNR against acceleration, one line per method
    examples.png                        one slice per method and acceleration, with |error| maps

The CSV is rebuilt from the reconstruction files (metrics against the input's
``reconstruction_rss``, seconds and achieved acceleration from the file attributes), so
a rerun skips every finished cell and an interrupted run loses at most the cells in
flight.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np
from tqdm.auto import tqdm

from .. import MriGenpriorError
from ..io import atomic_path, input_files, open_volume, writable_dir
from ..metrics import METRIC_NAMES, volume_metrics
from ..recon import ReconOptions
from ..scaleout import Job, reconstruct_all
from ..solvers import METHODS, make_method
from ..writers import output_path

COLUMNS = ("file", "method", "acceleration", "achieved_acceleration", "NMSE", "PSNR", "SSIM", "seconds", "slices")


@dataclasses.dataclass
class StudySpec:
    """What to run.

    ``params`` maps a method name to its hyper-parameters (``make_method`` keywords);
    ``prior`` is given to every method that takes a trained generator. ``options`` is
    every cell's pipeline (its mask's kind and centre fraction, coil maps, device, ...);
    each cell takes its own acceleration, writes fastMRI files and shows no progress bar.
    """

    methods: Sequence[str]
    accelerations: Sequence[float]
    params: Dict[str, dict] = dataclasses.field(default_factory=dict)
    prior: Optional[str] = None
    options: ReconOptions = ReconOptions()

    def cell_options(self, accel: float) -> ReconOptions:
        """The options of the cells at acceleration ``accel``."""
        mask = dataclasses.replace(self.options.mask, acceleration=accel)
        return dataclasses.replace(self.options, mask=mask, fmt="h5", progress=False)


def _accel_label(accel: float) -> str:
    return f"{accel:g}x"


def cell_dir(study_dir: Path, method: str, accel: float) -> Path:
    """The folder of one method × acceleration: ``recon/<method>/<accel>x``."""
    return Path(study_dir) / "recon" / method / _accel_label(accel)


def cell_path(study_dir: Path, method: str, accel: float, file: Path) -> Path:
    """The fastMRI file of one cell: ``recon/<method>/<accel>x/<file stem>.h5``."""
    return output_path("h5", cell_dir(study_dir, method, accel), file)


def _params(spec: StudySpec) -> Dict[str, dict]:
    """Each method's hyper-parameters (the prior added where the method takes one), checked
    by building every method once, before any cell runs."""
    params = {}
    for name in spec.methods:
        params[name] = dict(spec.params.get(name, {}))
        if spec.prior and name in METHODS and METHODS[name].takes_prior:
            params[name].setdefault("prior", spec.prior)
        make_method(name, **params[name])
    return params


def run_study(data: Sequence[os.PathLike | str], study_dir: os.PathLike | str, spec: StudySpec,
              progress: bool = True) -> List[dict]:
    """Run every missing cell, then write the CSV, the summary and the figures.

    Each method × acceleration runs its files with
    :func:`~mri_genprior.scaleout.reconstruct_all` (finished cells skipped, failures
    collected). Returns the result rows. A failed cell is reported on stderr and left out;
    the others go on (call again to retry it). Raises :class:`MriGenpriorError` if any cell
    failed, after writing the tables of those that did not.
    """
    files = input_files(data)
    for path in files:
        with open_volume(path) as volume:
            if volume.target is None:
                raise MriGenpriorError(f"{path}: no reference image (reconstruction_rss); a study needs one")
    params = _params(spec)
    study_dir = writable_dir(study_dir)
    runs = [(m, a) for a in spec.accelerations for m in spec.methods]
    done = sum(cell_path(study_dir, m, a, f).exists() for m, a in runs for f in files)
    if done:
        print(f"study: {done} of {len(runs) * len(files)} cells already done, skipping them")
    failed = []
    for name, accel in tqdm(runs, desc="study", unit="run", disable=not progress):
        job = Job(name, params[name], spec.cell_options(accel))
        report = reconstruct_all(files, cell_dir(study_dir, name, accel), job, progress=False)
        for source, error in report.failed:
            failed.append(f"{source} {name} {_accel_label(accel)}: {error}")
            print(f"error: {failed[-1]}", file=sys.stderr)
    rows = collect(files, study_dir, list(spec.methods), spec.accelerations)
    write_outputs(study_dir, rows, files[0], list(spec.methods), spec.accelerations)
    if failed:
        cells = len(runs) * len(files)
        raise MriGenpriorError(f"{len(failed)} of {cells} study cells failed (first: {failed[0]})")
    return rows


def collect(files: Sequence[Path], study_dir: Path, methods: Sequence[str], accels: Sequence[float]) -> List[dict]:
    """Result rows of every finished cell (metrics against each file's reference)."""
    rows = []
    for file in files:
        with open_volume(file) as volume:
            target = volume.read_target()
        for accel in accels:
            for name in methods:
                out = cell_path(study_dir, name, accel, file)
                if not out.exists():
                    continue
                with h5py.File(out, "r") as f:
                    recon = f["reconstruction"][()]
                    attrs = dict(f.attrs)
                metrics = volume_metrics(target, recon)
                rows.append({"file": file.name, "method": name, "acceleration": accel,
                             "achieved_acceleration": round(float(attrs["acceleration"]), 3),
                             **{k: round(metrics[k], 5) for k in METRIC_NAMES},
                             "seconds": float(attrs["seconds"]), "slices": int(recon.shape[0])})
    return rows


def summarize_rows(rows: Sequence[dict]) -> List[dict]:
    """Mean and sample std (0 for one volume) of each metric and the seconds, per method × acceleration."""
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["acceleration"]), []).append(r)
    out = []
    for (method, accel), group in groups.items():
        entry = {"method": method, "acceleration": accel, "volumes": len(group)}
        for key in METRIC_NAMES + ("seconds",):
            values = np.array([g[key] for g in group], dtype=float)
            entry[key] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0)
        out.append(entry)
    return out


def format_summary(summary: Sequence[dict]) -> str:
    """Markdown table: one row per method × acceleration, metrics as mean ± std."""
    head = "| method | accel | volumes | SSIM | PSNR (dB) | NMSE | seconds/volume |\n|---|---|---|---|---|---|---|\n"
    lines = [f"| {s['method']} | {_accel_label(s['acceleration'])} | {s['volumes']} | "
             f"{s['SSIM'][0]:.4f} ± {s['SSIM'][1]:.4f} | {s['PSNR'][0]:.2f} ± {s['PSNR'][1]:.2f} | "
             f"{s['NMSE'][0]:.4f} ± {s['NMSE'][1]:.4f} | {s['seconds'][0]:.1f} |" for s in summary]
    return head + "\n".join(lines) + "\n"


def write_outputs(study_dir: Path, rows: Sequence[dict], example_file: Path, methods: Sequence[str],
                  accels: Sequence[float]) -> None:
    """``results.csv``, ``summary.md`` and the two figures (nothing if no cell finished)."""
    if not rows:
        return
    with atomic_path(study_dir / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize_rows(rows)
    with atomic_path(study_dir / "summary.md") as tmp:
        tmp.write_text(format_summary(summary))
    from .figures import example_panel, metrics_vs_acceleration

    metrics_vs_acceleration(study_dir / "metrics_vs_accel.png", summary, methods)
    with open_volume(example_file) as volume:
        target = volume.read_target()
    index = target.shape[0] // 2
    images = {}
    for accel in accels:
        for name in methods:
            out = cell_path(study_dir, name, accel, example_file)
            if out.exists():
                with h5py.File(out, "r") as f:
                    images[name, accel] = f["reconstruction"][index]
    example_panel(study_dir / "examples.png", target[index], images, methods, accels,
                  title=f"{example_file.name}, slice {index}")
