"""Deep-prior candidates measured against TV on the real brain and not adopted: SSIM, PSNR, seconds.

The development brain (as in ``benchmarks/real_data.py``: fastMRI random masks, 4× with
centre fraction 0.08 and 8× with 0.04, fastMRI's metrics against the RSS reference).

``tv-penalty``: ConvDecoder at its defaults with an anisotropic TV penalty on its image,
``‖A x − y‖² + 2 s λ ‖∇x‖₁``, λ the one TV's own cross-validation chooses for the slice
(so ``s = 1`` is TV's objective with a decoder's image), for each scale ``s``.

``average``: the weighted mean ``w · zs-ssl + (1 − w) · c`` of the zs-ssl image and a
classical one (tv, l1-wavelet), for w = 0.25, 0.5, 0.75: whether their errors are
independent enough for an average to beat both. Example::

    OMP_NUM_THREADS=1 python benchmarks/deep_prior_candidates.py tv-penalty --scales 1 10 100
    OMP_NUM_THREADS=1 python benchmarks/deep_prior_candidates.py average
"""

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mri_genprior.convert import wrap_kspace
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.priors.networks import gradient
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_volume
from mri_genprior.solvers import make_method
from mri_genprior.solvers.base import Method

REAL = Path(__file__).resolve().parents[1] / "tests/data/brain_8coil_fully_sampled/kspace.npy"
SETTINGS = ((4, 0.08), (8, 0.04))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV ``Σ |∂_h x| + |∂_w x|`` of complex images ``(B, H, W)`` (circular
    differences, as SigPy's ``FiniteDifference`` and zs-ssl's TV layer), per image ``(B,)``."""
    return gradient(x).abs().sum((0, -2, -1))


class Penalised:
    """A physics whose data misfit carries ``weight · TV(x)`` (everything else delegated)."""

    def __init__(self, physics, weight: float):
        self.physics, self.weight = physics, weight

    def __getattr__(self, name):
        return getattr(self.physics, name)

    def select(self, index):
        return Penalised(self.physics.select(index), self.weight)

    def misfit(self, y, held=None):
        data = self.physics.misfit(y, held)

        def misfit(x):
            train, val = data(x)
            return train + self.weight * total_variation(x), val
        return misfit


@dataclasses.dataclass
class DecoderWithTv(Method):
    """ConvDecoder with TV's cross-validated λ, times ``scale``, as a TV penalty."""

    scale: float = 1.0
    name = "convdecoder+tv"

    def reconstruct(self, y, physics):
        lamda = make_method("tv").reconstruct(y, physics).diagnostics[0]["lamda"]
        return make_method("convdecoder").reconstruct(y, Penalised(physics, 2 * self.scale * lamda))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidate", choices=("tv-penalty", "average"))
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        file = wrap_kspace(np.load(REAL), Path(tmp) / "brain_8coil.h5", reference=True)
        with open_volume(file) as volume:
            target = volume.read_target()
        print("| candidate | accel | SSIM | PSNR | seconds |\n|---|---|---|---|---|")
        for accel, fraction in SETTINGS:
            options = ReconOptions(MaskSpec("random", accel, fraction), device="cpu", progress=False)

            def row(label, recon, seconds=None):
                m = volume_metrics(target, recon)
                shown = "" if seconds is None else f"{seconds:.0f}"
                print(f"| {label} | {accel}x | {m['SSIM']:.3f} | {m['PSNR']:.2f} | {shown} |", flush=True)

            if args.candidate == "tv-penalty":
                for scale in args.scales:
                    start = time.perf_counter()
                    recon = reconstruct_volume(file, DecoderWithTv(scale), options)[0]
                    row(f"convdecoder + TV penalty, {scale:g} × TV's λ", recon, time.perf_counter() - start)
            else:
                images = {name: reconstruct_volume(file, make_method(name), options)[0]
                          for name in ("zs-ssl", "tv", "l1-wavelet")}
                for w in (0.25, 0.5, 0.75):
                    for other in ("tv", "l1-wavelet"):
                        row(f"{w:g} · zs-ssl + {1 - w:g} · {other}", w * images["zs-ssl"] + (1 - w) * images[other])


if __name__ == "__main__":
    main()
