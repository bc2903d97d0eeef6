"""``mri-genprior serve``: a reconstruction server on the MRD streaming protocol (:mod:`.mrd`).

A client (a scanner's FIRE interface, Gadgetron, python-ismrmrd-server's ``client.py``,
``mri-genprior send``) connects, names a method, sends the ISMRMRD header and the
acquisitions, and gets ISMRMRD images back:

1. **Method.** A config file name (message 1) names a registered method at its
   defaults; a config text (message 2) is JSON ``{"method": ..., "parameters": {...},
   "prior": "<checkpoint path on the server>"}``. No name: :data:`DEFAULT_METHOD`. An
   unknown name or bad parameters: an ``ERR`` text message, then close.
2. **Slices.** Acquisitions are collected per (contrast, repetition, set, slice). A slice is
   reconstructed when its acquisition flagged last-in-slice arrives (the rest at close),
   through the same pipeline as ``mri-genprior reconstruct`` on a file of that slice, so the
   images equal the offline reconstruction's.
3. **Images.** Float magnitude, ``(readout, phase encode)`` as ``(x, y)``, matrix and field
   of view from the header's reconSpace, position and directions from the slice's
   acquisitions, series index ``1 + contrast + 100 × repetition``, a MetaContainer with
   the method and its settings. Then close.

Connections are served each in its own thread; at most ``workers`` slices are reconstructed
at a time. A malformed, truncated or unknown message, a header that does not parse, or a
client that leaves mid-scan ends that connection (with an ``ERR`` text where the socket
still takes it) and a log line; the others go on. Nothing is written to disk but a
temporary file per slice, removed after its reconstruction.
"""

from __future__ import annotations

import json
import logging
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from . import MriGenpriorError, mrd
from .io import parse_header

log = logging.getLogger(__name__)
DEFAULT_METHOD = "l1-wavelet"
COUNTERS = ("contrast", "repetition", "set", "slice")


def choose_method(identifier: int, body: str):
    """The method a config file name (message 1) or config JSON text (message 2) asks for."""
    from .solvers import METHODS, make_method

    if identifier == mrd.CONFIG_FILE:
        name, params = body.strip() or DEFAULT_METHOD, {}
    else:
        try:
            config = json.loads(body)
        except json.JSONDecodeError as err:
            raise MriGenpriorError(f"config text is not JSON ({err})") from err
        if not isinstance(config, dict) or not isinstance(config.get("parameters", {}), dict):
            raise MriGenpriorError('config text must be {"method": ..., "parameters": {...}, "prior": ...}')
        name, params = config.get("method") or DEFAULT_METHOD, dict(config.get("parameters", {}))
        if config.get("prior"):
            params["prior"] = str(config["prior"])
    if name not in METHODS:
        raise MriGenpriorError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return make_method(name, **params)


def reconstruct_slice(xml: str, acquisitions: List, method, device=None) -> Tuple[np.ndarray, dict]:
    """``(recon (recon_x, recon_y) float32, info)`` of one slice's acquisitions: written as an
    ISMRMRD file (a temporary one) and reconstructed as ``mri-genprior reconstruct`` would."""
    import ismrmrd

    from .recon import ReconOptions, reconstruct_volume

    with tempfile.TemporaryDirectory(prefix="mri_genprior_serve_") as tmp:
        path = Path(tmp) / "slice.h5"
        with ismrmrd.Dataset(str(path), "dataset", mode="w") as dataset:
            dataset.write_xml_header(xml)
            for acquisition in acquisitions:
                dataset.append_acquisition(acquisition)
        recon, info = reconstruct_volume(path, method, ReconOptions(device=device, progress=False))
    return recon[0], info


