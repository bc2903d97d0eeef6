"""Cost of the published MRI score priors at full size: seconds per network evaluation and per slice.

Random weights in the published full-size configurations (NCSNv2 ngf=128, NCSN++ nf=128),
one image per evaluation at the published sizes, on the device given. Prints seconds per
network evaluation (median of ``--repeats``), the seconds per slice of the published
sampler's evaluations (``annealed``: 3465, ``pc``: 4000; the samplers' own arithmetic is
small beside the network), and the peak memory (CUDA: allocated; CPU: process peak RSS).

    python benchmarks/published_priors.py                 # CPU, this process's threads
    python benchmarks/published_priors.py --device cuda
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from mri_genprior.priors.ncsnpp import NCSNpp
from mri_genprior.priors.ncsnv2 import NCSNv2Deepest
from mri_genprior.solvers import METHODS

CASES = [("ncsnv2 (Jalal et al.), brain 384²", lambda: NCSNv2Deepest(ngf=128), 2, 384, "annealed"),
         ("ncsnv2 (Jalal et al.), knee 320²", lambda: NCSNv2Deepest(ngf=128), 2, 320, "annealed"),
         ("ncsnpp (Chung & Ye), knee 320²", lambda: NCSNpp(nf=128), 1, 320, "pc")]


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads")
    print("| prior | parameters | s / NFE | published sampler | NFE | s / slice | peak memory GB |")
    print("|---|---|---|---|---|---|---|")
    for name, build, channels, size, method in CASES:
        model = build().to(device).eval()
        x = torch.rand(1, channels, size, size, device=device)
        sigma = torch.full((1,), 0.5, device=device)
        times = []
        with torch.no_grad():
            for _ in range(args.repeats + 1):  # the first call warms up
                start = time.perf_counter()
                model.denoise(x, sigma)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times[1:])
        nfe = METHODS[method].cls(**{**METHODS[method].defaults, "prior": "-"}).nfe
        count = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {count / 1e6:.1f} M | {seconds:.2f} | {method} | {nfe} | {seconds * nfe:.0f} | "
              f"{peak_memory_gb(device):.1f} |", flush=True)
        del model


if __name__ == "__main__":
    main()
