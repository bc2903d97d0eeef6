"""Synthetic fastMRI-format multi-coil data from real anatomy shipped with nilearn.

The anatomy is the MNI152 (ICBM 2009a) 1 mm T1 template bundled inside the nilearn
wheel — no download. Each slice becomes a complex image (template magnitude times a
smooth random phase), is placed in a 2× oversampled readout field of view, multiplied
by simulated birdcage coil sensitivities (``sigpy.mri.birdcage_maps``), Fourier
transformed (centred, orthonormal) and corrupted by complex Gaussian noise. The
reference ``reconstruction_rss`` is computed from the noisy fully sampled k-space as
fastMRI does: RSS of the coil images, centre-cropped to the recon size.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..io import make_header_xml
from ..writers.fastmri import write_kspace_file
from ..physics import crop_or_pad, ifft2c_np, rss

# Axial planes of the 1 mm template with a large brain cross-section.
AXIAL_RANGE = (50, 140)


def anatomy_slices(indices: Sequence[int], size: Tuple[int, int]) -> np.ndarray:
    """Axial MNI152 T1 slices ``(len(indices), h, w)`` float32, max-normalised to 1.

    ``indices`` are axial plane numbers of the 1 mm template (0..188); the in-plane
    image (197 × 233 mm) is padded to a square and resampled to ``size``.
    """
    from nilearn.datasets import load_mni152_template
    from scipy.ndimage import zoom

    volume = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float32)
    out = []
    for z in indices:
        plane = np.rot90(volume[:, :, int(z)])  # anterior up, as radiologists view it
        side = max(plane.shape)
        plane = crop_or_pad(plane, (side, side))
        out.append(zoom(plane, (size[0] / side, size[1] / side), order=1))
    stack = np.clip(np.stack(out), 0, None)
    return (stack / stack.max()).astype(np.float32)


def smooth_phase(shape: Tuple[int, int], rng: np.random.Generator, strength: float = np.pi / 2) -> np.ndarray:
    """A random low-order polynomial phase map ``(h, w)`` in radians."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    terms = np.stack([np.ones_like(xx), xx, yy, xx * yy, xx ** 2, yy ** 2])
    return strength * np.tensordot(rng.uniform(-1, 1, len(terms)), terms, axes=1).astype(np.float32)


def synthesize_kspace(images: np.ndarray, coils: int, noise: float, rng: np.random.Generator,
                      oversample: int = 2) -> np.ndarray:
    """Multi-coil k-space ``(S, coils, oversample*h, w)`` complex64 of complex ``images`` ``(S, h, w)``."""
    import sigpy as sp
    import sigpy.mri as mr

    s, h, w = images.shape
    full = (oversample * h, w)
    mps = mr.birdcage_maps((coils,) + full, r=1.2).astype(np.complex64) if coils > 1 else np.ones((1,) + full,
                                                                                                 np.complex64)
    padded = crop_or_pad(images, full)
    kspace = sp.fft(mps[None] * padded[:, None], axes=(-2, -1)).astype(np.complex64)
    sigma = noise * np.sqrt(np.mean(np.abs(kspace) ** 2))
    kspace += (sigma / np.sqrt(2) * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))
               ).astype(np.complex64)
    return kspace


def write_synthetic_file(path: Path, plane_indices: Sequence[int], size: Tuple[int, int] = (64, 64),
                         coils: int = 8, noise: float = 0.01, seed: int = 0) -> Path:
    """Write one fastMRI-format multi-coil brain file (see the module docstring).

    The k-space is ``(len(plane_indices), coils, 2h, w)``; the header declares encoded
    size ``(2h, w, 1)`` and recon size ``(h, w, 1)``; ``reconstruction_rss`` is ``(S, h, w)``.
    """
    rng = np.random.default_rng(seed)
    anatomy = anatomy_slices(plane_indices, size)
    images = anatomy * np.exp(1j * smooth_phase(size, rng))[None]
    kspace = synthesize_kspace(images.astype(np.complex64), coils, noise, rng)
    target = crop_or_pad(rss(ifft2c_np(kspace), axis=1), size).astype(np.float32)
    h, w = size
    header = make_header_xml((2 * h, w, 1), (h, w, 1), pe_center=w // 2, pe_max=w - 1)
    attrs = {"acquisition": "AXT1", "patient_id": f"synthetic-{seed}", "max": float(target.max()),
             "norm": float(np.linalg.norm(target)), "source": "MNI152 2009a template (nilearn), synthetic coils"}
    return write_kspace_file(path, kspace if coils > 1 else kspace[:, 0], header, attrs, target=target)


def write_synthetic_dataset(out_dir: Path, num_files: int = 2, slices: int = 4, size: Tuple[int, int] = (64, 64),
                            coils: int = 8, noise: float = 0.01, seed: int = 0,
                            planes: Tuple[int, int] = AXIAL_RANGE, prefix: str = "synth_brain") -> List[Path]:
    """Write ``num_files`` files ``{prefix}_{i:03d}.h5`` whose slices tile the axial ``planes`` range.

    Files take disjoint, interleaved planes, so distinct files never share a slice
    (use disjoint ``planes`` ranges to keep training and held-out data apart).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_planes = np.linspace(planes[0], planes[1] - 1, num_files * slices).round().astype(int)
    return [
        write_synthetic_file(out_dir / f"{prefix}_{i:03d}.h5", all_planes[i::num_files], size, coils, noise, seed + i)
        for i in range(num_files)
    ]
