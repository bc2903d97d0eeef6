"""Classical baselines: zero-filled RSS and SigPy's SENSE, L1-wavelet and TV apps.

Each slice is solved with the corresponding ``sigpy.mri.app`` on the requested device.
Regularisation weights assume the k-space was normalised by
:func:`mri_genprior.physics.scale_factor` (image magnitudes of order 1). SigPy's
L1-wavelet prox soft-thresholds a redundant (non-unitary) db4 transform, which leaves
wavelet-shaped texture in the background at large ``lamda``; the default is small.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from ..physics import ifft2c_np, rss, sigpy_device
from .base import Reconstructor


@dataclasses.dataclass
class ZeroFilled(Reconstructor):
    """Root-sum-of-squares of the inverse FFT of the zero-filled k-space."""

    name = "zero-filled"
    needs_maps = False

    def reconstruct(self, y, mps, weights, device):
        return rss(ifft2c_np(y), axis=1).astype(np.complex64)


@dataclasses.dataclass
class _SigpyApp(Reconstructor):
    """Runs ``sigpy.mri.app.<app>(y, mps, lamda, weights=..., max_iter=...)`` per slice."""

    app: ClassVar[str] = ""
    lamda: float = 0.0
    max_iter: int = 100

    def reconstruct(self, y, mps, weights, device):
        import sigpy as sp
        import sigpy.mri as mr

        dev = sigpy_device(device)
        app_class = getattr(mr.app, self.app)
        out = np.empty((y.shape[0],) + y.shape[-2:], dtype=np.complex64)
        for b in range(y.shape[0]):
            yb, mb, wb = (sp.to_device(a, dev) for a in (y[b], mps[b], weights[b]))
            app = app_class(yb, mb, lamda=self.lamda, weights=wb, max_iter=self.max_iter,
                            device=dev, show_pbar=False)
            out[b] = sp.to_device(app.run(), sp.cpu_device)
        return out


@dataclasses.dataclass
class SenseRecon(_SigpyApp):
    """CG-SENSE: min_x ||A x - y||² + lamda ||x||² (``sigpy.mri.app.SenseRecon``)."""

    name = "sense"
    app = "SenseRecon"
    lamda: float = 0.001
    max_iter: int = 30


@dataclasses.dataclass
class L1WaveletRecon(_SigpyApp):
    """min_x ||A x - y||² / 2 + lamda ||Ψ x||₁, Ψ Daubechies-4 wavelets (``L1WaveletRecon``)."""

    name = "l1-wavelet"
    app = "L1WaveletRecon"
    lamda: float = 1e-5
    max_iter: int = 100


@dataclasses.dataclass
class TotalVariationRecon(_SigpyApp):
    """min_x ||A x - y||² / 2 + lamda ||∇x||₁ (``sigpy.mri.app.TotalVariationRecon``)."""

    name = "tv"
    app = "TotalVariationRecon"
    lamda: float = 0.02
    max_iter: int = 100
