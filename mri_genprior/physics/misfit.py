"""A fused data misfit for Cartesian sampling, computed on the sampled columns only.

Iterative fits spend every step in ``‖√W · F_c v − y‖²`` (``F_c`` the centred orthonormal
FFT, :func:`~mri_genprior.physics.fft2c`, ``v = S x`` the coil images ``(B, C, H, W)`` of
an image ``x`` and maps ``S``, or the coil images themselves for maps-free fits). Written
with autograd it costs two FFT shifts each way, a dozen full-size temporaries, and
transforms of the k-space columns that are never measured. Here it is computed in the
*uncentred* k-space order: ``F_c v = P (φ ⊙ F v)`` with ``F`` the plain FFT, ``P`` the
``fftshift`` permutation and ``φ`` a unit-modulus phase (the image-domain ``ifftshift``
as a modulation), so, because ``P`` and ``|φ| = 1`` preserve norms,

    ‖√W ⊙ F_c v − y‖² = ‖m ⊙ F v − ỹ‖²,   m = P⁻¹√W,   ỹ = φ̄ ⊙ P⁻¹ y,

with ``m`` and ``ỹ`` made once per fit (``m`` also carries the orthonormal scale
``1/√(HW)``, so the transforms run unnormalised). The 2-D FFT is separable: the FFT along
the columns' axis (W) is taken for every row, the one along the readout (H) only for the
columns that hold a measured sample (a quarter of them at 4×). The gradient is
``2 Sᴴ Fᴴ (m ⊙ r)`` (masked to the training samples): the same two steps backwards, then
the coil sum with conjugate maps made once, all written by hand (:class:`_Misfit`). On
the real 8-coil brain (230×180, 4×) a forward + backward takes about half the time of the
autograd expression on 2 CPU cores (benchmarks/untrained_overhead.py reports the effect
on a whole fit step).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .operators import FFT_DIMS, squared_norms


def fft_shift_phase(shape: Tuple[int, int], device: torch.device | str) -> torch.Tensor:
    """Unit-modulus ``φ`` ``(H, W)`` with ``fft2(ifftshift(v)) = φ ⊙ fft2(v)`` for every ``v``."""
    impulse = torch.zeros(shape, dtype=torch.complex64, device=device)
    impulse[0, 0] = 1
    return torch.fft.fft2(torch.fft.ifftshift(impulse, dim=FFT_DIMS))


class CartesianMisfit:
    """Per-item ``‖√W ⊙ F_c v − y‖²`` over training and held-out samples, fused.

    Parameters
    ----------
    sqrt_weights : ``(B or 1, 1, H, W)`` real square roots of the sampling weights.
    y : ``(B, C, H, W)`` complex measurements (centred k-space).
    held : boolean, broadcastable to ``(B, 1, H, W)``: the held-out samples (all coils of a
        location together), or None.
    maps : ``(B or 1, C, H, W)`` complex coil sensitivities ``S``, or None when the unknowns
        are the coil images themselves.

    Calling it with the unknowns (images ``x`` ``(B, H, W)`` with ``maps``, coil images ``v``
    ``(B, C, H, W)`` without) returns ``(train, val)``: ``(B,)`` squared residual norms
    outside ``held`` (differentiable) and inside it (detached; None without ``held``),
    equal to those of the autograd expression.
    """

    def __init__(self, sqrt_weights: torch.Tensor, y: torch.Tensor, held: Optional[torch.Tensor] = None,
                 maps: Optional[torch.Tensor] = None):
        def uncentred(t):
            return torch.fft.ifftshift(t, dim=FFT_DIMS)

        mask = uncentred(sqrt_weights.to(torch.float32))
        self.columns = (mask > 0).flatten(0, -2).any(0).nonzero().squeeze(1)
        self.width = y.shape[-1]
        self.mask = mask[..., self.columns] / math.sqrt(y.shape[-2] * y.shape[-1])  # F_c = F_unnormalised / √(HW)
        y = fft_shift_phase(tuple(y.shape[-2:]), y.device).conj() * uncentred(y)
        self.y = y[..., self.columns]
        self.offset = squared_norms(y) - squared_norms(self.y)  # y off the sampled columns (normally 0)
        self.train = None if held is None else uncentred((~held).to(torch.float32))[..., self.columns]
        self.held = None if held is None else uncentred(held.to(torch.float32))[..., self.columns]
        self.grad_weight = self.mask if held is None else self.mask * self.train
        self.maps = maps
        self.maps_conj = None if maps is None else maps.conj().resolve_conj()

    def __call__(self, unknowns: torch.Tensor):
        return _Misfit.apply(unknowns, self)


class _Misfit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, plan: CartesianMisfit):
        v = x if plan.maps is None else plan.maps * x[:, None]
        rows = torch.fft.fft(v, dim=-1)[..., plan.columns]
        residual = torch.fft.fft(rows, dim=-2).mul_(plan.mask).sub_(plan.y)
        power = (residual.real.square() + residual.imag.square()).sum(1)  # (B, H, columns)
        train = (power if plan.train is None else power * plan.train[:, 0]).flatten(1).sum(1) + plan.offset
        val = None if plan.held is None else (power * plan.held[:, 0]).flatten(1).sum(1)
        ctx.save_for_backward(residual)
        ctx.plan = plan
        ctx.mark_non_differentiable(*([] if val is None else [val]))
        return train, val

    @staticmethod
    def backward(ctx, grad_train, _grad_val):
        (residual,) = ctx.saved_tensors
        plan = ctx.plan
        scale = plan.grad_weight * (2 * grad_train).view(-1, 1, 1, 1)
        kspace = residual.new_zeros(residual.shape[:-1] + (plan.width,))
        kspace[..., plan.columns] = torch.fft.ifft(residual * scale, dim=-2, norm="forward")  # unnormalised
        grad = torch.fft.ifft(kspace, dim=-1, norm="forward")
        return (grad if plan.maps is None else grad.mul_(plan.maps_conj).sum(1)), None
