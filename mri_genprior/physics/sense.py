"""The physics object: the measurement model of a batch of slices, passed to every method.

The pipeline builds one :class:`Physics` per batch of slices and hands it to
``method.reconstruct(y, physics)``; methods never build operators themselves. A physics
object is an :class:`~mri_genprior.physics.operators.Operator` from images
``(B, H, W)`` to measurements ``(B, *oshape)`` that also knows what methods need beyond
``A``: its SigPy form per slice (for SigPy apps), a sub-batch (restarts, per-slice
solves), the phase of the calibration data (magnitude priors), the zero-filled image
and the output convention (how an image becomes the magnitude that is written).

* :class:`SensePhysics`: Cartesian multi-coil SENSE ``A = √W · F · S`` in torch, equal to
  ``sigpy.mri.linop.Sense(mps, weights=W)`` (the tests check it).
* :class:`SigpyPhysics`: any SigPy ``Linop`` per slice, e.g. a non-Cartesian
  ``sigpy.mri.linop.Sense(mps, coord=coord)``.
"""

from __future__ import annotations

import abc
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .. import MriGenpriorError
from ..masks import calibration_width as width_of, centred
from .coils import sigpy_device
from .misfit import CartesianMisfit
from .noise import edge_rows
from .operators import Operator, SigpyOperator, fft2c, fftc, ifft2c, ifftc, tensor_to_array


READOUT_SEGMENTS = 8  # cross-validation holds out a line's readout in this many runs (see validation_folds)


def _deal(candidates: torch.Tensor, draw: torch.Tensor, folds: int) -> torch.Tensor:
    """Split boolean ``candidates`` into ``folds`` disjoint masks by uniform ``draw`` (same shape)."""
    fold = (draw * folds).long().clamp(max=folds - 1)
    return torch.stack([candidates & (fold == k) for k in range(folds)])


def random_subset(mask: torch.Tensor, fraction: float, rng: torch.Generator) -> torch.Tensor:
    """Each ``True`` of the boolean ``mask`` kept with probability ``fraction`` (one uniform
    draw per element from ``rng``, on the CPU, so the subset does not depend on the device)."""
    return mask & (torch.rand(mask.shape, generator=rng) < fraction).to(mask.device)


