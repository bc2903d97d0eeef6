"""Shared fixtures: synthetic fastMRI files (real ISMRMRD headers), device and rng."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mri_genprior.experiments.synthetic import write_synthetic_dataset
from mri_genprior.physics import Operator

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per worker: the workers share the cores
    torch.set_num_threads(1)


def pytest_configure(config):
    """Under pytest-xdist (``-n``), one OpenMP / BLAS thread in every worker and in the processes
    the tests start (the CLI tests), set before the workers spawn; an explicit setting wins."""
    if getattr(config.option, "numprocesses", None) or os.environ.get("PYTEST_XDIST_WORKER"):
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")

# the project's shared data lies beside the checkout: <checkout>/../shared
SHARED_KSPACE = Path(__file__).resolve().parents[2] / "shared/data/sigpy_brain_8coil/cartesian_ksp.npy"
# a real, fully sampled 8-coil brain slice (8, 230, 180), shipped with the tests (BSD-3, README beside it)
REAL_KSPACE = Path(__file__).resolve().parent / "data/brain_8coil_fully_sampled/kspace.npy"


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """Two 8-coil files, 2 slices each, 64×64 recon matrix, 128-sample oversampled readout."""
    out = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(out, num_files=2, slices=2, size=(64, 64), coils=8, noise=0.005, seed=1)
    return out


@pytest.fixture(scope="session")
def synth_file(synth_dir):
    return sorted(synth_dir.glob("*.h5"))[0]


@pytest.fixture(scope="session")
def one_slice_file(tmp_path_factory):
    """One 8-coil 64×64 slice (axial plane 109, as the second slice of ``synth_file``), for
    the slow methods."""
    from mri_genprior.experiments.synthetic import write_synthetic_file

    return write_synthetic_file(tmp_path_factory.mktemp("one_slice") / "one_slice.h5", [109], (64, 64), 8, 0.005, 1)


@pytest.fixture
def device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


class GaussianOp(Operator):
    """y = A vec(x) with a complex matrix: a user-defined operator."""

    def __init__(self, a, shape):
        self.a, self.ishape, self.oshape = a, tuple(shape), (a.shape[0],)

    def forward(self, x):
        return x.flatten(1) @ self.a.T

    def adjoint(self, y):
        return (y @ self.a.conj()).view(-1, *self.ishape)


def crandn(rng, shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
