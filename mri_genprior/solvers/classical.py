"""Classical baselines: zero-filled, and regularised least squares solved by SigPy.

``SigpyRecon`` solves ``min_x ½‖A x − y‖² + R(x)`` for each slice with
``sigpy.app.LinearLeastSquares`` on the physics' own SigPy Linop (``physics.linop(b)``),
so it runs on any physics, Cartesian or not. The regulariser is a named part:

=============  =====================================  ==========================================
regularizer    R(x)                                    SigPy solver (as ``sigpy.mri.app`` uses)
=============  =====================================  ==========================================
``l2``         λ‖x‖² (``SenseRecon``)                  conjugate gradient
``wavelet``    λ‖Ψx‖₁, Ψ Daubechies-4 (``L1WaveletRecon``)  proximal gradient
``tv``         λ‖∇x‖₁ (``TotalVariationRecon``)        primal-dual hybrid gradient
=============  =====================================  ==========================================

Regularisation weights assume the k-space was normalised by
:func:`mri_genprior.physics.scale_factor` (image magnitudes of order 1).
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from .. import MriGenpriorError
from ..physics.operators import array_to_tensor, tensor_to_array
from .base import Method, Result


@dataclasses.dataclass
class ZeroFilled(Method):
    """The physics' zero-filled image (Cartesian SENSE: RSS of the inverse FFT of the zero-filled k-space)."""

    needs_maps = False

    def reconstruct(self, y, physics) -> Result:
        return Result(physics.zero_filled(y).cpu().numpy())


def _l2(shape, lamda):
    return {"lamda": lamda}


def _wavelet(shape, lamda):
    import sigpy as sp

    wavelet = sp.linop.Wavelet(shape, wave_name="db4")

    def g(x):
        with sp.get_device(x):
            return lamda * sp.get_array_module(x).sum(abs(wavelet(x))).item()

    return {"proxg": sp.prox.UnitaryTransform(sp.prox.L1Reg(wavelet.oshape, lamda), wavelet), "g": g}


def _tv(shape, lamda):
    import sigpy as sp

    gradient = sp.linop.FiniteDifference(shape)

    def g(x):
        with sp.get_device(x):
            return lamda * sp.get_array_module(x).sum(abs(x)).item()

    return {"proxg": sp.prox.L1Reg(gradient.oshape, lamda), "g": g, "G": gradient}


REGULARIZERS = {"l2": _l2, "wavelet": _wavelet, "tv": _tv}


@contextlib.contextmanager
def seeded_sigpy_random(seed: int, device):
    """Seed the global NumPy (or CuPy) RNG for the duration, then restore NumPy's.

    SigPy's power iteration (``sigpy.app.MaxEig``, which sets the step size of the
    wavelet and TV solvers) starts from that global RNG; unseeded, the same call gave
    results differing by up to 1e-3 between runs.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    if device.type == "cuda":
        import cupy

        cupy.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@dataclasses.dataclass
class SigpyRecon(Method):
    """``min_x ½‖A x − y‖² + R(x)`` per slice with ``sigpy.app.LinearLeastSquares`` (see the module docstring)."""

    regularizer: str = "wavelet"
    lamda: float = 1e-5
    max_iter: int = 100

    def __post_init__(self):
        if self.regularizer not in REGULARIZERS:
            raise MriGenpriorError(f"has no regularizer {self.regularizer!r}; choose from {', '.join(REGULARIZERS)}")

    def reconstruct(self, y, physics) -> Result:
        import sigpy as sp

        out = []
        for b in range(y.shape[0]):
            linop = physics.linop(b)
            yb = tensor_to_array(y[b])
            with sp.get_device(yb), seeded_sigpy_random(b, y.device):
                terms = REGULARIZERS[self.regularizer](linop.ishape, self.lamda)
                app = sp.app.LinearLeastSquares(linop, yb, max_iter=self.max_iter, show_pbar=False, **terms)
                out.append(array_to_tensor(app.run().astype(sp.get_array_module(yb).complex64), y.device))
        return Result(np.stack([x.cpu().numpy() for x in out]))
