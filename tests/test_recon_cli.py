"""End-to-end: classical methods, metrics equal to fastMRI's evaluate, CLI behaviour."""

import argparse

import h5py
import numpy as np
import pytest

from conftest import SHARED_KSPACE
from mri_genprior.cli import main
from mri_genprior.metrics import evaluate_dirs, volume_metrics
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method
from mri_genprior.solvers.classical import LADDER

SPEC = MaskSpec("random", 4, 0.25)


@pytest.fixture(scope="module")
def recons(synth_file):
    with h5py.File(synth_file) as f:
        target = f["reconstruction_rss"][()]
    out = {}
    for name in ("zero-filled", "sense", "l1-wavelet"):  # tv: on a real crop (test_real_data)
        recon, info = reconstruct_volume(synth_file, make_method(name),
                                         ReconOptions(SPEC, device="cpu", progress=False))
        out[name] = (recon, info, volume_metrics(target, recon))
    return out


def test_shapes_and_provenance(recons):
    recon, info, _ = recons["l1-wavelet"]
    assert recon.shape == (2, 64, 64) and recon.dtype == np.float32
    assert info["mask"] == "random" and 3 < info["acceleration"] < 5
    assert info["settings"]["lamda"] == make_method("l1-wavelet").lamda == "auto"
    chosen = info["volume_choice"]  # λ chosen once, on the central slice: a rung or one of its refined neighbours
    assert chosen["refinement"]["lamdas"][0] in LADDER and chosen["lamda"] in chosen["refinement"]["lamdas"]
    np.testing.assert_allclose(chosen["refinement"]["lamdas"][1:],
                               chosen["refinement"]["lamdas"][0] * 10 ** np.array([.25, -.25]))
    assert all(d["lamda"] > 0 for d in info["diagnostics"])
    assert info["coil_maps"] == "espirit"  # auto, resolved: 16 calibration lines (centre fraction 0.25 of 64)
    assert recons["zero-filled"][1]["coil_maps"] is None


@pytest.mark.parametrize("method", ["sense", "l1-wavelet"])
def test_regularised_methods_beat_zero_filled(recons, method):
    zf = recons["zero-filled"][2]
    m = recons[method][2]
    assert m["SSIM"] > zf["SSIM"] + 0.05 and m["PSNR"] > zf["PSNR"] + 1.0, (method, m, zf)


def test_l1_wavelet_quality_floor(recons):
    assert recons["l1-wavelet"][2]["SSIM"] > 0.8


def test_cli_evaluate_equals_fastmri_evaluate(synth_dir, tmp_path, capsys):
    from fastmri import evaluate as fe

    assert main(["reconstruct", str(synth_dir), "-o", str(tmp_path / "pred"), "--method", "zero-filled",
                 "--center-fraction", "0.25", "-q"]) == 0
    ours = evaluate_dirs(synth_dir, tmp_path / "pred")
    for name, values in ours.items():
        metrics = fe.Metrics(fe.METRIC_FUNCS)
        with h5py.File(synth_dir / name) as t, h5py.File(tmp_path / "pred" / name) as p:
            tgt, pred = t["reconstruction_rss"][()], p["reconstruction"][()]
        from fastmri.data import transforms
        tgt = transforms.center_crop(tgt, (tgt.shape[-1], tgt.shape[-1]))
        pred = transforms.center_crop(pred, (tgt.shape[-1], tgt.shape[-1]))
        metrics.push(tgt, pred)
        for key in ("NMSE", "PSNR", "SSIM"):
            assert values[key] == pytest.approx(np.asarray(metrics.means()[key]).item(), rel=1e-6)
    # and the whole-directory fastMRI routine gives the same means
    args = argparse.Namespace(target_path=synth_dir, predictions_path=tmp_path / "pred", acquisition=None,
                              acceleration=None)
    means = fe.evaluate(args, "reconstruction_rss").means()
    for key in ("NMSE", "PSNR", "SSIM"):
        assert np.mean([v[key] for v in ours.values()]) == pytest.approx(np.asarray(means[key]).item(), rel=1e-6)
    capsys.readouterr()
    assert main(["evaluate", "--target-dir", str(synth_dir), "--pred-dir", str(tmp_path / "pred")]) == 0
    assert capsys.readouterr().out.startswith("NMSE = ")


