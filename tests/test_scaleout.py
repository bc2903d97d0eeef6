"""Many volumes: Dask workers, a killed worker, an interrupted run, bad inputs among good ones."""

import os
import shutil
import signal
import threading
import time

import h5py
import numpy as np
import pytest

from mri_genprior import scaleout
from mri_genprior.cli import main
from mri_genprior.recon import MaskSpec, ReconOptions
from mri_genprior.scaleout import Job, reconstruct_all
from mri_genprior.experiments.synthetic import write_synthetic_dataset

JOB = Job("sense", {"max_iter": 10}, ReconOptions(MaskSpec("random", 4, 0.25), device="cpu"))


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    out = tmp_path_factory.mktemp("vols")
    return write_synthetic_dataset(out, num_files=4, slices=2, size=(64, 64), seed=7)


@pytest.fixture(scope="module")
def reference(volumes, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    report = reconstruct_all(volumes, out, JOB, progress=False)
    assert len(report.written) == 4 and not report.failed
    return out


def _same_outputs(a, b, names, workers=False):
    """The reconstructions ``names`` in folders ``a`` and ``b`` are equal; with ``workers``
    (``b`` written by Dask workers) to 1e-4 of the image maximum: the workers run with one
    BLAS thread (distributed's default), this process with the machine's, so sums run in
    another order (a SENSE volume on 2 cores: 8.6e-6 of the maximum, 1 against 2 threads)."""
    for name in names:
        with h5py.File(a / name) as fa, h5py.File(b / name) as fb:
            x, y = fa["reconstruction"][()], fb["reconstruction"][()]
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-4 * float(np.abs(x).max()) if workers else 0)


def _no_temporaries(out):
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_two_local_workers_match_one_process(volumes, reference, tmp_path):
    report = reconstruct_all(volumes, tmp_path, JOB, workers=2, progress=False)
    assert sorted(p.name for p in report.written) == sorted(v.name for v in volumes) and not report.failed
    _same_outputs(reference, tmp_path, [v.name for v in volumes], workers=True)
    _no_temporaries(tmp_path)


def test_killed_worker_loses_no_volume(volumes, reference, tmp_path):
    from distributed import Client

    slow = Job("sense", {"max_iter": 10}, JOB.options)
    with scaleout.local_cluster(2) as cluster:
        with Client(cluster) as client:  # closed before the run opens its own client
            pids = list(client.run(os.getpid).values())

        def kill_one_when_work_started():
            deadline = time.time() + 60
            while time.time() < deadline and not any(tmp_path.iterdir()):
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)  # mid-run: the nanny restarts it, Dask reruns its task

        killer = threading.Thread(target=kill_one_when_work_started)
        killer.start()
        report = reconstruct_all(volumes, tmp_path, slow, scheduler=cluster.scheduler_address, progress=False)
        killer.join()
    assert not report.failed and len(report.written) == 4
    _same_outputs(reference, tmp_path, [v.name for v in volumes], workers=True)
    _no_temporaries(tmp_path)


def test_interrupted_run_resumes_to_the_same_outputs(volumes, reference, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    original = scaleout.reconstruct_one

    def interrupt_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(scaleout, "reconstruct_one", interrupt_third)
    argv = ["reconstruct", *map(str, volumes), "-o", str(tmp_path), "--method", "sense", "-p", "max_iter=10",
            "--center-fraction", "0.25", "--device", "cpu", "-q"]
    assert main(argv) == 130
    assert len(list(tmp_path.glob("*.h5"))) == 2
    monkeypatch.undo()
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("skip ") == 2 and printed.count("wrote ") == 2
    _same_outputs(reference, tmp_path, [v.name for v in volumes])
    _no_temporaries(tmp_path)


BAD_INPUTS = {
    "truncated": lambda good, p: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
    "garbage": lambda good, p: p.write_bytes(b"\x89HDF\r\n" + b"\x00" * 500),
    "no_kspace": lambda good, p: h5py.File(p, "w").close(),
    "wrong_rank": lambda good, p: _h5(p, kspace=np.zeros((8, 8), np.complex64)),
    "nan": lambda good, p: _copy_with(good, p, lambda k: _poke(k, np.nan)),
    "inf": lambda good, p: _copy_with(good, p, lambda k: _poke(k, np.inf)),
    "mask_length": lambda good, p: _copy_with(good, p, None, mask=np.ones(7, np.float32)),
}


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value


def _poke(kspace, value):
    kspace[1, 0, 5, 5] = value
    return kspace


def _copy_with(good, path, change, **extra):
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        if change is not None:
            f["kspace"][...] = change(f["kspace"][()])
        for key, value in extra.items():
            f[key] = value


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_among_good_ones(case, volumes, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(volumes[0], inputs / volumes[0].name)
    BAD_INPUTS[case](volumes[0], inputs / f"bad_{case}.h5")
    out = tmp_path / "out"
    assert main(["reconstruct", str(inputs), "-o", str(out), "--method", "zero-filled", "--center-fraction", "0.25",
                 "-q"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: bad_{case}.h5: ") and "internal error" not in errors[0]
    assert sorted(p.name for p in out.iterdir()) == [volumes[0].name]  # nothing of the bad file, no temporaries
