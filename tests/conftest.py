"""Shared fixtures: synthetic fastMRI files (real ISMRMRD headers), device and rng."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mri_genprior.experiments.synthetic import write_synthetic_dataset
from mri_genprior.physics import Operator

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
