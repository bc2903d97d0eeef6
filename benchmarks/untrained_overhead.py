"""Untrained priors: seconds per step of the full fit, and the share spent outside the network.

On the real 8-coil brain (230×180, 4×), times ``--steps`` steps of
:func:`mri_genprior.solvers.latent.fit` with the method's network and physics, then the
same number of steps of the network alone (forward, a loss on its output, backward,
Adam step), alternating the two ``--rounds`` times (the machines are noisy): the share
outside the network is the median over the rounds of each round's (fit − network) / fit,
the per-step cost of everything else (physics, FFTs, hold-out bookkeeping,
early-stopping copies). It also times the data term alone
(forward + backward of ``‖A x − y‖²`` with a 5 % hold-out) as the fit computes it
(the physics' fused ``misfit``) against the plain autograd expression
(:func:`~mri_genprior.physics.operators.residual_misfit`), alternating the same way.
Prints measured figures, no assertions::

    python benchmarks/untrained_overhead.py --method convdecoder --steps 50 --rounds 5
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mri_genprior.convert import wrap_kspace
from mri_genprior.io import open_volume
from mri_genprior.physics.operators import residual_misfit
from mri_genprior.recon import MaskSpec, prepare_batch, resolve_device, volume_mask
from mri_genprior.solvers import make_method
from mri_genprior.solvers.latent import FitOptions, fit, holdout_mask

REAL = Path(__file__).resolve().parents[1] / "tests/data/brain_8coil_fully_sampled/kspace.npy"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="convdecoder")
    p.add_argument("--steps", type=int, default=50, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of fit and network alone")
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

    def full_fit(steps):
        fit(op, y, net, z, FitOptions(**{**options.__dict__, "steps": steps}), batch.physics.image_shape)

    held = holdout_mask(y, 0.05, torch.Generator().manual_seed(0))
    x = torch.zeros((1,) + tuple(op.ishape), dtype=torch.complex64, device=device, requires_grad=True)

    def data_term(misfit):
        def run(steps):
            for _ in range(steps):
                misfit(x)[0].sum().backward()
        return run

    fused, plain = data_term(op.misfit(y, held)), data_term(residual_misfit(op.forward, y, held))
    rounds = [(timed(full_fit), timed(network_only), timed(fused), timed(plain)) for _ in range(args.rounds)]
    full, alone, fused_ms, plain_ms = (float(np.median(column)) for column in zip(*rounds))
    outside = float(np.median([max(f - a, 0) / f for f, a, _, _ in rounds]))
    print(f"device {device}, {args.method} (form {method.form}), "
          f"{sum(p.numel() for p in net.parameters())} weights, median of {args.rounds} rounds of {args.steps} steps")
    print(f"fit: {1000 * full:.1f} ms/step; network forward+backward+Adam alone: {1000 * alone:.1f} ms/step")
    print(f"data term alone: {1000 * fused_ms:.2f} ms fused vs {1000 * plain_ms:.2f} ms autograd expression "
          f"({plain_ms / fused_ms:.2f}×)")
    print(f"outside the network: {100 * outside:.1f} % of each step (median over rounds); "
          f"{method.ensemble} fits of {method.steps} steps ≈ {full * method.steps * method.ensemble:.0f} s per slice")


if __name__ == "__main__":
    main()