def to_image(recon: np.ndarray, acquisition, fov, numbers: Tuple[int, int], method, info: dict):
    """An ISMRMRD float image of ``recon`` ``(x, y)`` with the geometry of ``acquisition``,
    its ``numbers`` ``(series, index)``."""
    series, index = numbers
    import ismrmrd

    image = ismrmrd.Image.from_array(np.ascontiguousarray(recon.T, dtype=np.float32), acquisition=acquisition,
                                     image_type=ismrmrd.IMTYPE_MAGNITUDE, image_index=index,
                                     image_series_index=series)
    if fov is not None:
        image.field_of_view[:] = [float(v) for v in fov]
    meta = ismrmrd.Meta({"DataRole": "Image", "ImageProcessingHistory": ["MRI_GENPRIOR"],
                         "mri_genprior_method": method.name,
                         "mri_genprior_settings": json.dumps(info["settings"], sort_keys=True)})
    image.attribute_string = meta.serialize()
    return image


def _key(acquisition) -> Tuple[int, ...]:
    return tuple(int(getattr(acquisition.idx, name)) for name in COUNTERS)


class Session:
    """One client connection: messages in, images out (see the module docstring)."""

    def __init__(self, sock, slots: threading.Semaphore, device=None):
        self.stream, self.slots, self.device = mrd.Stream(sock), slots, device
        self.method, self.xml, self.fov = None, None, None
        self.pending: Dict[Tuple[int, ...], List] = {}
        self.counts: Dict[int, int] = {}

    def run(self) -> None:
        try:
            self._serve()
        except (MriGenpriorError, OSError) as err:
            log.warning("connection %s ended: %s", self._peer(), err)
            self._error(str(err))

    def _peer(self) -> str:
        try:
            return "%s:%s" % self.stream.sock.getpeername()[:2]
        except OSError:
            return "(gone)"

    def _error(self, message: str) -> None:
        try:
            self.stream.send_text(f"ERR {message}")
            self.stream.send_close()
        except OSError:
            pass  # the client has gone: nothing to tell it

    def _serve(self) -> None:
        while True:
            identifier, body = self.stream.receive()
            if identifier is None:
                raise mrd.ProtocolError("the client left before close")
            if identifier in (mrd.CONFIG_FILE, mrd.CONFIG_TEXT):
                self.method = choose_method(identifier, body)
                log.info("%s: method %s", self._peer(), self.method.name)
            elif identifier == mrd.HEADER:
                self.fov = parse_header(body).fov_mm
                self.xml = body
            elif identifier == mrd.TEXT:
                log.info("%s: text %s", self._peer(), body[:200])
            elif identifier == mrd.ACQUISITION:
                self._add(body)
            elif identifier == mrd.CLOSE:
                for key in sorted(self.pending):
                    self._reconstruct(key)
                self.stream.send_close()
                return
            # images and waveforms: read, and not used

    def _add(self, acquisition) -> None:
        import ismrmrd

        if self.xml is None:
            raise mrd.ProtocolError("acquisition before the XML header")
        key = _key(acquisition)
        self.pending.setdefault(key, []).append(acquisition)
        if acquisition.is_flag_set(ismrmrd.ACQ_LAST_IN_SLICE):
            self._reconstruct(key)

    def _reconstruct(self, key: Tuple[int, ...]) -> None:
        import ismrmrd

        from .solvers import make_method

        acquisitions = self.pending.pop(key)
        self.method = self.method or make_method(DEFAULT_METHOD)
        with self.slots:
            recon, info = reconstruct_slice(self.xml, acquisitions, self.method, self.device)
        contrast, repetition = key[0], key[1]
        series = 1 + contrast + 100 * repetition
        self.counts[series] = self.counts.get(series, 0) + 1
        imaging = next((a for a in acquisitions if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)),
                       acquisitions[0])
        image = to_image(recon, imaging, self.fov, (series, self.counts[series]), self.method, info)
        self.stream.send_image(image)
        log.info("%s: sent slice %s (series %d)", self._peer(), key[3], series)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(host: str = "127.0.0.1", port: int = 9002, workers: int = 1, device=None) -> _Server:
    """A bound server (``server.server_address`` has the port; 0 picks a free one); run it with
    ``serve_forever()`` and stop it with ``shutdown()``."""
    if workers < 1:
        raise MriGenpriorError(f"--workers must be >= 1, got {workers}")
    slots = threading.BoundedSemaphore(workers)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            log.info("connection from %s:%s", *self.client_address[:2])
            Session(self.request, slots, device).run()

    return _Server((host, port), Handler)
