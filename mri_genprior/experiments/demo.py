"""``mri-genprior demo``: synthetic data → a prior trained on the spot → a short study.

Runs with no data and no network: the anatomy is the MNI152 template shipped inside
nilearn. The evaluation file's axial planes interleave with, and never equal, the
training files' planes (a held-out file of the same family).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from .study import StudySpec, format_summary, run_study, summarize_rows
from .synthetic import write_synthetic_dataset
from ..priors.train import PRESETS, TrainConfig, train
from ..recon import MaskSpec, ReconOptions, resolve_device

SIZE = 64
SLICES = 4
ACCELS = (4, 8)
# 2-D Poisson-disc masks with a 10×10 calibration square: 1-D masks on a 64-wide matrix
# cannot reach 8x with enough calibration lines for ESPIRiT.
MASK, CENTER_FRACTION = "poisson", 0.16
PRIOR = dataclasses.replace(TrainConfig(**PRESETS["small"]), model="vae", target="rss", steps=400)
METHODS = {"zero-filled": {}, "l1-wavelet": {}, "convdecoder": {"steps": 300}, "csgm": {"steps": 300},
           "sparse-gen": {"steps": 300}}


def run_demo(out_dir: Path, device: str = "auto") -> Path:
    """Run the demo into ``out_dir``; return the study directory."""
    out_dir = Path(out_dir)
    start = time.perf_counter()
    print(f"mri-genprior demo (about 3 minutes on 2 CPU cores): synthetic 8-coil {SIZE}x{SIZE} brain data, "
          f"a small {PRIOR.model.upper()} prior trained on the spot, then {', '.join(METHODS)} at "
          f"{', '.join(f'{a}x' for a in ACCELS)} ({MASK} masks).")
    files = write_synthetic_dataset(out_dir / "data", num_files=9, slices=SLICES, size=(SIZE, SIZE), seed=0,
                                    planes=(60, 132))
    test_file = files.pop(len(files) // 2)
    print(f"[{time.perf_counter() - start:4.0f} s] training the prior on {len(files) * SLICES} slices; "
          f"held out: {test_file.name}")
    run_dir = out_dir / "prior"
    summary = train(PRIOR, files, run_dir, resolve_device(device), resume=(run_dir / "state.pt").exists())
    print(f"[{time.perf_counter() - start:4.0f} s] prior ready: {summary['generator']}; running the study")
    options = ReconOptions(MaskSpec(MASK, ACCELS[0], CENTER_FRACTION), device=device)
    spec = StudySpec(list(METHODS), ACCELS, METHODS, summary["generator"], options)
    study_dir = out_dir / "study"
    rows = run_study([test_file], study_dir, spec)
    print(format_summary(summarize_rows(rows)), end="")
    print(f"done in {time.perf_counter() - start:.0f} s\n"
          f"  table:   {study_dir / 'summary.md'} (per volume: {study_dir / 'results.csv'})\n"
          f"  figures: {study_dir / 'examples.png'}, {study_dir / 'metrics_vs_accel.png'}\n"
          f"  reconstructions (fastMRI submission files): {study_dir / 'recon'}")
    return study_dir
