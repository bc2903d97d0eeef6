"""The operator interface every measurement model implements, and the SigPy bridge.

An :class:`Operator` maps batched complex torch tensors ``(B, *ishape)`` to
``(B, *oshape)`` with :meth:`~Operator.forward`, and back with its adjoint
:meth:`~Operator.adjoint`; autograd flows through both, and the gradient of
``‖A x − y‖²`` is ``2 Aᴴ(A x − y)``. Every operator in the package implements it: the
SENSE physics, the SigPy bridge (:class:`SigpyOperator`, so *any* SigPy ``Linop``
plugs in), the Gaussian measurements of the landscape experiments and the tests'
operators. :meth:`~Operator.adjointness_test` checks the adjoint numerically.
"""

from __future__ import annotations

import abc
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import MriGenpriorError

FFT_DIMS = (-2, -1)


def fftc(x: torch.Tensor, dims: Tuple[int, ...]) -> torch.Tensor:
    """Centred orthonormal FFT of complex tensors over ``dims``."""
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims, norm="ortho"), dim=dims)


def ifftc(k: torch.Tensor, dims: Tuple[int, ...]) -> torch.Tensor:
    """Centred orthonormal inverse FFT over ``dims``."""
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=dims), dim=dims, norm="ortho"), dim=dims)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes (complex tensors)."""
    return fftc(x, FFT_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes."""
    return ifftc(k, FFT_DIMS)


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """Per-item squared norms ``(B,)`` of a ``(B, ...)`` tensor (real or complex)."""
    if x.is_complex():
        x = torch.view_as_real(x.resolve_conj())
    return x.square().flatten(1).sum(1)


def norms(x: torch.Tensor) -> torch.Tensor:
    """Per-item 2-norms ``(B,)`` of a ``(B, ...)`` tensor."""
    return squared_norms(x).sqrt()


