"""The field's published MRI score checkpoints, read in their own file layouts.

* Jalal et al., NeurIPS 2021 (csgm-mri-langevin): ``torch.save`` of a list of 5 entries,
  ``[0]`` the ``DataParallel`` state dict (``module.`` keys, with the ``sigmas`` buffer),
  ``[4]`` the EMA shadow ``{parameter name: tensor}``. Architecture
  :class:`~mri_genprior.priors.ncsnv2.NCSNv2Deepest`; complex images as 2 channels in units
  of the 99th percentile of ``|MVUE|``.
* Chung & Ye, Med. Image Anal. 2022 (score-MRI): ``{"optimizer", "model", "ema", "step"}``,
  ``model`` the ``DataParallel`` state dict, ``ema["shadow_params"]`` a list in the order of
  the trainable parameters. Architecture :class:`~mri_genprior.priors.ncsnpp.NCSNpp`;
  magnitude images in [0, 1], one channel.

As the published samplers do, sampling uses the EMA weights: the state dict is loaded
(``strict``, prefix stripped, which also brings the non-trainable buffers such as NCSN++'s
Fourier frequencies ``W``) and the EMA copied over every trainable parameter. The
architecture's size comes from the weights' shapes; any key or shape that does not fit is
a one-line error naming the first mismatch.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .. import MriGenpriorError
from .ncsnpp import NCSNpp
from .ncsnv2 import NCSNv2Deepest

PREFIX = "module."


def layout(payload) -> Optional[str]:
    """``"jalal2021"``, ``"chung2022"`` or None (not a published layout) for a loaded checkpoint."""
    if isinstance(payload, (list, tuple)) and len(payload) == 5 and isinstance(payload[0], dict) \
            and isinstance(payload[4], dict):
        return "jalal2021"
    if isinstance(payload, dict) and {"model", "ema"} <= payload.keys():
        return "chung2022"
    return None


def first_mismatch(expected: Dict[str, torch.Tensor], got: Dict[str, torch.Tensor]) -> Optional[str]:
    """A description of the first key or shape in which ``got`` differs from ``expected`` (None: they fit)."""
    for key, value in expected.items():
        if key not in got:
            return f"missing {key!r}"
        if not isinstance(got[key], torch.Tensor) or tuple(got[key].shape) != tuple(value.shape):
            shape = tuple(got[key].shape) if isinstance(got[key], torch.Tensor) else type(got[key]).__name__
            return f"{key!r} has shape {shape}, the architecture needs {tuple(value.shape)}"
    extra = next((key for key in got if key not in expected), None)
    return None if extra is None else f"unexpected {extra!r}"


def _unprefixed(state: dict, path) -> Dict[str, torch.Tensor]:
    if not all(isinstance(key, str) and key.startswith(PREFIX) for key in state):
        bad = next(key for key in state if not (isinstance(key, str) and key.startswith(PREFIX)))
        raise MriGenpriorError(f"{path}: state dict key {bad!r} lacks the {PREFIX!r} prefix of the published layout")
    return {key[len(PREFIX):]: value for key, value in state.items()}


def _shape(state: dict, key: str, path) -> Tuple[int, ...]:
    if not isinstance(state.get(key), torch.Tensor):
        raise MriGenpriorError(f"{path}: missing {key!r}: not a checkpoint of this architecture")
    return tuple(state[key].shape)


def _load(model: nn.Module, state: dict, ema: Dict[str, torch.Tensor], path) -> nn.Module:
    """``model`` with ``state`` loaded strictly and the ``ema`` values over its trainable parameters."""
    problem = first_mismatch(model.state_dict(), state)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if problem is None:
        problem = first_mismatch(trainable, ema)
        problem = problem and f"EMA weights: {problem}"
    if problem is not None:
        raise MriGenpriorError(f"{path}: weights do not fit {type(model).__name__}: {problem}")
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        for name, parameter in trainable.items():
            parameter.copy_(ema[name])
    return model


def _jalal(payload, path) -> Tuple[nn.Module, dict]:
    state = _unprefixed(payload[0], path)
    width, channels = _shape(state, "begin_conv.weight", path)[:2]
    sigmas = state.get("sigmas")
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or len(sigmas) < 2:
        raise MriGenpriorError(f"{path}: missing 'module.sigmas', the noise schedule of the published layout")
    config = dict(ngf=width, channels=channels, num_classes=len(sigmas), sigma_begin=float(sigmas[0]),
                  sigma_end=float(sigmas[-1]))
    model = _load(NCSNv2Deepest(**config), state, payload[4], path)
    return model, {"architecture": "ncsnv2", **config, "normalisation": "p99-mvue",
                   "metadata": {"source": "Jalal et al. 2021 (csgm-mri-langevin)", "weights": "ema"}}


def _chung(payload, path) -> Tuple[nn.Module, dict]:
    state = _unprefixed(payload["model"], path)
    width = _shape(state, "all_modules.0.W", path)[0]
    channels = _shape(state, "all_modules.3.weight", path)[1]
    config = dict(nf=width, channels=channels, num_scales=_shape(state, "sigmas", path)[0])
    model = NCSNpp(**config)
    shadow = payload["ema"].get("shadow_params") if isinstance(payload["ema"], dict) else None
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if not isinstance(shadow, (list, tuple)) or len(shadow) != len(names):
        count = len(shadow) if isinstance(shadow, (list, tuple)) else "no"
        raise MriGenpriorError(f"{path}: EMA weights: {count} shadow parameters, the architecture needs {len(names)}")
    model = _load(model, state, dict(zip(names, shadow)), path)
    return model, {"architecture": "ncsnpp", **config, "normalisation": "max-mvue",
                   "metadata": {"source": "Chung & Ye 2022 (score-MRI)", "weights": "ema"}}


def load_published(payload, path) -> Tuple[nn.Module, dict]:
    """``(model, config)`` of a checkpoint ``payload`` in a published :func:`layout` (see the module docstring)."""
    return {"jalal2021": _jalal, "chung2022": _chung}[layout(payload)](payload, path)
