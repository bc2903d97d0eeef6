"""A fused data misfit for Cartesian sampling, computed on the sampled columns only.

Iterative fits spend every step in ``‖√W · F_c v − y‖²`` (``F_c`` the centred orthonormal
FFT, :func:`~mri_genprior.physics.fft2c`, ``v`` the coil images ``(B, C, H, W)``). Written
with autograd it costs two FFT shifts each way, a dozen full-size temporaries, and
transforms of the k-space columns that are never measured. Here it is computed in the
*uncentred* k-space order: ``F_c v = P (φ ⊙ F v)`` with ``F`` the plain FFT, ``P`` the
``fftshift`` permutation and ``φ`` a unit-modulus phase (the image-domain ``ifftshift``
as a modulation), so, because ``P`` and ``|φ| = 1`` preserve norms,

    ‖√W ⊙ F_c v − y‖² = ‖m ⊙ F v − ỹ‖²,   m = P⁻¹√W,   ỹ = φ̄ ⊙ P⁻¹ y,

with ``m`` and ``ỹ`` made once per fit. The 2-D FFT is separable: the FFT along the
columns' axis (W) is taken for every row, the one along the readout (H) only for the
columns that hold a measured sample (a quarter of them at 4×). The gradient is
``2 Fᴴ (m ⊙ r)`` (masked to the training samples), the same two steps backwards,
written by hand (:class:`_Misfit`). On the real 8-coil brain (230×180, 4×) a forward +
backward takes about half the time of the autograd expression on 2 CPU cores
(benchmarks/untrained_overhead.py reports the effect on a whole fit step).
"""

from __future__ import annotations

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

    Calling it with coil images ``v`` ``(B, C, H, W)`` returns ``(train, val)``: ``(B,)``
    squared residual norms outside ``held`` (differentiable in ``v``) and inside it
    (detached; None without ``held``), equal to those of the autograd expression.
    """

    def __init__(self, sqrt_weights: torch.Tensor, y: torch.Tensor, held: Optional[torch.Tensor] = None):
        def uncentred(t):
            return torch.fft.ifftshift(t, dim=FFT_DIMS)

        mask = uncentred(sqrt_weights.to(torch.float32))
        self.columns = (mask > 0).flatten(0, -2).any(0).nonzero().squeeze(1)
        self.width = y.shape[-1]
        self.mask = mask[..., self.columns]
        y = fft_shift_phase(tuple(y.shape[-2:]), y.device).conj() * uncentred(y)
        self.y = y[..., self.columns]
        self.offset = squared_norms(y) - squared_norms(self.y)  # y off the sampled columns (normally 0)
        self.train = None if held is None else uncentred((~held).to(torch.float32))[..., self.columns]
        self.held = None if held is None else uncentred(held.to(torch.float32))[..., self.columns]
        self.grad_weight = self.mask if held is None else self.mask * self.train

    def __call__(self, coil_images: torch.Tensor):
        return _Misfit.apply(coil_images, self)


class _Misfit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, plan: CartesianMisfit):
        rows = torch.fft.fft(v, dim=-1, norm="ortho")[..., plan.columns]
        residual = torch.fft.fft(rows, dim=-2, norm="ortho").mul_(plan.mask).sub_(plan.y)
        power = torch.view_as_real(residual).square().sum(dim=(1, -1))  # (B, H, columns)
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
        kspace[..., plan.columns] = torch.fft.ifft(residual * scale, dim=-2, norm="ortho")
        return torch.fft.ifft(kspace, dim=-1, norm="ortho"), None