def per_item(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(B,)`` values shaped to broadcast against ``like`` ``(B, ...)``."""
    return v.view((-1,) + (1,) * (like.ndim - 1))


def batched_cg(normal: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x: torch.Tensor,
               steps: int) -> torch.Tensor:
    """``steps`` conjugate-gradient iterations for ``normal(x) = b`` from ``x``, each item of
    the batch its own Hermitian positive (semi-)definite system (e.g. ``AᴴA + μI``)."""
    r = b - normal(x)
    p, rs = r, squared_norms(r)
    for _ in range(steps):
        q = normal(p)
        alpha = rs / (p.conj() * q).real.flatten(1).sum(1).clamp_min(1e-30)
        x, r = x + per_item(alpha, p) * p, r - per_item(alpha, q) * q
        rs_new = squared_norms(r)
        p, rs = r + per_item(rs_new / rs.clamp_min(1e-30), r) * p, rs_new
    return x


def residual_misfit(forward: Callable, y: torch.Tensor, held: Optional[torch.Tensor] = None) -> Callable:
    """The data misfit of measurements ``y`` ``(B, ...)`` under the model ``forward``.

    Returns ``losses(x) -> (train, val)``: per-item ``‖forward(x) − y‖²`` ``(B,)`` over the
    samples outside the boolean ``held`` (broadcast against ``y``; all samples when None),
    differentiable in ``x``, and the same over the samples in ``held`` (detached; None
    without ``held``).
    """
    keep = None if held is None else (~held).to(torch.float32)

    def losses(x: torch.Tensor):
        residual = forward(x) - y
        train = squared_norms(residual if keep is None else residual * keep)
        if held is None:
            return train, None
        with torch.no_grad():
            return train, squared_norms(residual * held)

    return losses


def complex_randn(shape: Sequence[int], rng: torch.Generator | Sequence[torch.Generator], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """Standard complex Gaussian tensor (drawn on the CPU from ``rng``, then moved).

    ``rng`` is one generator, or one per item of the leading axis (``len(rng) == shape[0]``):
    then item i's draws depend on ``rng[i]`` only, not on what else is in the batch.
    """
    if not isinstance(rng, torch.Generator):
        if len(rng) != shape[0]:
            raise ValueError(f"{len(rng)} generators for a batch of {shape[0]}")
        return torch.stack([complex_randn(shape[1:], g, device, dtype) for g in rng])
    real = torch.randn((2,) + tuple(shape), generator=rng, dtype=torch.float64)
    return torch.complex(real[0], real[1]).to(dtype).to(device)


def to_channels(x: torch.Tensor) -> torch.Tensor:
    """Complex ``(N, h, w)`` -> real ``(N, 2, h, w)``: real and imaginary parts, the layout
    of 2-channel priors (the inverse of :func:`to_complex` for C = 2)."""
    return torch.stack([x.real, x.imag], dim=1)


def to_complex(out: torch.Tensor) -> torch.Tensor:
    """Generator output ``(N, C, h, w)`` -> complex ``(N, h, w)``, or ``(N, C/2, h, w)`` for C > 2.

    C even: real and imaginary parts, interleaved (C > 2: one complex image per coil, for
    :class:`~mri_genprior.physics.CoilPhysics`). C = 1: a real (magnitude) image;
    :func:`mri_genprior.solvers.latent.fit` multiplies it by a phase map estimated from the
    calibration region (:meth:`mri_genprior.physics.Physics.calibration_phase`) — the phase
    model of magnitude-only priors.
    """
    if out.shape[1] % 2 == 0:
        x = torch.complex(out[:, 0::2], out[:, 1::2])
        return x[:, 0] if x.shape[1] == 1 else x
    if out.shape[1] != 1:
        raise ValueError(f"generator output must have 1 or an even number of channels, got {out.shape[1]}")
    return out[:, 0].to(torch.complex64)


class Operator(abc.ABC):
    """A linear operator on batched complex tensors (see the module docstring).

    Subclasses set ``ishape`` and ``oshape`` (per-item shapes, without the batch axis)
    and implement :meth:`forward` and :meth:`adjoint`; the linear algebra every solver
    needs (:meth:`norm_sq`, :meth:`adjointness_test`, the data :meth:`misfit`) comes with it.
    """

    ishape: Tuple[int, ...] = ()
    oshape: Tuple[int, ...] = ()
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.complex64

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, *ishape) -> (B, *oshape)``."""

    @abc.abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, *oshape) -> (B, *ishape)``."""

    def norm_sq(self, batch: int, rng: torch.Generator, iterations: int = 20) -> torch.Tensor:
        """``‖A‖²`` of each of ``batch`` items (the largest eigenvalue of AᴴA), ``(batch,)``,
        by ``iterations`` steps of power iteration from a random start drawn from ``rng``."""
        x = complex_randn((batch,) + tuple(self.ishape), rng, self.device)
        value = torch.ones(batch, device=self.device)
        for _ in range(iterations):
            x = self.adjoint(self.forward(x))
            value = norms(x)
            x = x / per_item(value.clamp_min(1e-30), x)
        return value

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def misfit(self, y: torch.Tensor, held: Optional[torch.Tensor] = None) -> Callable:
        """The data misfit of measurements ``y`` ``(B, *oshape)`` as a function of the image:
        :func:`residual_misfit` of :meth:`forward` (subclasses may compute it faster)."""
        return residual_misfit(self.forward, y, held)

    def check(self, t: torch.Tensor, shape: Tuple[int, ...], what: str) -> None:
        """Raise a :class:`~mri_genprior.MriGenpriorError` naming the operator if ``t`` is
        not ``(batch, *shape)``."""
        if tuple(t.shape[1:]) != tuple(shape):
            raise MriGenpriorError(f"{type(self).__name__}: expected {what} of shape (batch, "
                                   f"{', '.join(map(str, shape))}), got {tuple(t.shape)}")

    def adjointness_test(self, batch: int = 1, seed: int = 0) -> float:
        """Relative error ``|⟨A x, y⟩ − ⟨x, Aᴴ y⟩| / (‖A x‖ ‖y‖)`` for random complex ``x``, ``y``.

        A correct adjoint gives about 1e-7 in complex64 (rounding); a wrong one, order 1.
        """
        rng = torch.Generator().manual_seed(seed)
        x = complex_randn((batch,) + tuple(self.ishape), rng, self.device, self.dtype)
        y = complex_randn((batch,) + tuple(self.oshape), rng, self.device, self.dtype)
        with torch.no_grad():
            ax, ahy = self.forward(x), self.adjoint(y)
        lhs, rhs = torch.vdot(ax.flatten(), y.flatten()), torch.vdot(x.flatten(), ahy.flatten())
        return float(abs(lhs - rhs) / (ax.norm() * y.norm()))


# -- the SigPy bridge -------------------------------------------------------------------------

GPU_EXTRA = 'pip install "mri_genprior[gpu]"'  # brings CuPy (cupy-cuda12x), SigPy's CUDA backend


def cupy():
    """The ``cupy`` module, which SigPy needs on CUDA; a one-line error naming the install
    extra where it is missing."""
    try:
        import cupy as module
    except ImportError as err:
        raise MriGenpriorError(f"SigPy on CUDA needs CuPy, which is not installed: {GPU_EXTRA} "
                               "(or pip install cupy-cuda13x for CUDA 13)") from err
    return module


def tensor_to_array(x: torch.Tensor):
    """Share a torch tensor's memory as a NumPy (CPU) or CuPy (CUDA) array."""
    x = x.detach().resolve_conj().contiguous()
    if x.is_cuda:
        return cupy().from_dlpack(x)
    return x.numpy()


