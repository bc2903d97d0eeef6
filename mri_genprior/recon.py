"""Volume-level reconstruction: the pipeline used by the CLI and the Python API.

Inputs are files in any format :mod:`mri_genprior.readers` detects
(:func:`reconstruct_volume`, :func:`reconstruct_file`) or k-space arrays in memory
(:func:`reconstruct_kspace`); both go through the same :func:`reconstruct_opened`.
For each slice::

    k-space ─► (1-D or no file mask) readout-oversampling removal to reconSpace x
            ─► mask (the file's own, or a retrospective one), ``y = k * mask + 0.0``
            ─► scale by the 99th percentile of the zero-filled RSS image
            ─► prewhiten the coils (noise covariance from the k-space corners; ``prewhiten``)
            ─► coil maps (low-resolution from the calibration region, or ESPIRiT)
            ─► one SensePhysics per batch of slices (maps, mask, calibration, device)
            ─► method.reconstruct(y, physics) -> Result ─► the physics' output convention
               (RSS of the data-consistent coil images)
            ─► magnitude × scale ─► centre crop/pad to reconSpace (x, y)

The result is ``(slices, recon_x, recon_y)`` float32 in the units of
``reconstruction_rss``. :func:`reconstruct_batch` is the in-memory core: any method on
any physics (a non-Cartesian SigPy ``Sense`` too).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from . import MriGenpriorError, check_choice, masks
from .io import Header, Volume
from .physics import (DEFAULT_MAPS, MAPS, Physics, SensePhysics, coil_maps, crop_or_pad, missing_noise_power,
                      prewhiten_coils, remove_readout_oversampling, resolve_maps, scale_factor, whitening_factor)
from .progress import reporting
from .readers import VolumeRef, array_volume, open_input
from .solvers.base import Method, Result
from .writers import OUTPUT_FORMATS, write_output

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """How to undersample fully sampled files (ignored for files that carry a mask).

    ``seed=None`` uses fastMRI's per-file seed (the file name's character codes), so a
    file always gets the same mask. Inputs in other formats are seeded by the name of the
    fastMRI file they correspond to, ``<stem>.h5`` (the name of the submission file), so
    the same k-space gets the same mask in every format.
    """

    kind: str = "random"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    seed: Optional[int] = None

    def __post_init__(self):
        check_choice("unknown mask type", self.kind, masks.MASK_TYPES)
        masks.check_sampling(self.acceleration, self.center_fraction)


@dataclasses.dataclass(frozen=True)
class ReconOptions:
    """How a reconstruction job runs: everything but its input, its method and where it writes.

    The CLI, scale-out (:class:`~mri_genprior.scaleout.Job`), studies
    (:class:`~mri_genprior.experiments.study.StudySpec`) and the Python API all pass one.

    Attributes
    ----------
    mask : retrospective undersampling of fully sampled inputs (:class:`MaskSpec`).
    maps : coil-map estimate, one of :data:`mri_genprior.physics.MAPS`.
    prewhiten : whiten the coil noise (covariance from the k-space corners).
    noise_floor : add the unmeasured samples' noise power to the written RSS images.
    device : ``None``/``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:1"``, ...
    batch_size : slices solved together.
    fmt : output format of :func:`reconstruct_file`, one of :data:`mri_genprior.writers.OUTPUT_FORMATS`.
    progress : show progress bars.
    """

    mask: MaskSpec = MaskSpec()
    maps: str = DEFAULT_MAPS
    prewhiten: bool = True
    noise_floor: bool = True
    device: Optional[str] = None
    batch_size: int = 4
    fmt: str = "h5"
    progress: bool = True

    def __post_init__(self):
        if self.batch_size < 1:
            raise MriGenpriorError(f"batch size must be >= 1, got {self.batch_size}")
        check_choice("unknown coil-map estimate", self.maps, MAPS)
        check_choice("unknown output format", self.fmt, OUTPUT_FORMATS)



@dataclasses.dataclass
class SliceBatch:
    """Prepared inputs for a batch of B slices: scaled (and prewhitened) k-space ``y``
    ``(B, C, H, W)`` on the device, its physics, the per-slice scales that undo the
    normalisation, how many of the slices were prewhitened, and each slice's number of
    sets of coil maps (a batch holds as many as its slice with the most, the others' extra
    sets zero)."""

    y: torch.Tensor
    physics: Physics
    scales: np.ndarray
    whitened: int = 0
    map_sets: Tuple[int, ...] = ()


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" → CUDA if available, else CPU; anything else as torch parses it."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MriGenpriorError("CUDA device requested but torch.cuda.is_available() is False")
    return device


def volume_mask(volume: Volume, spec: MaskSpec) -> Tuple[np.ndarray, bool, str]:
    """The mask for ``volume``: ``(mask, crop_readout, source)``.

    A file mask is used as is (prospective data); otherwise a retrospective mask is
    sampled on the readout-cropped grid. ``crop_readout`` says whether readout
    oversampling can be removed before the solve (true unless the mask is 2-D on the
    oversampled grid).
    """
    if volume.mask is not None:
        return volume.mask, volume.mask.ndim == 1, "file"
    grid = (volume.header.recon[0], volume.kspace_shape[1])
    if grid[0] > volume.kspace_shape[0]:
        grid = (volume.kspace_shape[0], grid[1])
    seed = masks.file_seed(volume.path.stem + ".h5") if spec.seed is None else spec.seed
    mask = masks.make_mask(spec.kind, grid, spec.acceleration, spec.center_fraction, seed, volume.header.padding)
    return mask, True, spec.kind


def prepare_batch(volume: Volume, indices, mask: np.ndarray, crop_readout: bool, need_maps: bool,
                  device: torch.device, *, maps: str = DEFAULT_MAPS, prewhiten: bool = True,
                  noise_floor: bool = True) -> SliceBatch:
    """Read, crop, mask, scale, prewhiten (if ``prewhiten`` and the noise covariance can be
    estimated, :mod:`mri_genprior.physics.noise`) and calibrate (coil maps by ``maps``) the
    slices ``indices`` of ``volume``; with ``noise_floor`` (multi-coil) the physics adds the
    unmeasured samples' noise power to every written RSS
    (:func:`~mri_genprior.physics.noise.missing_noise_power`)."""
    ys, mps, scales, mixes, floors = [], [], [], [], []
    weights, whitened = None, 0
    for i in indices:
        k = volume.read_slice(i)
        if crop_readout:
            k = remove_readout_oversampling(k, min(volume.header.recon[0], k.shape[-2]))
        weights = masks.expand(mask, k.shape[-2:])
        y = (k * weights + 0.0).astype(np.complex64)  # + 0.0: no signed zeros (fastMRI 2019 leak)
        scale = scale_factor(y)
        y /= scale
        floors.append(missing_noise_power(masks.centre_calibration(y, mask), weights,
                                          masks.calibration_region(mask, y.shape[-2:]), volume.header.padding)
                      if noise_floor and y.shape[0] > 1 else 0.0)
        factor = whitening_factor(y, weights) if prewhiten and y.shape[0] > 1 else None
        if factor is not None:
            y = prewhiten_coils(y, factor)
            whitened += 1
        mixes.append(np.eye(y.shape[0], dtype=np.complex64) if factor is None else factor)
        ys.append(y)
        scales.append(scale)
        if need_maps:
            mps.append(coil_maps(y, mask, maps, device))
    w = np.broadcast_to(weights, (len(ys),) + weights.shape).copy()
    sets = tuple(m.shape[-1] // weights.shape[-1] for m in mps)
    if need_maps:
        width = max(sets) * weights.shape[-1]
        mps = [np.pad(m, [(0, 0)] * (m.ndim - 1) + [(0, width - m.shape[-1])]) for m in mps]
    physics = SensePhysics.from_numpy(np.stack(mps) if need_maps else None, w, device,
                                      coil_mix=np.stack(mixes) if whitened else None,
                                      floor=np.asarray(floors, np.float32) if any(floors) else None)
    return SliceBatch(torch.as_tensor(np.stack(ys), device=device), physics, np.asarray(scales, np.float32),
                      whitened, sets)


def reconstruct_batch(method: Method, y: torch.Tensor, physics: Physics) -> Result:
    """Run ``method`` on one batch and apply the physics' output convention.

    Parameters
    ----------
    y : ``(B, *physics.oshape)`` complex64 measurements on ``physics.device``.

    Returns
    -------
    Result whose ``images`` are the ``(B, H, W)`` float32 magnitudes of the physics'
    output convention, on the scale of ``y``; each diagnostics record has ``seconds``
    (:data:`~mri_genprior.solvers.base.DIAGNOSTICS`).

    Raises
    ------
    MriGenpriorError
        If the method produced NaN or Inf.
    """
    start = time.perf_counter()
    result = method.reconstruct(y, physics)
    for record in result.diagnostics:
        record.setdefault("seconds", round((time.perf_counter() - start) / y.shape[0], 3))
    if not np.all(np.isfinite(result.images)):
        raise MriGenpriorError(f"{method.name} produced NaN/Inf")
    return Result(physics.output(result.images, y, result.shrink), result.std, result.diagnostics)


def _batches(volume: Volume, method: Method, options: ReconOptions, sampling: Tuple[np.ndarray, bool],
             device: torch.device):
    """``batch_of(index, last_use=False) -> (SliceBatch, place of index in it)``: the batches of
    ``options.batch_size`` slices of ``volume`` prepared for ``method``, each once (a batch
    asked for ahead of its turn, the central slice's, is kept until its ``last_use``);
    ``sampling`` is ``(mask, crop_readout)`` of :func:`volume_mask`."""
    prepared = {}

    def batch_of(index: int, last_use: bool = False):
        first = index - index % options.batch_size
        if first not in prepared:
            indices = range(first, min(first + options.batch_size, volume.num_slices))
            prepared[first] = prepare_batch(volume, indices, *sampling, method.needs_maps, device, maps=options.maps,
                                            prewhiten=options.prewhiten,
                                            noise_floor=options.noise_floor and method.noise_floor)
        return (prepared.pop(first) if last_use else prepared[first]), index - first

    return batch_of


def _for_volume(slices: int, method: Method, batch_of, progress: bool) -> Tuple[Method, Optional[dict]]:
    """The method every slice of a volume of ``slices`` runs, and the provenance's
    ``volume_choice`` (None where none was made): :meth:`Method.for_volume` on the central
    slice where there are several slices and the method makes choices per volume;
    ``batch_of(index)`` gives the :class:`SliceBatch` holding slice ``index`` and its place in it."""
    if slices < 2 or not method.chooses_per_volume:
        return method, None
    centre = slices // 2
    batch, j = batch_of(centre)
    try:
        with reporting(progress):
            chosen, record = method.for_volume(batch.y[j:j + 1], batch.physics.select([j]))
    except MriGenpriorError as err:
        raise MriGenpriorError(f"{err} (choosing for the volume on its central slice {centre})") from err
    return chosen, {"slice": centre, **record}


def reconstruct_opened(volume: Volume, method: Method, options: ReconOptions = ReconOptions()
                       ) -> Tuple[np.ndarray, dict]:
    """Reconstruct every slice of an open volume (the core of every entry point).

    Returns
    -------
    recon : ``(slices, recon_x, recon_y)`` float32 magnitude images in the input's units.
    info : provenance — method settings, input format (and what its reader flagged),
        mask kind and achieved acceleration, coil maps, the number of prewhitened
        slices, the noise floor per slice (RMS, in the output's units, of the noise the
        unmeasured samples would have added; 0 where none was added), output voxel size, device,
        seconds, the choices a method made once for the volume (``volume_choice``, e.g.
        L1-wavelet's λ on the central slice), per-slice diagnostics reported by the method; with
        methods that report uncertainty (posterior sampling, ``csgm ... std_map=True``), also
        ``reconstruction_std``, a ``(slices, recon_x, recon_y)`` array on the scale of ``recon``.
    """
    device = resolve_device(options.device)
    start = time.perf_counter()
    mask, crop_readout, source = volume_mask(volume, options.mask)
    out_shape = volume.header.recon[:2]
    recon = np.empty((volume.num_slices,) + tuple(out_shape), dtype=np.float32)
    bar = tqdm(total=volume.num_slices, desc=volume.path.name, unit="slice", disable=not options.progress,
               leave=False)
    diagnostics, std, whitened, floors, map_sets, maps_used = [], None, 0, [], [], None

    batch_of = _batches(volume, method, options, (mask, crop_readout), device)
    settings = method.settings()
    method, chosen = _for_volume(volume.num_slices, method, batch_of, options.progress)
    for first in range(0, volume.num_slices, options.batch_size):
        batch = batch_of(first, last_use=True)[0]
        indices = range(first, first + batch.y.shape[0])
        whitened += batch.whitened
        map_sets.extend(batch.map_sets)
        if method.needs_maps and batch.y.shape[1] > 1:
            maps_used = resolve_maps(options.maps, masks.calibration_region(mask, batch.y.shape[-2:])[1])
        floor = np.zeros(len(indices)) if batch.physics.floor is None else batch.physics.floor.cpu().numpy()
        floors.extend((np.sqrt(floor) * batch.scales).round(8).tolist())
        try:
            with reporting(options.progress):
                result = reconstruct_batch(method, batch.y, batch.physics)
        except MriGenpriorError as err:
            raise MriGenpriorError(f"{err} (slices {list(indices)})") from err
        scales = batch.scales[:, None, None]
        recon[indices.start:indices.stop] = crop_or_pad(result.images * scales, out_shape)
        diagnostics.extend(result.diagnostics)
        if result.std is not None:
            std = np.zeros_like(recon) if std is None else std
            std[indices.start:indices.stop] = crop_or_pad(result.std * scales, out_shape)
        bar.update(len(indices))
    bar.close()
    padding = volume.header.padding if mask.ndim == 1 else None
    info = {
        "method": method.name,
        "settings": settings,
        "input_format": volume.source["format"],
        **{key: value for key, value in volume.source.items() if key != "format"},
        "mask": source,
        "mask_pattern": mask.tolist() if mask.ndim == 1 else "2-D",
        "acceleration": round(masks.acceleration(mask, padding), 4),
        "nominal_acceleration": options.mask.acceleration if source != "file" else None,
        "center_fraction": options.mask.center_fraction if source != "file" else None,
        "coil_maps": maps_used,
        "map_sets": map_sets or None,
        "prewhitened_slices": whitened,
        "noise_floor": floors,
        "voxel_size_mm": volume.header.voxel_size_mm,
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 3),
    }
    if chosen is not None:
        info["volume_choice"] = chosen
    if diagnostics:
        info["diagnostics"] = diagnostics
    if std is not None:
        info["reconstruction_std"] = std
    return recon, info


def reconstruct_volume(path: os.PathLike | str, method: Method, options: ReconOptions = ReconOptions(), *,
                       select=None) -> Tuple[np.ndarray, dict]:
    """Reconstruct every slice of a k-space file in any supported format (fastMRI or
    ISMRMRD HDF5, BART ``.cfl``, ``.npy``; ``select``: one volume of an ISMRMRD file with
    several, :func:`mri_genprior.readers.volumes_of`); returns ``(recon, info)`` as
    :func:`reconstruct_opened` does."""
    with open_input(path, select) as volume:
        return reconstruct_opened(volume, method, options)


def reconstruct_kspace(kspace, method: Method, mask=None, *, header: Header | str | None = None,
                       name: str = "kspace", single_coil: bool = False,
                       options: ReconOptions = ReconOptions(progress=False)) -> Tuple[np.ndarray, dict]:
    """Reconstruct k-space held in memory; the same pipeline as the files.

    Parameters
    ----------
    kspace : NumPy array or torch tensor, complex, fastMRI's centred-FFT convention:
        ``(slices, coils, H, W)``, one slice ``(coils, H, W)``, or single-coil ``(H, W)``
        (``(slices, H, W)`` with ``single_coil=True``); H = readout, W = phase encode.
    method : from :func:`mri_genprior.solvers.make_method`.
    mask : ``(W,)`` or ``(H, W)`` sampling mask of undersampled data; by default it is
        read off the zero entries, and fully sampled data are undersampled
        retrospectively by ``options.mask``.
    header : ISMRMRD header XML (or :class:`~mri_genprior.io.Header`) for readout
        oversampling, phase-encode padding, output size and voxel size; default none.
    name : stands for a file name: it seeds fastMRI's per-file retrospective mask, so the
        array of ``file1000.h5`` with ``name="file1000.h5"`` gives exactly that file's images.
    options : :class:`ReconOptions`; no progress bars by default here.

    Returns
    -------
    ``(recon, info)`` as :func:`reconstruct_opened`: ``(slices, recon_x, recon_y)`` float32
    images and their provenance.
    """
    volume = array_volume(kspace, mask, header, name, single_coil)
    return reconstruct_opened(volume, method, options)


def reconstruct_file(path: os.PathLike | str, out_dir: os.PathLike | str, method: Method,
                     options: ReconOptions = ReconOptions(), *, volume: Optional[VolumeRef] = None) -> Path:
    """Reconstruct ``path`` (or its ``volume``, :func:`mri_genprior.readers.volumes_of`) and
    write it to ``out_dir`` in format ``options.fmt`` (see :mod:`mri_genprior.writers`)
    atomically; return the output path."""
    volume = volume or VolumeRef(Path(path))
    recon, info = reconstruct_volume(path, method, options, select=volume.select)
    return write_output(options.fmt, out_dir, volume.source, recon, info)
