"""Throughput of ``reconstruct`` over many volumes: one process against a local Dask cluster.

Prints volumes per minute for the in-process path and for local Dask clusters of 1 and 2
workers (cluster start-up excluded; each run writes into its own folder), and the
ratios, measured in one run. Every process reconstructs one volume before the clock
starts (imports and numba compilation are a one-off cost per worker process). Assumes a
2-core machine for the per-worker thread split.
"""

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from mri_genprior.recon import MaskSpec
from mri_genprior.scaleout import Job, local_cluster, reconstruct_all, reconstruct_one
from mri_genprior.experiments.synthetic import write_synthetic_dataset


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--volumes", type=int, default=6)
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--method", default="l1-wavelet")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = write_synthetic_dataset(tmp / "data", args.volumes, args.slices, (args.size, args.size), seed=3)
        base = Job(args.method, {}, MaskSpec("random", 4, 0.25), "cpu")
        rates = {}
        for label, workers in (("in-process", 0), ("1 worker", 1), ("2 workers", 2)):
            if workers:  # time the work, not the cluster start-up
                from distributed import Client

                with local_cluster(workers) as cluster, Client(cluster) as client:
                    # warm-up: imports and numba compilation happen once per worker process
                    job = dataclasses.replace(base, threads=max(1, 2 // workers))
                    client.run(reconstruct_one, str(files[0]), str(tmp / f"warm{workers}"), job)
                    start = time.perf_counter()
                    report = reconstruct_all(files, tmp / label, job, scheduler=cluster.scheduler_address,
                                             progress=False)
                    seconds = time.perf_counter() - start
            else:
                job = base
                reconstruct_one(str(files[0]), str(tmp / "warm0"), job)
                start = time.perf_counter()
                report = reconstruct_all(files, tmp / label, job, progress=False)
                seconds = time.perf_counter() - start
            assert len(report.written) == len(files) and not report.failed
            rates[label] = 60 * len(files) / seconds
            print(f"{label:11s}: {rates[label]:6.2f} volumes/min ({seconds:.1f} s for {len(files)} volumes of "
                  f"{args.slices} slices, {args.method})")
        print(f"ratio 2 workers / 1 worker: {rates['2 workers'] / rates['1 worker']:.2f}; "
              f"2 workers / in-process: {rates['2 workers'] / rates['in-process']:.2f}")


if __name__ == "__main__":
    main()
