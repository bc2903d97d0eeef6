"""Reconstruction methods, by name. See ``solvers.base`` for the interface."""

from __future__ import annotations

import dataclasses
from typing import Dict, Type

from .. import MriGenpriorError
from .base import Reconstructor
from .classical import L1WaveletRecon, SenseRecon, TotalVariationRecon, ZeroFilled
from .generative import CSGM, ConvDecoder, DeepImagePrior, ImageAdaptive, SignFlip, SparseGen, UntrainedDecoder

METHODS: Dict[str, Type[Reconstructor]] = {
    cls.name: cls
    for cls in (ZeroFilled, SenseRecon, L1WaveletRecon, TotalVariationRecon,
                CSGM, SignFlip, ImageAdaptive, SparseGen, UntrainedDecoder, ConvDecoder, DeepImagePrior)
}


def _convert(field: dataclasses.Field, value):
    if not isinstance(value, str):
        return value
    kind = type(field.default)
    if kind is bool:
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"expected a boolean, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    return kind(value)


def make_method(name: str, **params) -> Reconstructor:
    """Build method ``name`` with hyper-parameters ``params`` (strings are converted to
    the field's type, so CLI ``KEY=VALUE`` pairs can be passed straight through)."""
    if name not in METHODS:
        raise MriGenpriorError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    cls = METHODS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in params.items():
        key = key.replace("-", "_")
        if key not in fields:
            raise MriGenpriorError(f"method {name} has no parameter {key!r}; it takes: {', '.join(fields) or 'none'}")
        try:
            kwargs[key] = _convert(fields[key], value)
        except ValueError as err:
            raise MriGenpriorError(f"{name} parameter {key}: {err}") from err
    return cls(**kwargs)


def describe(name: str) -> str:
    """``name: param=default, ...`` for help texts."""
    fields = dataclasses.fields(METHODS[name])
    return f"{name}: " + (", ".join(f"{f.name}={f.default}" for f in fields) or "(no parameters)")
