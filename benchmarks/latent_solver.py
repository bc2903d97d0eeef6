"""Latent-solver throughput: batched solve vs one slice at a time, and where the time goes.

Prints measured figures (no assertions). Example::

    python benchmarks/latent_solver.py --size 128 --coils 8 --batch 8 --steps 50
"""

import argparse
import time

import numpy as np
import sigpy.mri as mr
import torch

from mri_genprior.physics import SensePhysics, SigpyOperator
from mri_genprior.priors.networks import DCGANGenerator
from mri_genprior.recon import resolve_device
from mri_genprior.solvers.latent import FitOptions, fit


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    n, c, b = args.size, args.coils, args.batch
    mps = mr.birdcage_maps((c, n, n)).astype(np.complex64)
    mask = (np.random.default_rng(0).random(n) < 0.25).astype(np.float32)
    weights = np.broadcast_to(mask, (n, n)).copy()
    gen = DCGANGenerator(latent_dim=64, image_size=n, channels=2, width=16).to(device)
    opts = FitOptions(steps=args.steps, lr=0.01)

    def batch_op(k):
        return SensePhysics(torch.from_numpy(np.stack([mps] * k)).to(device),
                       torch.from_numpy(np.stack([weights] * k)).to(device))

    y = torch.randn(b, c, n, n, dtype=torch.complex64, device=device)
    z0 = torch.randn(b, 64, device=device)
    t_batch = timed(lambda: fit(batch_op(b), y, gen, z0, opts, (n, n)), device)
    op1 = batch_op(1)
    t_loop = timed(lambda: [fit(op1, y[i:i + 1], gen, z0[i:i + 1], opts, (n, n)) for i in range(b)], device)
    print(f"device {device}; {b} slices {n}x{n}, {c} coils, {args.steps} steps")
    print(f"batched solve: {b * args.steps / t_batch:.1f} slice-iterations/s; "
          f"per-slice loop: {b * args.steps / t_loop:.1f}; speed-up {t_loop / t_batch:.2f}x")

    # share of one iteration: generator (forward+backward) vs operator (forward+adjoint)
    x = torch.randn(b, n, n, dtype=torch.complex64, device=device, requires_grad=True)
    op = batch_op(b)
    reps = 10
    t_op = timed(lambda: [(op.forward(x) - y).abs().pow(2).sum().backward() for _ in range(reps)], device)
    zg = z0.clone().requires_grad_(True)
    t_gen = timed(lambda: [gen(zg).pow(2).sum().backward() for _ in range(reps)], device)
    print(f"per iteration: operator {1e3 * t_op / reps:.1f} ms ({100 * t_op / (t_op + t_gen):.0f}%), "
          f"generator {1e3 * t_gen / reps:.1f} ms ({100 * t_gen / (t_op + t_gen):.0f}%)")

    if device.type == "cpu":  # the SigPy bridge runs item by item; compare it with the native operator
        bridged = SigpyOperator(mr.linop.Sense(mps, weights=weights))
        xb = x.detach().requires_grad_(True)
        t_br = timed(lambda: [(bridged.forward(xb) - y).abs().pow(2).sum().backward() for _ in range(reps)], device)
        print(f"SigPy bridge (forward+adjoint): {1e3 * t_br / reps:.1f} ms = {t_br / t_op:.2f}x the torch SensePhysics")

    for k in (1, 2, 4, 8, 16):
        yk, zk = y[:1].repeat(k, 1, 1, 1), z0[:1].repeat(k, 1)
        t = timed(lambda: fit(batch_op(k), yk, gen, zk, FitOptions(steps=10, lr=0.01), (n, n)), device)
        print(f"batch {k:3d}: {k * 10 / t:.1f} slice-iterations/s")


if __name__ == "__main__":
    main()