def array_to_tensor(a, device: torch.device) -> torch.Tensor:
    """A NumPy or CuPy array as a torch tensor on ``device`` (shared memory where possible)."""
    if device.type == "cuda":
        return torch.from_dlpack(a)
    return torch.from_numpy(np.ascontiguousarray(a))


def _apply_linops(linops: Sequence, x: torch.Tensor) -> torch.Tensor:
    """Apply ``linops[b]`` (or the one shared Linop) to each item ``x[b]``."""
    import sigpy as sp

    arr = tensor_to_array(x)
    with sp.get_device(arr):
        out = [linops[b if len(linops) > 1 else 0](arr[b]) for b in range(arr.shape[0])]
        xp = sp.get_array_module(arr)
        dtype = xp.complex128 if arr.dtype == xp.complex128 else xp.complex64
        stacked = xp.stack(out).astype(dtype, copy=False)
    return array_to_tensor(stacked, x.device)


class _LinopFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, linops):
        ctx.linops = linops
        return _apply_linops(linops, x)

    @staticmethod
    def backward(ctx, grad):
        return _apply_linops([linop.H for linop in ctx.linops], grad), None


class SigpyOperator(Operator):
    """SigPy ``Linop``\\ s as a batched torch :class:`Operator` with autograd.

    Parameters
    ----------
    linops : one ``sigpy.linop.Linop`` shared by every batch item, or a sequence of
        them, one per item (all with the same ``ishape`` and ``oshape``). Their arrays
        must live on ``device`` (CPU: NumPy; CUDA: CuPy, through DLPack).
    device : where the tensors passed in live.

    Notes
    -----
    The backward pass (and :meth:`adjoint`) applies ``linop.H``. Items are applied one
    after another.
    """

    def __init__(self, linops, device: torch.device | str = "cpu"):
        self.linops = list(linops) if isinstance(linops, (list, tuple)) else [linops]
        shapes = {(tuple(op.ishape), tuple(op.oshape)) for op in self.linops}
        if len(shapes) != 1:
            raise MriGenpriorError(f"SigpyOperator: the Linops disagree in shape: {sorted(shapes)}")
        self.ishape, self.oshape = next(iter(shapes))
        self.device = torch.device(device)

    def _check_batch(self, t: torch.Tensor) -> None:
        if len(self.linops) > 1 and t.shape[0] != len(self.linops):
            raise MriGenpriorError(f"SigpyOperator: {len(self.linops)} Linops for a batch of {t.shape[0]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x, self.ishape, "input")
        self._check_batch(x)
        return _LinopFunction.apply(x, self.linops)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check(y, self.oshape, "measurements")
        self._check_batch(y)
        return _LinopFunction.apply(y, [op.H for op in self.linops])
