"""Train generative priors (any model of :data:`.models.TRAINABLE`) on fastMRI files, on one process or many.

The objectives and training steps live with the models (:mod:`.models`).

A run directory holds ``config.json`` (settings and training slices),
``train_images.npy`` (the prepared images, reused on resume), ``generator.pt`` (a solver
checkpoint: ``mri-genprior reconstruct --method csgm --prior RUN/generator.pt``),
``state.pt`` (everything needed to resume), ``losses.csv``, ``samples/step_NNNNNN.png``
(fixed-seed sample grids) and, at the end, ``summary.json``. Every file is written
atomically.

Exact resume: all randomness is a function of ``(seed, rank, step)`` (latent draws,
reparameterisation noise) or ``(seed, epoch)`` (the ``DistributedSampler`` order), so
restoring weights, optimizer states and the step count continues a run bit for bit.

Distributed: under ``torchrun --nproc_per_node N`` every process trains a
``DistributedDataParallel`` replica on its own shard of the slices (gloo on CPU, NCCL
on CUDA); ``batch_size`` is per process. At the end every rank's weight fingerprint is
recorded in ``summary.json`` and a mismatch is an error.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .. import MriGenpriorError, check_choice
from ..io import atomic_path
from . import distributed, save_checkpoint
from .datasets import TARGETS, training_images
from .models import TRAINABLE

log = logging.getLogger(__name__)


def _option(default, help: str, **extra):
    """A TrainConfig field whose ``help`` (and optional ``choices``, ``flag``) the CLI reads."""
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata={"help": help, **extra})
    return dataclasses.field(default=default, metadata={"help": help, **extra})


@dataclasses.dataclass
class TrainConfig:
    """Training settings (all recorded in ``config.json``; the ``train`` command's options)."""

    model: str = _option("dcgan", "trainable model", choices=tuple(TRAINABLE))
    target: str = _option("rss", "rss: reconstruction_rss magnitudes (1 channel, used with the calibration-phase "
                                 "model); complex: ESPIRiT-combined images from fully sampled k-space (2 channels)",
                          choices=TARGETS)
    image_size: int = _option(64, "square image side, 4*2^n")
    latent_dim: int = _option(64, "latent dimension")
    width: int = _option(32, "base channel width")
    steps: int = _option(5000, "total optimisation steps")
    batch_size: int = _option(32, "images per step per process")
    lr: float = _option(2e-4, "Adam learning rate")
    vae_sigma: float = _option(0.05, "VAE decoder noise std in normalised units")
    levels: int = _option(3, "score model: U-Net resolutions")
    sigma_data: float = _option(0.5, "score model: σ_d of the EDM preconditioning")
    seed: int = _option(0, "seed of weights, data order and noise")
    acquisitions: List[str] = _option([], "train only on files with this acquisition attribute (repeatable), "
                                          "e.g. CORPD_FBK, AXT2", flag="--acquisition")
    calib_width: int = _option(24, "ESPIRiT calibration lines for the complex target")
    log_every: int = _option(10, "steps between losses.csv rows")
    sample_every: int = _option(500, "steps between sample grids")
    checkpoint_every: int = _option(500, "steps between checkpoints")


PRESETS: Dict[str, dict] = {
    "default": {},
    # tests and the demo: 64×64 images, a few hundred CPU steps
    "small": dict(image_size=64, latent_dim=32, width=16, steps=300, batch_size=16, sample_every=100,
                  checkpoint_every=100),
    # score prior, 64×64 complex images: ~20 minutes on 2 CPU cores (docs/score.md)
    "score-small": dict(model="score", target="complex", image_size=64, width=32, levels=3, steps=3000,
                        batch_size=16, lr=5e-4),
    # score prior for fastMRI slices on a GPU: 320×320 crops (memory in docs/score.md)
    "score": dict(model="score", target="complex", image_size=320, width=64, levels=4, steps=200000,
                  batch_size=8, lr=2e-4, sample_every=5000, checkpoint_every=5000),
}

# Settings that may differ when a run is resumed (everything else must match).
RESUMABLE = {"steps", "log_every", "sample_every", "checkpoint_every"}


def _step_rng(config: TrainConfig, rank: int, step: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([config.seed, rank, step]).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


class Trainer:
    """One training run in ``run_dir`` (see the module docstring); call :meth:`run`."""

    def __init__(self, config: TrainConfig, images: torch.Tensor, run_dir: Path, ctx: distributed.Context,
                 progress: bool = True):
        check_choice("unknown model", config.model, TRAINABLE)
        self.config, self.run_dir, self.ctx, self.progress = config, run_dir, ctx, progress
        self.images = images
        channels = images.shape[1]
        torch.manual_seed(config.seed)  # initial weights: identical on every rank
        self.model = TRAINABLE[config.model](config, channels, ctx)
        self.generator = self.model.generator
        per_rank = len(images) // ctx.world
        if per_rank < config.batch_size:
            raise MriGenpriorError(f"{len(images)} training slices over {ctx.world} process(es) leave {per_rank} "
                                   f"per process, fewer than --batch-size {config.batch_size}")
        self.sampler = DistributedSampler(range(len(images)), num_replicas=ctx.world, rank=ctx.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self.batches_per_epoch = per_rank // config.batch_size
        self._epoch, self._order = -1, []
        self.step = 0
        self.seconds = 0.0

    # -- data and randomness --------------------------------------------------------------
    def _batch(self, step: int) -> torch.Tensor:
        """Real images of (0-based) ``step`` for this rank: epoch order from the sampler."""
        epoch, within = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._epoch, self._order = epoch, list(self.sampler)
        b = self.config.batch_size
        return self.images[self._order[within * b:(within + 1) * b]].to(self.ctx.device)

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "seconds": self.seconds,
                "modules": {k: m.state_dict() for k, m in self.model.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.model.optimizers.items()}}

    def load_state(self, state: dict) -> None:
        for k, m in self.model.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.model.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])

    def save(self) -> None:
        """Write ``state.pt`` and the solver checkpoint ``generator.pt`` (rank 0, atomically)."""
        with atomic_path(self.run_dir / "state.pt") as tmp:
            torch.save(self.state(), tmp)
        metadata = {"target": self.config.target, "model": self.config.model, "steps": self.step,
                    "trained_on": _read_config(self.run_dir)[1]["files"]}
        save_checkpoint(self.run_dir / "generator.pt", self.generator, "p99", metadata)

    def write_samples(self) -> Path:
        """A 4×4 grid of magnitudes of the model's fixed-seed draws, as ``samples/step_NNNNNN.png``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = self.model.samples(torch.Generator().manual_seed(self.config.seed)).cpu()
        mag = out.pow(2).sum(1).sqrt().numpy()
        s = mag.shape[-1]
        grid = mag.reshape(4, 4, s, s).transpose(0, 2, 1, 3).reshape(4 * s, 4 * s)
        path = self.run_dir / "samples" / f"step_{self.step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        with atomic_path(path) as tmp:
            plt.imsave(tmp, grid, cmap="gray", vmin=0, vmax=max(float(np.percentile(grid, 99.5)), 1e-6),
                       format="png")
        return path

    def _log(self, row: dict) -> None:
        path = self.run_dir / "losses.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _truncate_log(self) -> None:
        """Drop log rows written after the checkpoint being resumed (they will be redone)."""
        path = self.run_dir / "losses.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if int(r["step"]) <= self.step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            if keep:
                writer = csv.DictWriter(f, fieldnames=list(keep[0]))
                writer.writeheader()
                writer.writerows(keep)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> dict:
        """Train up to ``config.steps``; returns the summary (also written to ``summary.json``)."""
        cfg, ctx = self.config, self.ctx
        if ctx.is_main:
            self._truncate_log()
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.model}", unit="step",
                   disable=not (self.progress and ctx.is_main))
        start = time.perf_counter()
        while self.step < cfg.steps:
            losses = self.model.step(self._batch(self.step), _step_rng(cfg, ctx.rank, self.step))
            if not all(math.isfinite(v) for v in losses.values()):
                raise MriGenpriorError(f"training diverged at step {self.step + 1}: {losses} "
                                       "(lower --lr or resume from the last checkpoint)")
            self.step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
            if ctx.is_main and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                self._log({"step": self.step, **{k: round(v, 6) for k, v in losses.items()},
                           "seconds": round(self.seconds + time.perf_counter() - start, 3)})
            if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                distributed.on_main(ctx, self.write_samples)
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.seconds += time.perf_counter() - start
                start = time.perf_counter()
                distributed.on_main(ctx, self.save)
        bar.close()
        prints = distributed.gather(ctx, distributed.fingerprint(self.generator))
        summary = {"model": cfg.model, "steps": self.step, "train_seconds": round(self.seconds, 2),
                   "world_size": ctx.world, "rank_fingerprints": prints,
                   "generator": str(self.run_dir / "generator.pt")}
        if len(set(prints)) != 1:
            raise MriGenpriorError(f"ranks hold different generator weights after training: {prints}")
        if ctx.is_main:
            with atomic_path(self.run_dir / "summary.json") as tmp:
                tmp.write_text(json.dumps(summary, indent=2))
        return summary


def _write_config(run_dir: Path, config: TrainConfig, data: dict) -> None:
    with atomic_path(run_dir / "config.json") as tmp:
        tmp.write_text(json.dumps({"config": dataclasses.asdict(config), "data": data}, indent=2))


def _read_config(run_dir: Path) -> tuple:
    saved = json.loads((run_dir / "config.json").read_text())
    return TrainConfig(**saved["config"]), saved["data"]


def _prepare_run(config: TrainConfig, data: Sequence[Path], run_dir: Path, resume: bool,
                 explicit: Sequence[str], progress: bool) -> None:
    """Rank 0: write (or check and update, on resume) ``config.json``, and ``train_images.npy``."""
    if resume:
        if not (run_dir / "config.json").exists() or not (run_dir / "state.pt").exists():
            raise MriGenpriorError(f"{run_dir}: nothing to resume (no config.json/state.pt)")
        saved, sources = _read_config(run_dir)
        for name in explicit:
            if name not in RESUMABLE and getattr(config, name) != getattr(saved, name):
                raise MriGenpriorError(f"--resume: {name} is {getattr(saved, name)!r} in {run_dir / 'config.json'}, "
                                       f"not {getattr(config, name)!r}")
        _write_config(run_dir, dataclasses.replace(saved, **{k: getattr(config, k) for k in RESUMABLE
                                                             if k in explicit}), sources)
        return
    if (run_dir / "state.pt").exists():
        raise MriGenpriorError(f"{run_dir} already holds a training run; use --resume or another directory")
    needs = getattr(TRAINABLE.get(config.model), "target", config.target)
    if config.target != needs:  # a model that needs one target takes it, unless another was asked for
        if "target" in explicit:
            raise MriGenpriorError(f"the {config.model} model needs {needs} images, not --target {config.target}")
        config = dataclasses.replace(config, target=needs)
    if not data:
        raise MriGenpriorError("no training data: pass --data DIR_OR_FILE ...")
    images, sources = training_images(data, config.target, config.image_size, config.acquisitions,
                                      config.calib_width, progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "train_images.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)
    _write_config(run_dir, config, {"files": sorted({s[0] for s in sources}), "slices": sources})


def train(config: TrainConfig, data: Sequence[Path], run_dir: Path, device: Optional[torch.device] = None,
          resume: bool = False, explicit: Sequence[str] = (), progress: bool = True) -> dict:
    """Train a prior into ``run_dir`` (see the module docstring); returns the summary.

    ``explicit`` names the settings the user set on this invocation; with ``resume``
    only ``steps`` and the logging intervals may differ from the saved run.
    """
    ctx = distributed.setup(device or torch.device("cpu"))
    run_dir = Path(run_dir)
    try:
        failure: List[str] = []

        def prepare():
            try:
                _prepare_run(config, data, run_dir, resume, explicit, progress)
            except MriGenpriorError as err:
                failure.append(str(err))

        distributed.on_main(ctx, prepare)
        failure = distributed.gather(ctx, failure)[0]
        if failure:
            raise MriGenpriorError(failure[0])
        config, _ = _read_config(run_dir)
        images = torch.from_numpy(np.load(run_dir / "train_images.npy"))
        trainer = Trainer(config, images, run_dir, ctx, progress)
        if resume:
            trainer.load_state(torch.load(run_dir / "state.pt", map_location=ctx.device, weights_only=True))
            log.info("resuming %s at step %d", run_dir, trainer.step)
        return trainer.run()
    finally:
        distributed.teardown(ctx)
