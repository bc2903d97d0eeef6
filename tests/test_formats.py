"""Pipeline integration: ISMRMRD / BART / .npy inputs, the in-memory API, NIfTI and PNG outputs."""

import json
import logging
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import torch

from mri_genprior import MriGenpriorError
from mri_genprior.cli import main
from mri_genprior.convert import wrap_kspace
from mri_genprior.io import make_header_xml
from mri_genprior.physics import remove_readout_oversampling
from mri_genprior.readers import detect_format, open_input
from mri_genprior.recon import MaskSpec, ReconOptions, reconstruct_kspace, reconstruct_volume
from mri_genprior.solvers import make_method
from mri_genprior.writers import write_output
from mri_genprior.writers.bart import to_bart, write_cfl
from mri_genprior.writers.fastmri import write_kspace_file
from mri_genprior.writers.ismrmrd import write_ismrmrd

SPEC = MaskSpec("random", 4, 0.125)  # 8 centre lines of 64 and 8 random ones: the per-file seed matters


def _method():
    return make_method("l1-wavelet", lamda=1e-3, max_iter=30)


def _recon(path):
    return reconstruct_volume(path, _method(), ReconOptions(SPEC, device="cpu", progress=False))


def _same_images(a, b):
    """The issue's criterion: max abs difference ≤ 1e-5 of the image max."""
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


@pytest.fixture(scope="module")
def synth(synth_file):
    """k-space (2, 8, 128, 64) with 2x readout oversampling, the file's header XML, recon."""
    with h5py.File(synth_file) as f:
        kspace, xml = f["kspace"][()], f["ismrmrd_header"][()].decode()
    return kspace, xml, _recon(synth_file)


@pytest.fixture(scope="module")
def cropped(tmp_path_factory, synth):
    """The same k-space without readout oversampling as a fastMRI file, and its recon."""
    kspace = np.stack([remove_readout_oversampling(k, 64) for k in synth[0]])
    path = wrap_kspace(kspace, tmp_path_factory.mktemp("cropped") / "brain.h5")
    return kspace, path, _recon(path)


def test_ismrmrd_round_trip_matches_fastmri_file(synth, synth_file, tmp_path):
    kspace, xml, (expected, info) = synth
    noise = np.full((8, 128), 1e3, np.complex64)  # a noise scan that must not reach k-space
    raw = write_ismrmrd(tmp_path / synth_file.name, kspace, xml, noise=noise)
    assert detect_format(raw) == "ismrmrd" and detect_format(synth_file) == "fastmri"
    with open_input(raw) as volume:
        assert volume.mask is None and volume.header.recon[:2] == (64, 64)
        np.testing.assert_array_equal(volume.read_slice(1), kspace[1])
    recon, raw_info = _recon(raw)
    _same_images(recon, expected)
    assert raw_info["input_format"] == "ismrmrd" and info["input_format"] == "fastmri"
    assert raw_info["mask_pattern"] == info["mask_pattern"]  # same per-file seed (same name)
    assert sum(info["mask_pattern"]) > 8  # random lines beyond the 8 centre lines


def test_ismrmrd_prospective_lines_become_the_mask(synth, tmp_path):
    kspace, xml, _ = synth
    mask = np.zeros(64, np.float32)
    mask[::3] = mask[26:38] = 1
    raw = write_ismrmrd(tmp_path / "under.h5", kspace, xml, mask=mask)
    fastmri_file = write_kspace_file(tmp_path / "fm" / "under.h5", kspace * mask + 0.0, xml, {}, mask=mask)
    with open_input(raw) as volume:
        np.testing.assert_array_equal(volume.mask, mask)
    recon, info = _recon(raw)
    _same_images(recon, _recon(fastmri_file)[0])
    assert info["mask"] == "file" and info["acceleration"] == pytest.approx(64 / mask.sum(), rel=1e-3)


