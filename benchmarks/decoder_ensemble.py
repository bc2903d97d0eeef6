"""The untrained decoders' ensemble and its shrinkage on the real brain at 8× under a hard mask.

The real 8-coil brain (``tests/data/brain_8coil_fully_sampled``) under the mask fastMRI
draws for the file name ``brain_mask_b.h5`` (8×, 7 calibration lines), jsense maps, Deep
Decoder with 300 steps: a single fit (seed 0), the plain mean of the default three fits
and that mean with the ensemble's shrinkage, against zero-filling (SSIM / PSNR, fastMRI
metrics against the fully sampled RSS). Exits 1 unless a single fit falls below
zero-filling's SSIM, the plain mean rises above it (by 0.005) and above the single fit
(by 0.02 SSIM, and in PSNR), and the shrinkage lifts the mean by 0.01 SSIM at most 0.3 dB
lower PSNR and 0.5 dB above zero-filling. The test suite checks the ensemble's arithmetic on
synthetic data (``tests/test_latent.py``). Example::

    python benchmarks/decoder_ensemble.py
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mri_genprior.convert import wrap_kspace
from mri_genprior.io import open_volume
from mri_genprior.metrics import volume_metrics
from mri_genprior.physics import crop_or_pad
from mri_genprior.recon import MaskSpec, ReconOptions, prepare_batch, reconstruct_volume, volume_mask
from mri_genprior.solvers import make_method

REAL = Path(__file__).resolve().parents[1] / "tests/data/brain_8coil_fully_sampled/kspace.npy"
SPEC = MaskSpec("random", 8, 0.04)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = wrap_kspace(np.load(REAL), Path(tmp) / "brain_mask_b.h5", reference=True)  # the name seeds the mask
        with open_volume(path) as volume:
            target = volume.read_target()
            mask, crop, _ = volume_mask(volume, SPEC)
            batch = prepare_batch(volume, [0], mask, crop, True, torch.device("cpu"), maps="jsense")

        def score(images, shrink=None):
            written = batch.physics.output(images, batch.y, shrink) * batch.scales[:, None, None]
            return volume_metrics(target, crop_or_pad(written, target.shape[-2:]))

        ensemble = make_method("deep-decoder", steps=300).reconstruct(batch.y, batch.physics)
        shrunk, plain = score(ensemble.images, ensemble.shrink), score(ensemble.images)
        single = score(make_method("deep-decoder", steps=300, ensemble=1).reconstruct(batch.y, batch.physics).images)
        zf = volume_metrics(target, reconstruct_volume(path, make_method("zero-filled"),
                                                       ReconOptions(SPEC, device="cpu", progress=False))[0])
    print("| run | SSIM | PSNR |\n|---|---|---|")
    for name, m in (("zero-filled", zf), ("single fit", single), ("mean of 3", plain), ("shrunk mean", shrunk)):
        print(f"| {name} | {m['SSIM']:.3f} | {m['PSNR']:.2f} |")
    checks = {"a single fit is below zero-filling": single["SSIM"] < zf["SSIM"],
              "the mean is above zero-filling": zf["SSIM"] < plain["SSIM"] - 0.005,
              "the mean is above the single fit": plain["SSIM"] > single["SSIM"] + 0.02
              and plain["PSNR"] > single["PSNR"],
              "the shrinkage lifts the mean": shrunk["SSIM"] > plain["SSIM"] + 0.01
              and shrunk["PSNR"] > plain["PSNR"] - 0.3,
              "the shrunk mean is above zero-filling in PSNR": shrunk["PSNR"] > zf["PSNR"] + 0.5}
    failed = [name for name, ok in checks.items() if not ok]
    for name in failed:
        print("FAIL", name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