def test_cli_skips_existing_and_is_deterministic(synth_file, tmp_path, capsys):
    args = ["reconstruct", str(synth_file), "-o", str(tmp_path), "--method", "zero-filled", "-q",
            "--center-fraction", "0.25"]
    assert main(args) == 0
    first = h5py.File(tmp_path / synth_file.name)["reconstruction"][()]
    assert main(args) == 0
    assert "skip" in capsys.readouterr().out
    assert main(args + ["--overwrite"]) == 0
    np.testing.assert_array_equal(first, h5py.File(tmp_path / synth_file.name)["reconstruction"][()])


def test_cli_bad_inputs(tmp_path, synth_file, capsys):
    garbage = tmp_path / "in" / "bad.h5"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    assert main(["reconstruct", str(garbage), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognised input format" in err[0]
    assert list(out.iterdir()) == []  # nothing partial left behind
    assert main(["reconstruct", str(tmp_path / "missing.h5"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["reconstruct", str(synth_file), "-o", str(out), "--method", "tv", "-p", "lamdaa=1"]) == 2
    assert "has no parameter 'lamdaa'" in capsys.readouterr().err
    assert main(["reconstruct", str(synth_file), "-o", str(out), "--method", "csgm"]) == 2
    assert "needs a generator checkpoint" in capsys.readouterr().err
    blocked = tmp_path / "file_not_dir"
    blocked.write_text("x")
    assert main(["reconstruct", str(synth_file), "-o", str(blocked / "sub")]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


@pytest.mark.parametrize("command, expected", [
    (["reconstruct", "{file}", "--method", "tv", "-p", "lamda=-1"], "expected a finite number >= 0"),
    (["reconstruct", "{file}", "--accel", "0.5"], "acceleration must be >= 1, got 0.5"),
    (["reconstruct", "{file}", "--center-fraction", "1.5"], "center fraction must be in (0, 1]"),
    (["reconstruct", "{file}", "--batch-size", "0"], "expected int >= 1, got '0'"),
    (["study", "--data", "{file}", "--methods", "tv", "-p", "tv:max_iter=0"], "expected a number of iterations >= 1, got 0"),
    (["study", "--data", "{missing}"], "no such file"),
    (["synth", "--coils", "0"], "expected int >= 1, got '0'"),
    (["synth", "--noise", "nan"], "expected float >= 0.0, got 'nan'"),
])
def test_cli_refused_settings_leave_no_output_directory(synth_file, tmp_path, capsys, command, expected):
    out = tmp_path / "new" / "out"
    argv = [a.format(file=synth_file, missing=tmp_path / "missing.h5") for a in command] + ["-o", str(out), "-q"]
    if command[0] == "synth":
        argv.remove("-q")
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refuses the value itself
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1]
    assert not (tmp_path / "new").exists()


def test_cli_too_small_calibration_is_a_clear_error(synth_file, tmp_path, capsys):
    assert main(["reconstruct", str(synth_file), "-o", str(tmp_path), "--method", "sense",
                 "--center-fraction", "0.04", "-q"]) == 1
    assert "only 3 fully sampled centre lines: coil maps need at least 4" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not SHARED_KSPACE.exists(), reason="shared real k-space not present beside the checkout")
def test_real_shared_kspace_prospective_2d_mask(tmp_path):
    from mri_genprior.convert import wrap_kspace

    src = wrap_kspace(np.load(SHARED_KSPACE), tmp_path / "in" / "brain.h5")
    with h5py.File(src) as f:
        assert f["mask"].shape == (230, 180)  # 2-D Poisson pattern detected
    assert main(["reconstruct", str(src), "-o", str(tmp_path / "out"), "--method", "l1-wavelet", "-p", "lamda=0.003",
                 "-q"]) == 0  # a fixed λ: this checks the file's mask, not the λ search
    with h5py.File(tmp_path / "out" / "brain.h5") as f:
        recon = f["reconstruction"][()]
        assert recon.shape == (1, 230, 180) and np.isfinite(recon).all()
        assert 6 < f.attrs["acceleration"] < 10 and f.attrs["mask"] == "file"
    # brain in the middle, dark corners
    assert recon[0, 90:140, 60:120].mean() > 5 * recon[0, :20, :20].mean()