def test_ismrmrd_partial_fourier_and_averages_are_handled(synth, tmp_path):
    import ismrmrd

    kspace, _, _ = synth
    h, w = kspace.shape[-2:]
    # phase encode: lines 0 .. 47 of 64 (centre 32); readout: an asymmetric echo of 96 of 128 samples
    xml = make_header_xml((h, w, 1), (64, 64, 1), pe_center=32, pe_max=47, fov_mm=(200, 200, 4))
    path = tmp_path / "pf.h5"
    with ismrmrd.Dataset(str(path), "dataset", mode="w") as dataset:
        dataset.write_xml_header(xml)
        for repeat in range(2):  # two averages of every line, the second with a tenth of the signal added
            for col in range(48):
                data = kspace[0, :, 32:, col] * (1 + 0.1 * repeat)
                acq = ismrmrd.Acquisition.from_array(data, center_sample=32)
                acq.idx.kspace_encode_step_1, acq.idx.average = col, repeat
                dataset.append_acquisition(acq)
    with open_input(path) as volume:
        assert volume.source["partial_fourier"] == {"readout": 0.75, "phase_encode": 0.75}
        assert volume.mask is None and volume.header.padding == (0, 48)  # fully sampled within the limits
        k = volume.read_slice(0)
    np.testing.assert_allclose(k[:, 32:, :48], 1.05 * kspace[0, :, 32:, :48], rtol=1e-6, atol=1e-7)
    assert not k[:, :32].any() and not k[:, :, 48:].any()  # zero-filled
    recon, info = reconstruct_volume(path, make_method("zero-filled"), ReconOptions(SPEC, device="cpu", progress=False))
    assert recon.shape == (1, 64, 64) and info["partial_fourier"]["readout"] == 0.75
    assert info["voxel_size_mm"] == pytest.approx((200 / 64, 200 / 64, 4.0))


def _raw_with(tmp_path, name, edit, xml=None):
    import ismrmrd

    path = tmp_path / f"{name}.h5"
    with ismrmrd.Dataset(str(path), "dataset", mode="w") as dataset:
        dataset.write_xml_header(xml or make_header_xml((16, 16, 1), (16, 16, 1), 8, 15))
        for col in range(16):
            acq = ismrmrd.Acquisition.from_array(np.ones((2, 16), np.complex64), center_sample=8)
            acq.idx.kspace_encode_step_1 = col
            edit(acq, col)
            dataset.append_acquisition(acq)
    return path


def test_ismrmrd_unsupported_data_are_clear_errors(tmp_path):
    def two_repetitions(acq, col):
        acq.idx.repetition = col % 2

    def outside(acq, col):
        acq.idx.kspace_encode_step_1 = col + 4

    radial = make_header_xml((16, 16, 1), (16, 16, 1), 8, 15).replace(">cartesian<", ">radial<")
    cases = {"repetitions": (two_repetitions, None, "2 values of the 'repetition' counter"),
             "outside": (outside, None, "fall outside the encoded matrix 16×16"),
             "radial": (lambda a, c: None, radial, "radial trajectory; only Cartesian")}
    for name, (edit, xml, message) in cases.items():
        with pytest.raises(MriGenpriorError, match=message):
            with open_input(_raw_with(tmp_path, name, edit, xml)):
                pass


