"""Coil noise from the k-space edges: its covariance and the prewhitening it gives.

Thermal noise is the same at every k-space location, while an image's signal falls off
towards the edges; the measured samples in the k-space corners (the outer ``H/EDGE_ROWS``
readout rows at each edge, outer half of the phase-encode columns) are mostly noise.
Where they are not (high-SNR scans of sharp-edged objects: the synthetic data of
:mod:`mri_genprior.experiments.synthetic`), the coils' signal is coherent and one
eigenvector holds most of the corners' power; no noise estimate is made then
(:data:`MAX_LEADING_SHARE`). Real receive arrays have correlated, unequal coil
noise (the development brain: coil noise std 0.8–1.2 of the mean, correlations up to
0.3); prewhitening the coils, ``y ← L⁻¹ y`` with ``Ψ = L Lᴴ`` the noise covariance,
makes the least-squares data term the noise's log-likelihood (Pruessmann et al. 2001).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

EDGE_ROWS = 16       # the outer H/EDGE_ROWS readout rows at each edge hold the noise samples
SIGNAL_FACTOR = 3.0  # corner samples whose coil-summed power exceeds this × the median are signal
MAX_LEADING_SHARE = 0.5  # a covariance whose top eigenvalue holds more of its trace is signal, not noise


def edge_rows(height: int) -> int:
    """How many readout rows at each edge of a ``height``-row grid hold the noise samples."""
    return max(2, height // EDGE_ROWS)


def noise_covariance(kspace: np.ndarray, weights: np.ndarray) -> Optional[np.ndarray]:
    """Coil noise covariance ``(C, C)`` complex128 of one slice, or None if too few samples.

    Parameters
    ----------
    kspace : ``(C, H, W)`` measured k-space (zeros where not sampled).
    weights : ``(H, W)`` sampling weights (the mask); samples with weight 0 are ignored.

    Notes
    -----
    Uses the measured samples of the outer :func:`edge_rows` readout rows at each edge and
    the outer half of the columns, without the few whose coil-summed power exceeds
    ``SIGNAL_FACTOR`` × the median. Needs at least ``10 C`` samples, and no eigenvalue
    holding more than ``MAX_LEADING_SHARE`` of the trace (coherent signal).
    """
    c, h, w = kspace.shape
    e = edge_rows(h)
    rows, cols = np.r_[0:e, h - e:h], np.r_[0:w // 4, w - w // 4:w]
    corners = np.ix_(rows, cols)
    samples = kspace[:, corners[0], corners[1]][:, weights[corners] > 0]
    power = np.sum(np.abs(samples) ** 2, axis=0)
    measured = power > 0
    samples, power = samples[:, measured], power[measured]
    if samples.shape[1] < 10 * c:
        return None
    samples = samples[:, power <= SIGNAL_FACTOR * np.median(power)]
    samples = samples.astype(np.complex128)
    cov = samples @ samples.conj().T / samples.shape[1]
    if np.linalg.eigvalsh(cov)[-1] > MAX_LEADING_SHARE * np.trace(cov).real:
        return None
    return cov


def whitening_factor(kspace: np.ndarray, weights: np.ndarray) -> Optional[np.ndarray]:
    """Lower-triangular ``L`` ``(C, C)`` complex64 with ``L Lᴴ`` the noise covariance of
    ``kspace`` ``(C, H, W)`` normalised to a mean coil variance of 1, or None when it cannot
    be estimated (see :func:`noise_covariance`) or is singular (e.g. coils that are
    combinations of others). ``L⁻¹ y`` has white noise of the same mean power as ``y``."""
    cov = noise_covariance(kspace, weights)
    if cov is None:
        return None
    cov = cov / np.mean(np.real(np.diag(cov)))
    try:
        factor = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    if np.min(np.abs(np.diag(factor))) < 1e-3:
        return None
    return factor.astype(np.complex64)


def prewhiten_coils(kspace: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Whitened ``(C, H, W)`` complex64 k-space ``L⁻¹ kspace`` (coil mixing at every sample)."""
    c = kspace.shape[0]
    mixed = np.linalg.solve(factor.astype(np.complex128), kspace.reshape(c, -1))
    return mixed.reshape(kspace.shape).astype(np.complex64)
