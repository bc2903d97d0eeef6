"""Generator registry and safe checkpoints.

A checkpoint is a ``torch.save`` of ``{"config": {...}, "state_dict": {...}}`` where
``config = {"architecture": NAME, **constructor kwargs, "normalisation": ..., "metadata": {...}}``
is JSON-able (``metadata``: how the prior was trained, e.g. its target images).
:func:`load_checkpoint` uses ``torch.load(..., weights_only=True)``, so a file with
pickled code is refused, and a state dict that does not fit its architecture is a
clear error. It also reads the published MRI score checkpoints in their own layouts
(:mod:`.published`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import torch
from torch import nn

from .. import MriGenpriorError
from ..io import atomic_path
from .denoiser import ScoreUNet
from .ncsnpp import NCSNpp
from .ncsnv2 import NCSNv2Deepest
from .networks import DCGANGenerator, DeepDecoder, ExpansiveReLU, SkipNet, VAE
from .published import layout, load_published

REGISTRY = {"dcgan": DCGANGenerator, "vae": VAE, "deep-decoder": DeepDecoder, "relu": ExpansiveReLU, "dip": SkipNet,
            "score-unet": ScoreUNet, "ncsnv2": NCSNv2Deepest, "ncsnpp": NCSNpp}
SCORE_ARCHITECTURES = ("score-unet", "ncsnv2", "ncsnpp")  # priors for the posterior samplers


def build(config: dict) -> nn.Module:
    """Instantiate ``REGISTRY[config["architecture"]](**kwargs)``; extra keys other than
    ``normalisation`` and ``metadata`` are an error."""
    config = dict(config)
    name = config.pop("architecture", None)
    config.pop("normalisation", None)
    config.pop("metadata", None)
    if name not in REGISTRY:
        raise MriGenpriorError(f"unknown generator architecture {name!r}; known: {', '.join(REGISTRY)}")
    try:
        return REGISTRY[name](**config)
    except (TypeError, ValueError) as err:
        raise MriGenpriorError(f"invalid {name} config {config}: {err}") from err


def architecture_of(model: nn.Module) -> str:
    return next(k for k, v in REGISTRY.items() if type(model) is v)


def save_checkpoint(path: os.PathLike | str, model: nn.Module, normalisation: str = "p99",
                    metadata: dict | None = None) -> Path:
    """Atomically write ``{"config", "state_dict"}`` for ``model`` to ``path``."""
    path = Path(path)
    config = {"architecture": architecture_of(model), **model.config, "normalisation": normalisation,
              "metadata": dict(metadata or {})}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"config": config, "state_dict": state}, tmp)
    return path


def load_checkpoint(path: os.PathLike | str, device: torch.device | str = "cpu") -> Tuple[nn.Module, dict]:
    """Load a generator or score checkpoint safely (ours or a published layout); returns
    ``(model in eval mode, config)``."""
    path = Path(path)
    if not path.is_file():
        raise MriGenpriorError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for pickled code, RuntimeError/EOFError for corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MriGenpriorError(f"{path}: refused or unreadable checkpoint (weights-only load): {first}") from err
    if layout(payload) is not None:
        model, config = load_published(payload, path)
        return model.to(device).eval(), config
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
        raise MriGenpriorError(f"{path}: matches no known checkpoint layout (mri_genprior's needs 'config' and "
                               "'state_dict'; Jalal et al.'s is a list of 5; score-MRI's a dict with 'model' and 'ema')")
    model = build(payload["config"])
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise MriGenpriorError(
            f"{path}: weights do not match architecture {payload['config'].get('architecture')!r}: "
            f"{str(err).splitlines()[0]}"
        ) from err
    return model.to(device).eval(), dict(payload["config"])
