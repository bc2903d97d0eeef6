import json

import h5py
import numpy as np
import pytest

from mri_genprior import MriGenpriorError, __version__
from mri_genprior.io import Header, make_header_xml, open_volume, parse_header
from mri_genprior.writers.fastmri import write_reconstruction


def test_header_round_trip_matches_fastmri_parser(tmp_path):
    from fastmri.data.mri_data import et_query
    import xml.etree.ElementTree as etree

    xml = make_header_xml((640, 372, 1), (320, 320, 1), pe_center=180, pe_max=359, fov_mm=(220, 220, 3))
    header = parse_header(xml)
    assert header == Header((640, 372, 1), (320, 320, 1), (372 // 2 - 180, 372 // 2 - 180 + 360), (220, 220, 3))
    assert header.voxel_size_mm == pytest.approx((220 / 320, 220 / 320, 3.0))
    # encodedSpace keeps the voxel size: twice the readout field of view for 2x oversampling
    assert float(et_query(etree.fromstring(xml), ["encoding", "encodedSpace", "fieldOfView_mm", "x"])) == 440
    root = etree.fromstring(xml)
    # fastMRI's own parser reads the same numbers
    assert int(et_query(root, ["encoding", "reconSpace", "matrixSize", "x"])) == 320
    assert int(et_query(root, ["encoding", "encodingLimits", "kspace_encoding_step_1", "center"])) == 180


def test_open_synthetic_volume(synth_file):
    with open_volume(synth_file) as vol:
        assert vol.multicoil and vol.num_slices == 2
        assert vol.kspace_shape == (128, 64)
        assert vol.header.recon[:2] == (64, 64) and vol.header.padding == (0, 64)
        k = vol.read_slice(1)
        assert k.shape == (8, 128, 64) and k.dtype == np.complex64
        assert vol.read_target().shape == (2, 64, 64)
        assert vol.attrs["acquisition"] == "AXT1"


def test_fastmri_slice_dataset_reads_our_files(synth_dir):
    from fastmri.data import SliceDataset

    ds = SliceDataset(synth_dir, challenge="multicoil", transform=lambda *a: a)
    kspace, mask, target, attrs, fname, slice_num = ds[0]
    assert kspace.shape == (8, 128, 64) and target.shape == (64, 64)
    assert attrs["recon_size"] == (64, 64, 1) and attrs["padding_left"] == 0


def test_write_reconstruction_is_fastmri_submission(tmp_path):
    recon = np.random.default_rng(0).random((3, 32, 32)).astype(np.float64)
    path = write_reconstruction(tmp_path, "file1.h5", recon, {"method": "tv", "settings": {"lamda": 0.1}})
    with h5py.File(path) as f:
        assert f["reconstruction"].dtype == np.float32
        np.testing.assert_allclose(f["reconstruction"][()], recon.astype(np.float32))
        assert json.loads(f.attrs["settings"]) == {"lamda": 0.1}
        assert f.attrs["mri_genprior_version"] == __version__
    assert [p.name for p in tmp_path.iterdir()] == ["file1.h5"]


def test_write_refuses_nan_and_leaves_nothing(tmp_path):
    recon = np.zeros((1, 8, 8), np.float32)
    recon[0, 0, 0] = np.nan
    with pytest.raises(MriGenpriorError, match="NaN"):
        write_reconstruction(tmp_path, "x.h5", recon, {})
    assert list(tmp_path.iterdir()) == []


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


BAD_CASES = {
    "garbage": (lambda p: p.write_bytes(b"not an hdf5 file at all" * 10), "not a readable HDF5 file"),
    "no_kspace": (lambda p: _write(p, other=np.zeros(3)), "no 'kspace' dataset"),
    "rank": (lambda p: _write(p, kspace=np.zeros((4, 4), np.complex64)), "rank 2"),
    "real": (lambda p: _write(p, kspace=np.zeros((1, 2, 4, 4), np.float32)), "expected complex"),
    "mask": (lambda p: _write(p, kspace=np.zeros((1, 2, 4, 6), np.complex64), mask=np.ones(5)), "does not match"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_give_clear_errors(tmp_path, case):
    make, message = BAD_CASES[case]
    path = tmp_path / f"{case}.h5"
    make(path)
    with pytest.raises(MriGenpriorError, match=message):
        with open_volume(path):
            pass


def test_truncated_file(synth_file, tmp_path):
    data = synth_file.read_bytes()
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MriGenpriorError):
        with open_volume(bad) as vol:
            for i in range(vol.num_slices):
                vol.read_slice(i)


def test_nan_slice_is_rejected(tmp_path):
    k = np.ones((2, 2, 8, 8), np.complex64)
    k[1, 0, 3, 3] = np.nan
    path = _write(tmp_path / "nan.h5", kspace=k)
    with open_volume(path) as vol:
        vol.read_slice(0)
        with pytest.raises(MriGenpriorError, match="NaN or Inf"):
            vol.read_slice(1)
