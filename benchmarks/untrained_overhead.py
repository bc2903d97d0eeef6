"""Untrained priors: seconds per step of the full fit, and the share spent outside the network.

On the real 8-coil brain (230×180, 4×), times ``--steps`` steps of
:func:`mri_genprior.solvers.latent.fit` with the method's network and physics, then the
same number of steps of the network alone (forward, a loss on its output, backward,
Adam step). The difference is the per-step cost of everything else (physics, FFTs,
hold-out bookkeeping, early-stopping copies). Prints measured figures, no assertions::

    python benchmarks/untrained_overhead.py --method convdecoder --steps 100
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mri_genprior.convert import wrap_kspace
from mri_genprior.io import open_volume
from mri_genprior.recon import MaskSpec, prepare_batch, resolve_device, volume_mask
from mri_genprior.solvers import make_method
from mri_genprior.solvers.latent import FitOptions, fit

REAL = Path(__file__).resolve().parents[1] / "tests/data/brain_8coil_fully_sampled/kspace.npy"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="convdecoder")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    device = resolve_device(args.device)
    method = make_method(args.method, **dict(item.split("=", 1) for item in args.param))
    with tempfile.TemporaryDirectory() as tmp:
        path = wrap_kspace(np.load(REAL), Path(tmp) / "brain_8coil.h5", reference=True)
        with open_volume(path) as volume:
            mask, crop, _ = volume_mask(volume, MaskSpec("random", 4, 0.08))
            batch = prepare_batch(volume, [0], mask, crop, method.needs_maps, device)
    y = batch.y
    op = method.operator(y, batch.physics)
    net = method.make_network(op, 0)
    z = net.fixed_input(torch.Generator().manual_seed(0)).to(device)
    options = FitOptions(steps=args.steps, lr=0.0, net_lr=method.lr, holdout=method.holdout, patience=args.steps)

    def timed(run):
        run(1)  # warm-up (allocations, cuDNN autotuning)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(args.steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / args.steps

    def network_only(steps):
        adam = torch.optim.Adam(net.parameters(), lr=method.lr)
        for _ in range(steps):
            adam.zero_grad(set_to_none=True)
            net(z).pow(2).mean().backward()
            adam.step()

    full = timed(lambda steps: fit(op, y, net, z, FitOptions(**{**options.__dict__, "steps": steps}),
                                   batch.physics.image_shape))
    alone = timed(network_only)
    print(f"device {device}, {args.method} (form {method.form}), "
          f"{sum(p.numel() for p in net.parameters())} weights, {args.steps} steps")
    print(f"fit: {1000 * full:.1f} ms/step; network forward+backward+Adam alone: {1000 * alone:.1f} ms/step")
    print(f"outside the network: {100 * max(full - alone, 0) / full:.1f} % of each step; "
          f"{method.steps} steps ≈ {full * method.steps:.0f} s per slice")


if __name__ == "__main__":
    main()