def test_contrasts_and_repetitions_become_volumes_of_their_own(synth, tmp_path, capsys):
    """Two contrasts × two repetitions in one ISMRMRD file: four outputs ``<stem>_c<k>_r<k>``,
    each equal to the reconstruction of a file holding only that volume."""
    import ismrmrd

    kspace, xml, _ = synth
    mask = np.zeros(64, np.float32)
    mask[::3] = mask[26:38] = 1
    singles = {}
    with ismrmrd.Dataset(str(tmp_path / "scan.h5"), "dataset", mode="w") as merged:
        merged.write_xml_header(xml)
        for contrast in (0, 1):
            for repetition in (0, 1):
                data = kspace * (1 + contrast) * np.exp(1j * repetition)
                single = write_ismrmrd(tmp_path / "single" / f"c{contrast}_r{repetition}.h5", data, xml, mask=mask)
                singles[f"scan_c{contrast}_r{repetition}.h5"] = single
                with ismrmrd.Dataset(str(single), "dataset", create_if_needed=False, mode="r") as dataset:
                    for i in range(dataset.number_of_acquisitions()):
                        acq = dataset.read_acquisition(i)
                        acq.idx.contrast, acq.idx.repetition = contrast, repetition
                        merged.append_acquisition(acq)
    out = tmp_path / "out"
    assert main(["reconstruct", str(tmp_path / "scan.h5"), "-o", str(out), "--method", "zero-filled", "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(singles)
    for name, single in singles.items():
        expected, _ = reconstruct_volume(single, make_method("zero-filled"), ReconOptions(progress=False))
        with h5py.File(out / name) as f:
            np.testing.assert_allclose(f["reconstruction"][()], expected, rtol=1e-6, atol=1e-6 * expected.max())
            assert json.loads(f.attrs["counters"]) == {"contrast": int(name[6]), "phase": 0,
                                                       "repetition": int(name[9]), "set": 0}
    assert main(["reconstruct", str(tmp_path / "scan.h5"), "-o", str(out), "-q"]) == 0
    assert "skip scan_c1_r1.h5" in capsys.readouterr().out


def test_bart_and_npy_match_the_fastmri_file(cropped, tmp_path):
    kspace, _, (expected, _) = cropped
    cfl = write_cfl(tmp_path / "brain", to_bart(kspace))
    np.save(tmp_path / "brain.npy", kspace)
    for path in (cfl, cfl.with_suffix(".hdr"), tmp_path / "brain.npy"):
        recon, info = _recon(path)
        _same_images(recon, expected)  # seeded like brain.h5, so the same mask
        assert info["input_format"] == ("npy" if path.suffix == ".npy" else "bart")
    other, info = _recon(write_cfl(tmp_path / "other", to_bart(kspace)))
    assert np.abs(other - expected).max() > 1e-3 * expected.max()  # another name, another mask


@pytest.mark.skipif(shutil.which("bart") is None, reason="the BART command line tool is not installed")
def test_bart_tool_writes_what_we_read(tmp_path):
    """k-space from `bart phantom -k`: our RSS of the inverse FFT equals `bart fft -i | bart rss`."""
    run = lambda *args: subprocess.run(["bart", *args], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("phantom", "-k", "-x", "32", "-s", "4", "ksp")
    run("fft", "-i", "-u", "3", "ksp", "img")
    run("rss", "8", "img", "ref")
    from mri_genprior.readers.bart import open_cfl

    reference = np.memmap(tmp_path / "ref.cfl", dtype="<c8", mode="r").reshape(32, 32, order="F").real
    volume = open_cfl(tmp_path / "ksp.cfl")
    recon, info = reconstruct_volume(tmp_path / "ksp.cfl", make_method("zero-filled"),
                                     ReconOptions(SPEC, device="cpu", progress=False))
    assert volume.kspace.shape == (1, 4, 32, 32) and info["input_format"] == "bart"
    from mri_genprior.physics import ifft2c_np, rss

    ours = rss(ifft2c_np(volume.read_slice(0)), axis=0)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * reference.max())


def test_bart_refuses_what_it_cannot_hold(tmp_path):
    array = np.ones((8, 8, 1, 2, 1, 3) + (1,) * 10, np.complex64)  # three echoes (TE)
    with pytest.raises(MriGenpriorError, match="only READ, PHS1, COIL and SLICE may exceed 1.*TE=3"):
        with open_input(write_cfl(tmp_path / "echoes", array)):
            pass
    truncated = write_cfl(tmp_path / "short", np.ones((8, 8, 1, 2), np.complex64))
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(MriGenpriorError, match="100 bytes, but the dimensions in its .hdr need 1024 bytes"):
        with open_input(truncated):
            pass


def test_reconstruct_kspace_equals_the_file_path(synth, synth_file):
    kspace, xml, (expected, info) = synth
    recon, mem_info = reconstruct_kspace(kspace, _method(), header=xml, name=synth_file.name,
                                         options=ReconOptions(SPEC, device="cpu", progress=False))
    np.testing.assert_array_equal(recon, expected)  # exactly the same images
    assert mem_info["input_format"] == "array" and mem_info["mask_pattern"] == info["mask_pattern"]
    from_tensor, _ = reconstruct_kspace(torch.from_numpy(kspace), _method(), header=xml, name=synth_file.name,
                                        options=ReconOptions(SPEC, device="cpu", progress=False))
    np.testing.assert_array_equal(from_tensor, expected)
    one, _ = reconstruct_kspace(kspace[1], _method(), header=xml, name=synth_file.name,
                                options=ReconOptions(SPEC, progress=False))
    assert one.shape == (1, 64, 64)


def test_reconstruct_kspace_masks_and_shapes(synth):
    kspace, xml, _ = synth
    mask = np.zeros(64, np.float32)
    mask[::2] = mask[24:40] = 1
    zf = make_method("zero-filled")
    given, info = reconstruct_kspace(kspace, zf, mask, header=xml)
    inferred, inferred_info = reconstruct_kspace(kspace * mask, zf, header=xml)  # mask read off the zeros
    np.testing.assert_array_equal(given, inferred)
    assert info["mask"] == inferred_info["mask"] == "file"
    single, single_info = reconstruct_kspace(kspace[:, 0], zf, single_coil=True, header=xml)
    assert single.shape == (2, 64, 64) and single_info["coil_maps"] is None
    with pytest.raises(MriGenpriorError, match="does not match kspace"):
        reconstruct_kspace(kspace, zf, np.ones(63), header=xml)
    with pytest.raises(MriGenpriorError, match="must be complex"):
        reconstruct_kspace(np.abs(kspace), zf)
    with pytest.raises(MriGenpriorError, match="expected \\(slices, coils, H, W\\)"):
        reconstruct_kspace(kspace[None], zf)
    bad = kspace.copy()
    bad[1, 0, 5, 5] = np.nan
    with pytest.raises(MriGenpriorError, match="slice 1 contains NaN"):
        reconstruct_kspace(bad, zf, header=xml)


def test_cli_nifti_output_has_the_header_voxel_sizes(synth, tmp_path, capsys):
    import nibabel

    kspace, _, _ = synth
    xml = make_header_xml((128, 64, 1), (64, 64, 1), 32, 63, fov_mm=(230, 200, 5))
    raw = write_ismrmrd(tmp_path / "in" / "scan.h5", kspace, xml)
    out = tmp_path / "out"
    args = ["reconstruct", str(raw), "-o", str(out), "--method", "l1-wavelet", "-p", "lamda=1e-3", "-p",
            "max_iter=30", "--center-fraction", "0.25", "-q"]
    assert main(args + ["--format", "nifti"]) == 0
    assert main(args) == 0
    image = nibabel.load(out / "scan.nii.gz")
    assert image.header.get_zooms() == pytest.approx((230 / 64, 200 / 64, 5.0))
    assert image.header.get_xyzt_units()[0] == "mm"
    with h5py.File(out / "scan.h5") as f:
        np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(2, 0, 1), f["reconstruction"][()])
    sidecar = json.loads((out / "scan.json").read_text())
    assert sidecar["input_format"] == "ismrmrd" and sidecar["method"] == "l1-wavelet"
    assert not (out / "scan_std.nii.gz").exists()
    assert sorted(p.name for p in out.iterdir()) == ["scan.h5", "scan.json", "scan.nii.gz"]  # no temporaries
    assert main(args + ["--format", "nifti"]) == 0 and "skip scan.h5" in capsys.readouterr().out


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """A rotation matrix from angles (radians) about x, then y, then z."""
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize("angles,spacing", [((0.3, -0.2, 0.5), 5.5), ((1.1, 0.4, -0.7), 3.0)])
def test_nifti_affine_puts_every_voxel_where_the_ismrmrd_headers_say(synth, tmp_path, angles, spacing):
    """Two oblique volumes: with nibabel, each voxel centre (i, j, k) lands at
    ``p_k + (i − 32) Δx r + (j − 32) Δy c`` (LPS -> RAS) to 1e-3 mm; qform and sform say scanner."""
    import nibabel
    from nibabel.affines import apply_affine

    kspace, _, _ = synth
    xml = make_header_xml((128, 64, 1), (64, 64, 1), 32, 63, fov_mm=(230, 200, 5))
    r, c, n = rotation(*angles).T
    positions = np.array([12.5, -30.0, 41.0]) + spacing * np.arange(2)[:, None] * n
    geometry = {"position": positions, "read_dir": r, "phase_dir": c, "slice_dir": n}
    raw = write_ismrmrd(tmp_path / "oblique.h5", kspace, xml, geometry=geometry)
    assert main(["reconstruct", str(raw), "-o", str(tmp_path / "out"), "--method", "zero-filled", "--format",
                 "nifti", "--center-fraction", "0.25", "-q"]) == 0
    image = nibabel.load(tmp_path / "out" / "oblique.nii.gz")
    assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == 1
    np.testing.assert_allclose(image.get_qform(), image.affine, atol=1e-4)
    dx, dy = 230 / 64, 200 / 64
    ijk = np.array([[i, j, k] for i in (0, 32, 63) for j in (0, 17, 32) for k in (0, 1)])
    expected = positions[ijk[:, 2]] + (ijk[:, :1] - 32) * dx * r + (ijk[:, 1:2] - 32) * dy * c
    np.testing.assert_allclose(apply_affine(image.affine, ijk), expected * [-1, -1, 1], atol=1e-3)


def test_nifti_std_file_and_unit_affine_warning(tmp_path, caplog):
    import nibabel

    recon = np.random.default_rng(0).random((3, 8, 6)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="mri_genprior.writers"):
        path = write_output("nifti", tmp_path, "vol.npy", recon,
                            {"method": "dds", "voxel_size_mm": None, "reconstruction_std": recon / 10})
    assert "the NIfTI affine is the identity" in caplog.text
    assert path.name == "vol.nii.gz" and np.array_equal(nibabel.load(path).affine, np.eye(4))
    std = nibabel.load(tmp_path / "vol_std.nii.gz")
    np.testing.assert_allclose(np.asarray(std.dataobj).transpose(2, 0, 1), recon / 10)
    assert "reconstruction_std" not in json.loads((tmp_path / "vol.json").read_text())


def test_png_previews_and_contact_sheet(tmp_path):
    import matplotlib.image

    recon = np.tile(np.linspace(0, 2, 40, dtype=np.float32), (5, 30, 1))
    recon[:, 0, -1] = 100.0  # a few outliers above the 99.5th percentile saturate
    folder = write_output("png", tmp_path, "scan.cfl", recon, {})
    assert sorted(p.name for p in folder.iterdir()) == ["contact_sheet.png"] + [f"slice_{i:03d}.png" for i in range(5)]
    preview = matplotlib.image.imread(folder / "slice_002.png")
    assert preview.shape[:2] == (30, 40)
    expected = np.clip(recon[2] / np.percentile(recon, 99.5), 0, 1)  # windowed to the volume's percentile
    np.testing.assert_allclose(preview[..., 0], expected, atol=2 / 255)  # 8 bits through a 256-entry colormap
    assert preview[0, -1, 0] == 1.0 and preview[5, 0, 0] == 0.0
    write_output("png", tmp_path, "scan.cfl", recon[:2], {})  # overwrite: the folder is replaced whole
    assert len(list(folder.iterdir())) == 3 and [p.name for p in tmp_path.iterdir()] == ["scan"]


@pytest.mark.parametrize("fmt", ["h5", "nifti", "png"])
def test_bad_inputs_of_each_format_leave_no_output(tmp_path, synth, capsys, fmt):
    kspace, xml, _ = synth
    bad = tmp_path / "in"
    bad.mkdir()
    nan = kspace[:1].copy()
    nan[0, 0, 0, 0] = np.nan
    np.save(bad / "nan.npy", nan)
    write_cfl(bad / "nan_bart", to_bart(nan))
    raw = write_ismrmrd(bad / "cut.h5", kspace, xml)
    raw.write_bytes(raw.read_bytes()[:5000])  # truncated HDF5
    (bad / "text.npy").write_text("not an array")
    out = tmp_path / "out"
    assert main(["reconstruct", str(bad), "-o", str(out), "--method", "zero-filled", "--format", fmt, "-q"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors)
    text = "\n".join(errors)
    assert "nan.npy: " in text and "contains NaN" in text and "nan_bart.cfl" in text
    assert "cut.h5: " in text and "text.npy: " in text
    assert list(out.iterdir()) == []
