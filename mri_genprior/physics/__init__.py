"""MRI physics: the operator interface, the per-batch physics object, coil maps, grid and scale.

* :mod:`.operators`: :class:`Operator` (batched forward/adjoint with autograd), the SigPy
  bridge :class:`SigpyOperator`, centred FFTs.
* :mod:`.sense`: :class:`Physics`, the measurement model methods receive
  (:class:`SensePhysics` for Cartesian SENSE, :class:`CoilPhysics` for coil images,
  :class:`SigpyPhysics` for any SigPy Linop).
* :mod:`.coils`: coil maps (low-resolution or ESPIRiT) and SENSE coil combination.
* :mod:`.noise`: coil noise covariance from the k-space corners, prewhitening.
* :mod:`.preprocess`: readout-oversampling removal, crops, slice scaling, RSS.
"""

from .coils import (DEFAULT_MAPS, MAPS, coil_combine, coil_maps, espirit_maps, joint_maps, jsense_maps, lowres_maps,
                    resolve_maps, sigpy_device)
from .noise import missing_noise_power, noise_covariance, prewhiten_coils, whitening_factor
from .operators import Operator, SigpyOperator, complex_randn, fft2c, ifft2c, to_channels
from .preprocess import crop_or_pad, ifft2c_np, percentile_scale, remove_readout_oversampling, rss, scale_factor
from .sense import CoilPhysics, HybridSense, Physics, SensePhysics, SigpyPhysics, random_subset

__all__ = ["Operator", "SigpyOperator", "Physics", "SensePhysics", "CoilPhysics", "HybridSense", "SigpyPhysics", "complex_randn", "to_channels",
           "random_subset", "fft2c", "ifft2c", "DEFAULT_MAPS", "MAPS", "coil_combine", "coil_maps", "espirit_maps", "joint_maps", "jsense_maps", "lowres_maps", "resolve_maps",
           "sigpy_device", "crop_or_pad", "ifft2c_np", "percentile_scale", "remove_readout_oversampling", "rss", "scale_factor",
           "missing_noise_power", "noise_covariance", "prewhiten_coils", "whitening_factor"]
