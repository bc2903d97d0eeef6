"""Acceleration-factor studies: the tidy CSV, the summary, figures, and skipping finished cells."""

import csv

import h5py
import numpy as np
import pytest

from mri_genprior import MriGenpriorError
from mri_genprior.cli import main
from mri_genprior.metrics import volume_metrics
from mri_genprior.recon import MaskSpec, ReconOptions
from mri_genprior.experiments.study import StudySpec, cell_path, run_study, summarize_rows

SPEC = StudySpec(methods=["zero-filled", "l1-wavelet"], accelerations=[2, 4], params={"l1-wavelet": {"max_iter": 10}},
                 options=ReconOptions(MaskSpec("random", 2, 0.25)))


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_study_writes_tables_and_figures_then_skips_finished_cells(synth_dir, tmp_path, capsys):
    out = tmp_path / "study"
    rows = run_study([synth_dir], out, SPEC, progress=False)
    assert len(rows) == 2 * 2 * 2  # files × methods × accelerations
    csv_rows = _read(out / "results.csv")
    assert len(csv_rows) == 8 and {r["method"] for r in csv_rows} == {"zero-filled", "l1-wavelet"}
    assert all(float(r["seconds"]) > 0 and int(r["slices"]) == 2 for r in csv_rows)
    # the CSV metrics are fastMRI's metrics of the written reconstruction against the file's reference
    row = next(r for r in csv_rows if r["method"] == "l1-wavelet" and float(r["acceleration"]) == 4)
    source = synth_dir / row["file"]
    with h5py.File(source) as t, h5py.File(cell_path(out, "l1-wavelet", 4, source)) as p:
        expected = volume_metrics(t["reconstruction_rss"][()], p["reconstruction"][()])
    assert float(row["SSIM"]) == pytest.approx(expected["SSIM"], abs=1e-5)
    # a prior-free reconstruction beats zero-filling at every acceleration
    summary = {(s["method"], s["acceleration"]): s for s in summarize_rows(rows)}
    for accel in (2, 4):
        assert summary["l1-wavelet", accel]["SSIM"][0] > summary["zero-filled", accel]["SSIM"][0]
    table = (out / "summary.md").read_text()
    assert table.count("\n") == 2 + 4 and "| l1-wavelet | 4x | 2 |" in table
    for figure in ("metrics_vs_accel.png", "examples.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    mtimes = {p: p.stat().st_mtime_ns for p in (out / "recon").rglob("*.h5")}
    cell_path(out, "zero-filled", 4, source).unlink()  # as if killed while this cell ran
    capsys.readouterr()
    again = run_study([synth_dir], out, SPEC, progress=False)
    assert "7 of 8 cells already done" in capsys.readouterr().out
    assert [r["SSIM"] for r in again] == [r["SSIM"] for r in rows]
    redone = {p for p in mtimes if p.exists() and p.stat().st_mtime_ns != mtimes[p]}
    assert redone == {cell_path(out, "zero-filled", 4, source)}


def test_study_needs_references_and_priors(synth_dir, tmp_path):
    with pytest.raises(MriGenpriorError, match="csgm needs a generator checkpoint"):
        run_study([synth_dir], tmp_path / "s", StudySpec(["csgm"], [4]), progress=False)
    no_target = tmp_path / "raw.h5"
    with h5py.File(sorted(synth_dir.glob("*.h5"))[0]) as src, h5py.File(no_target, "w") as dst:
        src.copy("kspace", dst)
        src.copy("ismrmrd_header", dst)
    with pytest.raises(MriGenpriorError, match="no reference image"):
        run_study([no_target], tmp_path / "s", SPEC, progress=False)


def test_cli_study(synth_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["study", "--data", str(synth_dir), "-o", str(out), "--methods", "zero-filled", "--accels", "3",
                 "--center-fraction", "0.25", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "| zero-filled | 3x | 2 |" in printed and str(out) in printed
    assert len(_read(out / "results.csv")) == 2
    assert main(["study", "--data", str(synth_dir), "-o", str(out), "--methods", "zero-filled",
                 "-p", "tv:lamda=1", "-q"]) == 2
    assert "not in --methods: tv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "--data", str(synth_dir), "-o", str(out), "--accels", "0.5"])
    assert np.isfinite(float(_read(out / "results.csv")[0]["PSNR"]))
