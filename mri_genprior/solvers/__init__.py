"""Reconstruction methods, by name: the one registry the CLI, the study and the docs read.

Each entry is a method class (see :mod:`.base` for the interface), the defaults that
make it the named method, and a one-line summary with its reference. Adding a method is
one new module with a :class:`~.base.Method` subclass plus one :func:`register` line.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Type

from .. import MriGenpriorError, check_choice
from .base import Method, Result
from .classical import SigpyRecon, ZeroFilled
from .posterior import AnnealedPublished, DecomposedDiffusion, DiffusionPosterior, Langevin, PredictorCorrector
from .scan_specific import ZeroShotSSL
from .trained import TrainedPrior
from .untrained import UntrainedPrior


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered method: its class, the defaults that define it, and a summary."""

    cls: Type[Method]
    defaults: dict
    summary: str

    @property
    def takes_prior(self) -> bool:
        return self.cls.takes_prior

    def parameters(self) -> Dict[str, object]:
        """Every hyper-parameter with its default for this entry."""
        fields = {f.name: f.default for f in dataclasses.fields(self.cls) if f.init}
        return {**fields, **self.defaults}


METHODS: Dict[str, Entry] = {}


def register(name: str, cls: Type[Method], summary: str, **defaults) -> None:
    """Make ``cls`` with ``defaults`` available as method ``name``."""
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = set(defaults) - fields
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    METHODS[name] = Entry(cls, defaults, summary)


register("zero-filled", ZeroFilled, "zero-filled root sum of squares")
register("sense", SigpyRecon, "CG-SENSE, λ‖x‖² (Pruessmann et al., MRM 1999)", regularizer="l2", max_iter=30)
register("l1-wavelet", SigpyRecon, "λ‖Ψx‖₁, Daubechies-4 (Lustig et al., MRM 2007)", regularizer="wavelet",
         ladder="zero", start="zero", cycle_spin=True, refine=True, weighted_holdout=False)
register("tv", SigpyRecon, "total variation λ‖∇x‖₁ (Block et al., MRM 2007)", regularizer="tv", max_iter=300,
         ladder="zero", start="zero", refine=True, weighted_holdout=False)
register("csgm", TrainedPrior, "min_z ‖A G(z) − y‖² + λ‖z‖², restarts (Bora et al., ICML 2017)")
register("sign-flip", TrainedPrior, "csgm + jump to −z when f(−z) < f(z) (Hand & Voroninski, COLT 2018)",
         sign_flip_every=10)
register("sparse-gen", TrainedPrior, "x = G(z) + ν, λ_ν‖Ψν‖₁ (Dhar et al., ICML 2018)", lamda_nu=0.01)
register("image-adaptive", TrainedPrior, "csgm, then z and weights per slice (Hussein et al., AAAI 2020)",
         adapt_steps=200)
register("deep-decoder", UntrainedPrior, "untrained 1×1 decoder (Heckel & Hand, ICLR 2019)", lr=0.01)
register("convdecoder", UntrainedPrior, "untrained 3×3 decoder (Darestani & Heckel, IEEE TCI 2021)",
         channels=32, kernel_size=3)
register("dip", UntrainedPrior, "untrained encoder-decoder from noise (Ulyanov et al., CVPR 2018)",
         network="dip", channels=32, layers=3, kernel_size=3, lr=0.01)
register("zs-ssl", ZeroShotSSL, "unrolled network trained on the scan's own k-space (Yaman et al., ICLR 2022)")
register("dds", DecomposedDiffusion, "score prior, Tweedie + CG data consistency (Chung et al., ICLR 2024)")
register("dps", DiffusionPosterior, "score prior, diffusion posterior sampling (Chung et al., ICLR 2023)", levels=100)
register("langevin", Langevin, "score prior, annealed Langevin (Jalal et al., NeurIPS 2021)", levels=100)
register("annealed", AnnealedPublished, "score prior, Jalal et al.'s own published Langevin sampler and schedule",
         schedule="geometric", levels=1155, sigma_max=1.2318, sigma_min=0.0066, samples=1)
register("pc", PredictorCorrector, "score prior, Chung & Ye's predictor-corrector for the VE-SDE (MedIA 2022)",
         schedule="geometric", levels=2000, sigma_max=378.0, sigma_min=0.01, samples=1)


def _convert(default, value):
    if not isinstance(value, str):
        return value
    kind = type(default)
    if kind is bool:
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"expected a boolean, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    return kind(value)


def make_method(name: str, **params) -> Method:
    """Build method ``name`` with hyper-parameters ``params`` (strings are converted to
    the default's type, so CLI ``KEY=VALUE`` pairs can be passed straight through)."""
    check_choice("unknown method", name, METHODS)
    entry = METHODS[name]
    defaults = entry.parameters()
    kwargs = dict(entry.defaults)
    for key, value in params.items():
        key = key.replace("-", "_")
        if key not in defaults:
            raise MriGenpriorError(f"method {name} has no parameter {key!r}; it takes: {', '.join(defaults) or 'none'}")
        try:
            kwargs[key] = _convert(defaults[key], value)
        except ValueError as err:
            raise MriGenpriorError(f"{name} parameter {key}: {err}") from err
    try:
        method = entry.cls(**kwargs)
    except MriGenpriorError as err:  # the class's own checks, phrased to follow the method's name
        raise MriGenpriorError(f"method {name} {err}") from None
    method.name = name
    return method


def describe(name: str) -> str:
    """``name: param=default, ...`` for help texts."""
    params = METHODS[name].parameters()
    return f"{name}: " + (", ".join(f"{k}={v}" for k, v in params.items()) or "(no parameters)")


__all__ = ["METHODS", "Entry", "Method", "Result", "describe", "make_method", "register"]
