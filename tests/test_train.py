"""Prior training: data preparation, checkpoints the solvers load, exact resume, DDP with gloo."""

import csv
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from mri_genprior import MriGenpriorError
from mri_genprior.priors.models import TRAINABLE
from mri_genprior.cli import main
from mri_genprior.priors.datasets import training_images
from mri_genprior.priors import load_checkpoint
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method
from mri_genprior.priors.train import TrainConfig, train

TINY = dict(image_size=64, latent_dim=8, width=4, batch_size=2, log_every=1, sample_every=3, checkpoint_every=3)


def _rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def test_training_images_match_the_reference(synth_dir):
    files = sorted(synth_dir.glob("*.h5"))
    complex_images, sources = training_images(files, "complex", 64, progress=False)
    rss_images, _ = training_images(files, "rss", 64, progress=False)
    assert complex_images.shape == (4, 2, 64, 64) and rss_images.shape == (4, 1, 64, 64)
    assert sources == [(files[0].name, 0), (files[0].name, 1), (files[1].name, 0), (files[1].name, 1)]
    np.testing.assert_allclose([np.percentile(im, 99) for im in rss_images[:, 0]], 1.0, rtol=1e-5)
    # the ESPIRiT-combined magnitude is the RSS image up to the per-slice scale (both p99-normalised)
    magnitude = np.hypot(complex_images[:, 0], complex_images[:, 1])
    inside = rss_images[:, 0] > 0.2
    ratio = magnitude[inside] / rss_images[:, 0][inside]
    assert abs(np.median(ratio) - 1) < 0.05 and np.percentile(np.abs(ratio - np.median(ratio)), 90) < 0.1


def test_training_images_filters_and_refuses_undersampled(synth_dir, tmp_path):
    files = sorted(synth_dir.glob("*.h5"))
    with pytest.raises(MriGenpriorError, match="no training slices found with acquisition"):
        training_images(files, "rss", 64, acquisitions=["CORPD_FBK"], progress=False)
    images, _ = training_images(files, "rss", 64, acquisitions=["AXT1"], progress=False)
    assert len(images) == 4
    masked = tmp_path / "masked.h5"
    with h5py.File(files[0]) as src, h5py.File(masked, "w") as dst:
        for key in src:
            src.copy(key, dst)
        dst["mask"] = np.ones(src["kspace"].shape[-1], np.float32)
    with pytest.raises(MriGenpriorError, match="needs fully sampled"):
        training_images([masked], "complex", 64, progress=False)


def test_trained_prior_loads_into_csgm(synth_dir, synth_file, tmp_path):
    summary = train(TrainConfig(steps=3, target="complex", **TINY), [synth_dir], tmp_path / "run", progress=False)
    assert summary["steps"] == 3 and len(summary["rank_fingerprints"]) == 1
    run = tmp_path / "run"
    assert {"config.json", "generator.pt", "state.pt", "losses.csv", "summary.json", "train_images.npy"} <= {
        p.name for p in run.iterdir()}
    assert (run / "samples" / "step_000003.png").stat().st_size > 0
    assert not list(run.glob(".*.tmp"))  # atomic writes leave nothing behind
    model, config = load_checkpoint(run / "generator.pt")
    assert config["channels"] == 2 and config["metadata"]["target"] == "complex"
    assert config["metadata"]["trained_on"] == sorted(p.name for p in synth_dir.glob("*.h5"))
    method = make_method("csgm", prior=str(run / "generator.pt"), steps=5, restarts=2)
    recon, info = reconstruct_volume(synth_file, method, ReconOptions(MaskSpec("random", 4, 0.25), progress=False))
    assert recon.shape == (2, 64, 64) and np.all(np.isfinite(recon))
    assert len(info["diagnostics"]) == 2 and info["diagnostics"][0]["steps"] == 5


def test_vae_elbo_decreases(synth_dir, tmp_path):
    train(TrainConfig(model="vae", target="rss", steps=30, lr=2e-3, **TINY), [synth_dir], tmp_path / "vae",
          progress=False)
    rows = _rows(tmp_path / "vae" / "losses.csv")
    first, last = np.mean([float(r["neg_elbo"]) for r in rows[:5]]), np.mean([float(r["neg_elbo"]) for r in rows[-5:]])
    assert last < 0.7 * first
    _, config = load_checkpoint(tmp_path / "vae" / "generator.pt")
    assert config["architecture"] == "vae" and config["channels"] == 1


@pytest.mark.parametrize("model", ["dcgan", "vae", "score"])
def test_resume_after_interruption_is_exact(synth_dir, tmp_path, monkeypatch, model):
    config = TrainConfig(model=model, steps=7, target="complex" if model == "score" else "rss", **TINY)
    train(config, [synth_dir], tmp_path / "whole", progress=False)

    calls = {"n": 0}
    model_class = TRAINABLE[model]
    original = model_class.step

    def crash_at_step_5(self, real, rng):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # killed after the checkpoint at step 3, with log rows 4 written
        return original(self, real, rng)

    monkeypatch.setattr(model_class, "step", crash_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(config, [synth_dir], tmp_path / "cut", progress=False)
    monkeypatch.undo()
    assert torch.load(tmp_path / "cut" / "state.pt", weights_only=True)["step"] == 3
    train(config, [], tmp_path / "cut", resume=True, progress=False)

    whole = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "state.pt", weights_only=True)
    assert whole["step"] == cut["step"] == 7
    for name, state in whole["modules"].items():
        for key, value in state.items():
            assert torch.equal(value, cut["modules"][name][key]), (name, key)
    assert _rows(tmp_path / "whole" / "losses.csv") == _rows(tmp_path / "cut" / "losses.csv")


def test_cli_train_errors(synth_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(synth_dir), "-o", str(run), "--preset", "small", "--steps", "2",
            "--batch-size", "2", "--width", "4", "-q"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a training run; use --resume" in capsys.readouterr().err
    assert main(["train", "-o", str(run), "--resume", "--model", "vae", "--steps", "3", "-q"]) == 2
    assert "--resume: model is 'dcgan'" in capsys.readouterr().err
    assert main(["train", "-o", str(run), "--resume", "--steps", "3", "-q"]) == 0
    assert json.loads((run / "summary.json").read_text())["steps"] == 3
    assert main(["train", "-o", str(tmp_path / "new"), "--resume", "-q"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", "--data", str(synth_dir), "-o", str(tmp_path / "big"), "--batch-size", "64", "-q"]) == 2
    assert "fewer than --batch-size 64" in capsys.readouterr().err
    assert main(["train", "--data", str(synth_dir), "-o", str(tmp_path / "score"), "--model", "score", "--target",
                 "rss", "-q"]) == 2
    assert "the score model needs complex images, not --target rss" in capsys.readouterr().err
    assert not any((tmp_path / "score").iterdir())  # nothing written
    assert main(["train", "--data", str(synth_dir), "-o", str(tmp_path / "score"), "--model", "score", "--steps", "1",
                 "--batch-size", "2", "--width", "4", "--levels", "2", "-q"]) == 0  # the model picks its target
    assert json.loads((tmp_path / "score" / "config.json").read_text())["config"]["target"] == "complex"


def test_two_process_gloo_training_keeps_ranks_identical(synth_dir, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mri_genprior.cli", "train", "--data", str(synth_dir), "-o", str(run), "--preset", "small",
           "--steps", "4", "--batch-size", "2", "--width", "4", "--device", "cpu", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    prints = summary["rank_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]
    model, _ = load_checkpoint(run / "generator.pt")
    from mri_genprior.priors.distributed import fingerprint
    assert fingerprint(model) == prints[0]