class Physics(Operator):
    """Interface of the per-batch measurement model (see the module docstring).

    ``ishape`` is the image grid ``(H, W)``; ``batch`` the number of slices ``B``.
    """

    batch: int = 1

    @property
    def image_shape(self) -> Tuple[int, int]:
        """The image grid ``(H, W)``."""
        return tuple(self.ishape[-2:])

    def coil_images(self, coils: int) -> "Physics":
        """The physics of the same sampling acting on ``coils`` coil images (maps-free methods)."""
        raise MriGenpriorError(f"{type(self).__name__}: maps-free (coil-image) methods need Cartesian "
                               "multi-coil k-space (SensePhysics)")

    @abc.abstractmethod
    def linop(self, index: int):
        """The SigPy ``Linop`` of slice ``index`` (arrays on this physics' device)."""

    @abc.abstractmethod
    def select(self, index: Sequence[int]) -> "Physics":
        """The physics of the slices ``index`` (repeats allowed: restarts)."""

    @abc.abstractmethod
    def calibration_phase(self, y: torch.Tensor) -> torch.Tensor:
        """Phase ``(B, H, W)`` of the image of the calibration data (magnitude priors)."""

    @abc.abstractmethod
    def zero_filled(self, y: torch.Tensor) -> torch.Tensor:
        """The zero-filled image ``(B, H, W)`` of measurements ``y``."""

    def validation_folds(self, y: torch.Tensor, folds: int, rng: torch.Generator) -> torch.Tensor:
        """``folds`` disjoint sets of measured samples for cross-validation, as a boolean
        ``(folds, B, 1, *oshape[1:])`` tensor (all coils of a location together). Here:
        the measured samples (non-zero in the first coil) dealt at random."""
        measured = y[:, :1] != 0
        return _deal(measured, torch.rand(measured.shape, generator=rng).to(y.device), folds)

    def validation_weights(self) -> torch.Tensor:
        """Weights ``(1, *oshape[1:])`` (all coils of a location alike) of each held-out
        sample's squared error in a cross-validation error. Here uniform: this physics
        knows no k-space geometry."""
        return torch.ones((1,) + tuple(self.oshape[1:]), device=self.device)

    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Estimated k-space noise standard deviation per real component, ``(B,)``."""
        raise MriGenpriorError(f"{type(self).__name__} cannot estimate the k-space noise: give it as a number")

    @property
    def has_coil_kspace(self) -> bool:
        """Whether :meth:`coil_kspace` exists here (Cartesian SENSE with maps, or coil images)."""
        return False

    def require_coil_kspace(self) -> None:
        """Raise unless this physics has :meth:`coil_kspace` (Cartesian SENSE with maps, or coil images)."""
        if not self.has_coil_kspace:
            raise MriGenpriorError(f"{type(self).__name__}: ensemble shrinkage needs coil k-space (Cartesian "
                                   "SENSE physics with maps, or coil images); pass -p shrink=false")

    def coil_kspace(self, images: torch.Tensor) -> torch.Tensor:
        """The coil k-space ``(B, C, H, W)`` of ``images`` before sampling."""
        self.require_coil_kspace()
        raise NotImplementedError

    def output(self, images: np.ndarray, y: torch.Tensor, shrink: Optional[np.ndarray] = None) -> np.ndarray:
        """The output convention: the magnitude ``(B, H, W)`` float32 written for ``images``
        ``(B, H, W)`` reconstructed from ``y``. Here ``|images|``; ``shrink`` (factors on the
        unmeasured coil k-space, see :meth:`SensePhysics.output`) is refused."""
        if shrink is not None:
            self.require_coil_kspace()
        return np.abs(images).astype(np.float32)


class SensePhysics(Physics):
    """Cartesian multi-coil SENSE physics of a batch.

    Parameters
    ----------
    maps : ``(B, C, H, W)`` complex sensitivity maps (B may be 1 and broadcast), or None
        for a physics that only serves methods that need no maps (zero-filled); or
        ``(B, C, H, M·W)``: M sets of maps side by side (soft-SENSE, Uecker et al. 2014),
        whose unknown is the M sets' images side by side, ``(B, H, M·W)``, and whose coil
        images are ``Σ_m S_m x_m``.
    weights : ``(B, H, W)`` or ``(1, H, W)`` real sampling weights (the mask). As in
        ``sigpy.mri.linop.Sense``, their square root is applied.
    calibration_width : side of the centred, fully sampled calibration square; None
        reads it from the weights (:func:`mri_genprior.masks.calibration_width`).
    coil_mix : ``(B, C, C)`` (B may be 1) factor ``L`` of the coil noise covariance the
        measurements were prewhitened with (``y = L⁻¹ k``, :mod:`~mri_genprior.physics.noise`),
        or None. Coil images are mixed back (``L ·``) before every RSS, so written images
        are RSS images of the coils as acquired, as fastMRI's references are.
    floor : ``(B,)`` (B may be 1) noise power per pixel that the unmeasured samples of a
        fully sampled acquisition would add to the RSS image
        (:func:`~mri_genprior.physics.noise.missing_noise_power`), or None: added under the
        square root of every written RSS (:meth:`output`).

    Notes
    -----
    ``forward``: ``(B, H, M·W)`` image (M = 1: ``(B, H, W)``) -> ``(B, C, H, W)`` k-space;
    ``adjoint`` the reverse. The written magnitude is the RSS of the data-consistent coil
    images (:meth:`output`), ``(B, H, W)`` whatever M.
    """

    unknown = "image"  # what forward takes, as shape errors name it

    def __init__(self, maps: Optional[torch.Tensor], weights: torch.Tensor, calibration_width: Optional[int] = None,
                 coil_mix: Optional[torch.Tensor] = None, floor: Optional[torch.Tensor] = None):

        if weights.ndim != 3 or (maps is not None and (maps.ndim != 4 or maps.shape[-2] != weights.shape[-2]
                                                       or maps.shape[-1] % weights.shape[-1])):
            raise MriGenpriorError(
                f"SensePhysics: maps (B, C, H, W) and weights (B, H, W) must agree, got "
                f"{None if maps is None else tuple(maps.shape)} and {tuple(weights.shape)}")
        self.maps = None if maps is None else maps.to(torch.complex64)
        self.coil_mix = None if coil_mix is None else coil_mix.to(torch.complex64)
        self.floor = None if floor is None else floor.to(torch.float32)
        self.weights = weights.to(torch.float32)
        self.sqrt_weights = self.weights.sqrt()[:, None]
        self.device = weights.device
        self.batch = max(weights.shape[0], 1 if maps is None else maps.shape[0])
        self.sets = 1 if maps is None else maps.shape[-1] // weights.shape[-1]
        self.ishape = tuple(weights.shape[-2:]) if maps is None else tuple(maps.shape[-2:])
        self.oshape = (0 if maps is None else maps.shape[1],) + tuple(weights.shape[-2:])
        self.calibration_width = (width_of(weights[0].cpu().numpy()) if calibration_width is None
                                  else int(calibration_width))

    @classmethod
    def from_numpy(cls, maps: Optional[np.ndarray], weights: np.ndarray, device: torch.device | str,
                   calibration_width: Optional[int] = None, coil_mix: Optional[np.ndarray] = None,
                   floor: Optional[np.ndarray] = None) -> "SensePhysics":
        """Build from NumPy maps ``(B, C, H, W)`` (or None), weights ``(B, H, W)``, ``coil_mix``
        ``(B, C, C)`` and ``floor`` ``(B,)`` (or None) on ``device``."""
        def tensor(a):
            return None if a is None else torch.as_tensor(np.asarray(a), device=device)

        return cls(tensor(maps), tensor(weights), calibration_width, tensor(coil_mix), tensor(floor))

    def _need_maps(self) -> torch.Tensor:
        if self.maps is None:
            raise MriGenpriorError("SensePhysics: this physics has no coil maps (it was built for a method "
                                   "that needs none)")
        return self.maps

    def _spread(self, x: torch.Tensor) -> torch.Tensor:
        """Image ``(B, H, M·W)`` -> coil images ``Σ_m S_m x_m`` ``(B, C, H, W)``."""
        spread = self._need_maps() * x[:, None]
        return spread if self.sets == 1 else spread.unflatten(-1, (self.sets, -1)).sum(-2)

    def _gather(self, coil_images: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`_spread`: ``Σ_c conj(S_{m,c}) · v_c`` for every set m."""
        if self.sets > 1:
            coil_images = coil_images.repeat(1, 1, 1, self.sets)
        return torch.sum(self._need_maps().conj() * coil_images, dim=1)

    @property
    def kspace_shape(self) -> Tuple[int, int]:
        """The k-space grid ``(H, W)`` (the image grid but for several sets of maps)."""
        return tuple(self.oshape[-2:])

    def _misfit_maps(self) -> Optional[torch.Tensor]:
        """The maps :meth:`misfit` spreads the unknowns with (None: the unknowns are coil images)."""
        return self._need_maps()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x, self.ishape, self.unknown)
        return self.sqrt_weights * fft2c(self._spread(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check(y, self.oshape, "k-space")
        return self._gather(ifft2c(self.sqrt_weights * y))

    def misfit(self, y: torch.Tensor, held: Optional[torch.Tensor] = None):
        """:meth:`Operator.misfit`, fused (:class:`~mri_genprior.physics.misfit.CartesianMisfit`):
        one 2-D FFT each way per evaluation, its readout pass on the sampled columns only
        (several sets of maps: :meth:`Operator.misfit`)."""
        if self.sets > 1:
            return super().misfit(y, held)
        self.check(y, self.oshape, "k-space")
        fused = CartesianMisfit(self.sqrt_weights, y, held, self._misfit_maps())

        def losses(x: torch.Tensor):
            self.check(x, self.ishape, self.unknown)
            return fused(x)

        return losses

    def linop(self, index: int):
        import sigpy as sp
        import sigpy.mri as mr

        maps = self._need_maps()
        maps = tensor_to_array(maps[index if maps.shape[0] > 1 else 0])
        with sigpy_device(self.device):
            weights = tensor_to_array(self.weights[index if self.weights.shape[0] > 1 else 0])
            if self.sets == 1:
                return mr.linop.Sense(maps, weights=weights)
            return sp.linop.Hstack([mr.linop.Sense(part, weights=weights) for part in
                                    sp.get_array_module(maps).split(maps, self.sets, axis=-1)], axis=1)

    def select(self, index: Sequence[int]) -> "SensePhysics":
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)

        def pick(t):
            return t if t is None or t.shape[0] == 1 else t[index]

        return SensePhysics(pick(self.maps), pick(self.weights), self.calibration_width, pick(self.coil_mix),
                            pick(self.floor))

    def calibration_phase(self, y: torch.Tensor) -> torch.Tensor:
        """Phase of the adjoint of the centre ``w × w`` k-space block, ``w = max(4, calibration_width)``."""
        width = max(4, self.calibration_width)
        h, w = self.kspace_shape
        window = torch.zeros(h, w, device=y.device)
        window[centred(h, width), centred(w, width)] = 1
        return torch.angle(self.adjoint(y * window))

    def zero_filled(self, y: torch.Tensor) -> torch.Tensor:
        """Root sum of squares of the coil images ``F⁻¹ y`` (the fastMRI zero-filled baseline),
        coils mixed back by ``coil_mix``."""
        return self._rss(y).to(torch.complex64)

    def _rss(self, kspace: torch.Tensor) -> torch.Tensor:
        """Real ``(B, H, W)`` RSS of the inverse FFT of coil ``kspace``, coils mixed back by ``coil_mix``."""
        return ifft2c(self._unwhiten(kspace)).abs().pow(2).sum(1).sqrt()

    def _unwhiten(self, kspace: torch.Tensor) -> torch.Tensor:
        """``coil_mix · kspace`` for ``(B, C, H, W)`` coil data (itself without ``coil_mix``)."""
        if self.coil_mix is None:
            return kspace
        return torch.einsum("bij,bjhw->bihw", self.coil_mix.expand(kspace.shape[0], -1, -1), kspace)

    def validation_folds(self, y: torch.Tensor, folds: int, rng: torch.Generator) -> torch.Tensor:
        """Cross-validation folds: the measured samples outside the calibration region, dealt
        at random into ``folds`` disjoint sets, in segments of a phase-encode line (each line
        cut into :data:`READOUT_SEGMENTS` runs of readout rows) when every readout row shares
        one column pattern (a 1-D mask), else single samples. Boolean ``(folds, B, 1, H, W)``.
        With nothing measured outside the calibration region, every measured sample is dealt.

        Whole held-out lines would open gaps beside the calibration region that the full
        problem does not have."""
        h, w = self.kspace_shape
        c = self.calibration_width
        sampled = (self.sqrt_weights[:, :1] > 0).expand(y.shape[0], 1, h, w)
        lines = self.one_dimensional
        outside = torch.ones(h, w, dtype=torch.bool, device=y.device)
        outside[slice(None) if lines else centred(h, c), centred(w, c)] = False
        if not bool((sampled & outside).any()):
            return super().validation_folds(y, folds, rng)
        draw = torch.rand((y.shape[0], 1, READOUT_SEGMENTS if lines else h, w), generator=rng).to(y.device)
        if lines:
            draw = draw.repeat_interleave(-(-h // READOUT_SEGMENTS), dim=2)[:, :, :h]
        return _deal(sampled & outside, draw.expand(y.shape[0], 1, h, w), folds)

    def validation_weights(self) -> torch.Tensor:
        """The distance ``(1, H, W)`` of each sample from the k-space centre as a fraction of
        the grid, ``√((kx/H)² + (ky/W)²)``: the error sums to the squared H^½ seminorm of the
        image's error, halfway between its squared norm (weight 1) and its gradient's (|k|²).
        Unweighted, the few high-energy samples beside the calibration region outweigh the
        rest, and the cross-validated λ comes out too small where the image's edges and
        background weigh in SSIM."""
        h, w = self.kspace_shape
        kx = (torch.arange(h, device=self.device, dtype=torch.float32) - h // 2) / h
        ky = (torch.arange(w, device=self.device, dtype=torch.float32) - w // 2) / w
        return (kx[:, None] ** 2 + ky[None] ** 2).sqrt()[None]

    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Noise std per real component ``(B,)`` from the k-space corners that hold almost no
        signal: the measured samples of the outer ``H/16`` readout rows at each edge, all coils.
        For complex Gaussian noise ``|n|²`` is exponential with median ``2σ² ln 2``, so
        ``σ = √(median |y|² / (2 ln 2))``; the median ignores the few signal-bearing samples."""
        e = edge_rows(self.kspace_shape[0])
        edge = torch.cat([y[..., :e, :], y[..., -e:, :]], dim=-2)
        sampled = torch.cat([self.sqrt_weights[..., :e, :], self.sqrt_weights[..., -e:, :]], dim=-2) > 0
        power = torch.where(sampled, edge.abs() ** 2, torch.nan).flatten(1)
        return (power.nanmedian(dim=1).values / (2 * np.log(2))).sqrt()

    @property
    def has_coil_kspace(self) -> bool:
        return self.maps is not None

    def coil_kspace(self, images: torch.Tensor) -> torch.Tensor:
        """``F S x``: the coil k-space ``(B, C, H, W)`` of ``images`` before sampling."""
        return fft2c(self._spread(images))

    def output(self, images: np.ndarray, y: torch.Tensor, shrink: Optional[np.ndarray] = None) -> np.ndarray:
        """The root sum of squares of the data-consistent coil images, as fastMRI makes its
        references: coil k-space ``F S x``, measured samples replaced by ``y``, RSS of the
        inverse FFT, with ``floor`` (the noise power the unmeasured samples would have
        added) under the square root. ``shrink`` ``(B, C, H, W)`` in [0, 1] (or None)
        multiplies the coil k-space first, so it acts on the unmeasured samples only
        (ensemble shrinkage, :func:`mri_genprior.solvers.stages.ensemble_shrinkage`).
        Without maps: coil images ``(B, C, H, W)`` (maps-free methods) as
        :meth:`CoilPhysics.output`, and an image ``(B, H, W)`` (zero-filling's RSS) as ``|images|``."""
        if self.maps is None:
            if images.ndim == 4:
                return self.coil_images(images.shape[1]).output(images, y, shrink)
            return super().output(images, y, shrink)
        return self._consistent_rss(images, y, shrink)

    def coil_images(self, coils: int) -> "CoilPhysics":
        return CoilPhysics(self.weights, coils, self.calibration_width, self.coil_mix, self.floor)

    @property
    def one_dimensional(self) -> bool:
        """Whether every readout row is sampled alike (a 1-D mask along the phase encode)."""
        return bool((self.weights == self.weights[:, :1]).all())

    def hybrid(self) -> "HybridSense":
        """This physics in hybrid space (:class:`HybridSense`), for maps and a 1-D mask."""
        if self.maps is None or not self.one_dimensional or self.sets > 1:
            raise MriGenpriorError("SensePhysics.hybrid: needs one set of coil maps and a 1-D mask (every "
                                   "readout row sampled alike)")
        return HybridSense(self.maps, self.sqrt_weights[:, :, :1])

    def _consistent_rss(self, images: np.ndarray, y: torch.Tensor, shrink: Optional[np.ndarray] = None) -> np.ndarray:
        """RSS ``(B, H, W)`` float32 of the coil k-space :meth:`coil_kspace` ``(images)`` (times
        ``shrink``) with the measured samples set to ``y``, coils mixed back by ``coil_mix``,
        ``floor`` added to its square."""
        with torch.no_grad():
            kspace = self.coil_kspace(torch.as_tensor(images, device=self.device))
            if shrink is not None:
                kspace = kspace * torch.as_tensor(shrink, device=self.device)
            sampled = self.sqrt_weights > 0
            kspace = torch.where(sampled, y / torch.where(sampled, self.sqrt_weights, 1.0), kspace)
            rss = self._rss(kspace)
            if self.floor is not None:
                rss = (rss ** 2 + self.floor[:, None, None]).sqrt()
            return rss.cpu().numpy().astype(np.float32)


class HybridSense(Operator):
    """Cartesian SENSE with a 1-D mask in hybrid space: ``A x = √w · F_W (S x)``, for data
    whose readout is already inverse Fourier transformed (:meth:`data`: ``d = F_H⁻¹ y``,
    equal to ``√w · F_W (S x)`` row by row because the mask is the same on every readout
    row). The image rows then decouple: :meth:`rows` is the exact physics of a band of
    them, the whole problem's restriction (the strips of
    :class:`~mri_genprior.solvers.scan_specific.ZeroShotSSL`).

    Parameters
    ----------
    maps : ``(B, C, R, W)`` complex coil maps of R image rows (B may be 1 and broadcast).
    sqrt_weights : ``(B, 1, 1, W)`` square root of the sampling weights along the phase encode.
    """

    unknown = "image rows"

    def __init__(self, maps: torch.Tensor, sqrt_weights: torch.Tensor):
        self.maps, self.sqrt_weights = maps, sqrt_weights
        self.device = maps.device
        self.ishape = tuple(maps.shape[-2:])
        self.oshape = tuple(maps.shape[1:])

    @staticmethod
    def data(y: torch.Tensor) -> torch.Tensor:
        """Hybrid-space data ``F_H⁻¹ y`` of k-space ``y`` ``(B, C, H, W)``."""
        return ifftc(y, (-2,))

    def rows(self, start: int, stop: int) -> "HybridSense":
        """The physics of image rows ``start … stop − 1``."""
        return HybridSense(self.maps[..., start:stop, :], self.sqrt_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x, self.ishape, self.unknown)
        return self.sqrt_weights * fftc(self.maps * x[:, None], (-1,))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check(y, self.oshape, "hybrid-space data")
        return torch.sum(self.maps.conj() * ifftc(self.sqrt_weights * y, (-1,)), dim=1)


class CoilPhysics(SensePhysics):
    """Cartesian sampling of all C coil images, ``A X = √W · F X``, for maps-free methods whose
    unknowns are the coil images ``(B, C, H, W)`` (the original form of the untrained decoders,
    Heckel & Hand 2019, Darestani & Heckel 2021). No coil maps are estimated; the written
    magnitude is the RSS of the data-consistent coil images.
    """

    unknown = "coil images"
    @property
    def has_coil_kspace(self) -> bool:
        return True

    def __init__(self, weights: torch.Tensor, coils: int, calibration_width: Optional[int] = None,
                 coil_mix: Optional[torch.Tensor] = None, floor: Optional[torch.Tensor] = None):
        super().__init__(None, weights, calibration_width, coil_mix, floor)
        self.coils = int(coils)
        self.ishape = (self.coils,) + tuple(weights.shape[-2:])
        self.oshape = self.ishape

    def _spread(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _gather(self, coil_images: torch.Tensor) -> torch.Tensor:
        return coil_images

    def _misfit_maps(self) -> Optional[torch.Tensor]:
        return None

    def linop(self, index: int):
        import sigpy as sp

        with sigpy_device(self.device):
            weights = tensor_to_array(self.weights[index if self.weights.shape[0] > 1 else 0].sqrt())
            return sp.linop.Multiply(self.ishape, weights) * sp.linop.FFT(self.ishape, axes=(-2, -1))

    def select(self, index: Sequence[int]) -> "CoilPhysics":
        picked = super().select(index)
        return CoilPhysics(picked.weights, self.coils, self.calibration_width, picked.coil_mix, picked.floor)

    def calibration_phase(self, y: torch.Tensor) -> torch.Tensor:
        raise MriGenpriorError("CoilPhysics: coil images have no single phase (use a 2C-channel network)")

    def output(self, images: np.ndarray, y: torch.Tensor, shrink: Optional[np.ndarray] = None) -> np.ndarray:
        """RSS of the coil ``images`` ``(B, C, H, W)`` (k-space times ``shrink``) with the measured
        samples restored."""
        return self._consistent_rss(images, y, shrink)


class SigpyPhysics(SigpyOperator, Physics):
    """Any SigPy ``Linop``\\ s with image input ``(H, W)`` as the physics of a batch, one per slice.

    Parameters
    ----------
    linops : one Linop per slice, e.g. ``sigpy.mri.linop.Sense(mps, coord=coord)`` for
        non-Cartesian k-space (arrays on ``device``).
    device : where tensors live.

    Notes
    -----
    With no calibration region known, :meth:`calibration_phase` is the phase of
    ``Aᴴ y`` and :meth:`zero_filled` is ``|Aᴴ y|`` (no density compensation).
    """

    def __init__(self, linops: Sequence, device: torch.device | str = "cpu"):
        super().__init__(list(linops), device)
        if len(self.ishape) != 2:
            raise MriGenpriorError(f"SigpyPhysics: Linops must take (H, W) images, got ishape {self.ishape}")
        self.batch = len(self.linops)

    def linop(self, index: int):
        return self.linops[index]

    def select(self, index: Sequence[int]) -> "SigpyPhysics":
        return SigpyPhysics([self.linops[int(i)] for i in index], self.device)

    def calibration_phase(self, y: torch.Tensor) -> torch.Tensor:
        return torch.angle(self.adjoint(y))

    def zero_filled(self, y: torch.Tensor) -> torch.Tensor:
        return self.adjoint(y).abs().to(torch.complex64)
