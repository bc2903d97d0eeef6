"""Reconstruct many volumes: one task per volume, in this process or on a Dask cluster.

* ``workers=0`` (default) and no scheduler: volumes run one after another here.
* ``workers=N``: an in-process ``dask.distributed.LocalCluster`` of N worker processes,
  one thread each (a worker reconstructs one volume at a time); on a machine with
  several GPUs, worker i uses ``cuda:(i mod GPUs)``.
* ``scheduler=ADDRESS``: an existing cluster (dask-jobqueue, Kubernetes, dask-cuda, ...).

Resume and faults: volumes whose output exists are skipped; outputs are written
atomically, so a killed task or run never leaves a partial file, and Dask reruns the
tasks of a lost worker elsewhere. A failed volume is reported with its error and the
others go on. Dask is an optional dependency (``pip install "mri_genprior[dask]"``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm.auto import tqdm

from . import MriGenpriorError
from .io import remove_stale_temporaries, writable_dir
from .readers import VolumeRef, volumes_of
from .recon import ReconOptions, reconstruct_file
from .solvers import make_method
from .writers import output_files, output_path


@dataclasses.dataclass(frozen=True)
class Job:
    """What to do with every volume (picklable, sent to the workers)."""

    method: str
    params: Dict[str, object]
    options: ReconOptions = ReconOptions()
    threads: Optional[int] = None  # torch threads per task (None: leave as is)


@dataclasses.dataclass
class Report:
    """Outcome of :func:`reconstruct_all`: written outputs, skipped inputs, ``(name, error)`` failures."""

    written: List[Path] = dataclasses.field(default_factory=list)
    skipped: List[Path] = dataclasses.field(default_factory=list)
    failed: List[Tuple[str, str]] = dataclasses.field(default_factory=list)


def _worker_device(device: Optional[str]) -> Optional[str]:
    """Spread LocalCluster workers over the GPUs (worker names are 0, 1, ...)."""
    import torch

    if device not in (None, "auto", "cuda") or torch.cuda.device_count() < 2:
        return device
    try:
        from distributed import get_worker

        index = int(get_worker().name)
    except (ImportError, ValueError, TypeError):
        return device
    return f"cuda:{index % torch.cuda.device_count()}"


def reconstruct_one(volume: VolumeRef | str, out_dir: str, job: Job, progress: bool = False) -> str:
    """Reconstruct one volume (a :class:`~mri_genprior.readers.VolumeRef` or a file path) into
    ``out_dir`` (the task every worker runs); returns the output path."""
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    volume = volume if isinstance(volume, VolumeRef) else VolumeRef(Path(volume))
    method = make_method(job.method, **job.params)
    options = dataclasses.replace(job.options, device=_worker_device(job.options.device), progress=progress)
    return str(reconstruct_file(volume.path, out_dir, method, options, volume=volume))


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text and isinstance(err, MriGenpriorError) else \
        f"internal error {type(err).__name__}: {text[0] if text else ''}"


def reconstruct_all(files: Sequence[Path], out_dir: Path, job: Job, *, workers: int = 0,
                    scheduler: Optional[str] = None, overwrite: bool = False, progress: bool = True) -> Report:
    """Reconstruct every volume of ``files`` into ``out_dir`` (see the module docstring); an
    ISMRMRD file with several contrasts, repetitions or sets is one volume each
    (:func:`~mri_genprior.readers.volumes_of`), and ``Report`` names volumes by their outputs' source."""
    make_method(job.method, **job.params)  # bad settings fail here, once, not in every task
    out_dir = writable_dir(out_dir)
    report = Report()
    volumes, todo = [], []
    for f in files:
        try:
            volumes.extend(volumes_of(f))
        except MriGenpriorError as err:
            report.failed.append((Path(f).name, _one_line(err)))
    for volume in volumes:
        done = not overwrite and output_path(job.options.fmt, out_dir, volume.source).exists()
        (report.skipped.append(volume.source) if done else todo.append(volume))
    if todo and (workers > 1 or scheduler):
        _run_dask(todo, out_dir, job, report, workers=workers, scheduler=scheduler, progress=progress)
    else:
        for volume in tqdm(todo, desc="volumes", unit="vol", disable=not progress or len(todo) < 2):
            try:
                report.written.append(Path(reconstruct_one(volume, str(out_dir), job, progress and len(todo) == 1)))
            except Exception as err:  # noqa: BLE001 - reported per volume, the others go on
                report.failed.append((volume.source.name, _one_line(err)))
    for volume in volumes:  # every task is done: temporaries of killed writers are stale
        for path in output_files(job.options.fmt, out_dir, volume.source):
            remove_stale_temporaries(path)
    return report


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` single-threaded processes that share the cores.

    Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which made this package's
    NumPy code (FFTs of a few hundred kB) run 2× slower in a worker than in-process; it
    is left out here, and the BLAS/OpenMP thread counts are set to cores / workers.
    """
    import dask
    from distributed import LocalCluster

    threads = max(1, (os.cpu_count() or 1) // workers)
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def _run_dask(todo: List[VolumeRef], out_dir: Path, job: Job, report: Report, *, workers: int,
              scheduler: Optional[str], progress: bool) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError as err:
        raise MriGenpriorError('--workers/--scheduler need Dask: pip install "mri_genprior[dask]"') from err
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = local_cluster(workers)
        client = Client(cluster)
        job = dataclasses.replace(job, threads=max(1, (os.cpu_count() or 1) // workers))
    try:
        futures = {client.submit(reconstruct_one, volume, str(out_dir), job, key=f"reconstruct-{volume.source.name}",
                                 pure=False): volume for volume in todo}
        for future in tqdm(as_completed(futures), total=len(futures), desc="volumes", unit="vol",
                           disable=not progress):
            if future.status == "finished":
                report.written.append(Path(future.result()))
            else:
                report.failed.append((futures[future].source.name, _one_line(future.exception())))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
