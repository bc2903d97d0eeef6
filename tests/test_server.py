"""The MRD streaming server (`mri-genprior serve`) and client (`mri-genprior send`): images
equal the offline reconstruction, concurrent clients, and bad clients end only their own
connection."""

import json
import socket
import struct
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from mri_genprior import MriGenpriorError, mrd
from mri_genprior.experiments.synthetic import write_synthetic_file
from mri_genprior.writers.ismrmrd import write_ismrmrd
from mri_genprior.recon import ReconOptions, reconstruct_volume
from mri_genprior.client import send_file
from mri_genprior.server import make_server
from mri_genprior.solvers import make_method


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory):
    """A prospectively undersampled 2-slice 4-coil ISMRMRD raw file (48², every third line + 8 centre lines)."""
    out = tmp_path_factory.mktemp("raw")
    fastmri = write_synthetic_file(out / "brain.h5", [80, 90], (48, 48), 4, 0.01, 2)
    with h5py.File(fastmri) as f:
        kspace, xml = f["kspace"][()], f["ismrmrd_header"][()]
    mask = np.zeros(kspace.shape[-1], np.float32)
    mask[::3] = mask[20:28] = 1
    return write_ismrmrd(out / "raw.h5", kspace, xml, mask=mask)


@pytest.fixture(scope="module")
def server():
    server = make_server("127.0.0.1", 0, workers=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def served_images(path):
    """``{series: (slices, x, y)}`` magnitudes and the images of an ISMRMRD image file."""
    import ismrmrd

    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False, mode="r") as dataset:
        groups = [g for g in dataset.list() if g.startswith("images_")]
        images = {g: [dataset.read_image(g, i) for i in range(dataset.number_of_images(g))] for g in groups}
    return {g: np.stack([im.data[0, 0].T for im in ims]) for g, ims in images.items()}, images


def test_served_images_equal_the_offline_reconstruction_through_both_commands(raw_file, tmp_path):
    """`mri-genprior serve` in its own process, `mri-genprior send` in another."""
    serve = subprocess.Popen([sys.executable, "-m", "mri_genprior.cli", "serve", "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()
        port = line.split("listening on ")[1].split()[0].rsplit(":", 1)[1]
        out = tmp_path / "served.h5"
        sent = subprocess.run([sys.executable, "-m", "mri_genprior.cli", "send", str(raw_file), "-o", str(out),
                               "--port", port, "--method", "sense"], capture_output=True, text=True)
        assert sent.returncode == 0, sent.stderr
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
    arrays, images = served_images(out)
    offline, info = reconstruct_volume(raw_file, make_method("sense"), ReconOptions(progress=False))
    np.testing.assert_allclose(arrays["images_1"], offline, rtol=0, atol=1e-4 * offline.max())
    first = images["images_1"][0]
    assert tuple(first.matrix_size) == (48, 48, 1) and [im.slice for im in images["images_1"]] == [0, 1]
    assert [im.image_index for im in images["images_1"]] == [1, 2] and first.image_series_index == 1
    meta = first.attribute_string
    assert "<value>sense</value>" in meta and json.dumps(info["settings"], sort_keys=True)[:30] in meta


def test_two_clients_at_once_get_their_own_methods(raw_file, server, tmp_path):
    outputs = {}

    def client(method):
        outputs[method] = send_file(raw_file, "127.0.0.1", server, tmp_path / f"{method}.h5", method)

    threads = [threading.Thread(target=client, args=(m,)) for m in ("zero-filled", "sense")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for method in ("zero-filled", "sense"):
        offline, _ = reconstruct_volume(raw_file, make_method(method), ReconOptions(progress=False))
        served = served_images(outputs[method])[0]["images_1"]
        np.testing.assert_allclose(served, offline, rtol=0, atol=1e-4 * offline.max())


def test_config_text_json_picks_method_and_parameters_and_unknown_names_get_err(raw_file, server, tmp_path):
    out = send_file(raw_file, "127.0.0.1", server, tmp_path / "json.h5",
                    config={"method": "sense", "parameters": {"lamda": "0.01"}})
    offline, _ = reconstruct_volume(raw_file, make_method("sense", lamda=0.01), ReconOptions(progress=False))
    np.testing.assert_allclose(served_images(out)[0]["images_1"], offline, rtol=0, atol=1e-4 * offline.max())
    with pytest.raises(MriGenpriorError, match="server: unknown method 'invertcontrast'"):
        send_file(raw_file, "127.0.0.1", server, tmp_path / "bad.h5", "invertcontrast")
    assert not (tmp_path / "bad.h5").exists()


def replies(sock) -> list:
    """The messages a server sends until it closes: ``[(ID, body), ...]``."""
    stream, got = mrd.Stream(sock), []
    while True:
        identifier, body = stream.receive()
        if identifier is None:
            return got
        got.append((identifier, body))
        if identifier == mrd.CLOSE:
            return got


def header_and_acquisitions(raw_file):
    import ismrmrd

    with ismrmrd.Dataset(str(raw_file), "dataset", create_if_needed=False, mode="r") as dataset:
        return dataset.read_xml_header().decode(), [dataset.read_acquisition(i) for i in range(5)]


def test_garbage_truncation_and_disconnects_end_only_their_own_connection(raw_file, server, tmp_path):
    xml, acquisitions = header_and_acquisitions(raw_file)
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"\xff\xffgarbage bytes")
        assert replies(sock) == [(mrd.TEXT, "ERR unknown message identifier 65535"), (mrd.CLOSE, None)]
    with socket.create_connection(("127.0.0.1", server)) as sock:
        stream = mrd.Stream(sock)
        stream.send_config_file("sense")
        stream.send_text(xml, mrd.HEADER)
        data = acquisitions[0].to_bytes()
        sock.sendall(struct.pack("<H", mrd.ACQUISITION) + data[:len(data) // 2])
        sock.shutdown(socket.SHUT_WR)
        (kind, text), close = replies(sock)
        assert kind == mrd.TEXT and text.startswith("ERR connection closed") and close == (mrd.CLOSE, None)
    with socket.create_connection(("127.0.0.1", server)) as sock:
        stream = mrd.Stream(sock)
        stream.send_text(xml, mrd.HEADER)
        for acquisition in acquisitions[:3]:
            stream.send_acquisition(acquisition)
    with socket.create_connection(("127.0.0.1", server)) as sock:  # a header that does not parse
        mrd.Stream(sock).send_text("<ismrmrdHeader><broken", mrd.HEADER)
        (kind, text), _ = replies(sock)
        assert kind == mrd.TEXT and text.startswith("ERR malformed ismrmrd_header")
    out = send_file(raw_file, "127.0.0.1", server, tmp_path / "after.h5", "zero-filled")
    assert served_images(out)[0]["images_1"].shape == (2, 48, 48)
