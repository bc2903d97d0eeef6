"""``mri-genprior send``: stream an ISMRMRD raw file to an MRD server (:mod:`.server`, or any
server on the MRD streaming protocol, :mod:`.mrd`) and write the images it returns.

The acquisitions go out in file order after the method (a config file name, or JSON config
text for parameters and a prior) and the XML header, then close; a receiver thread collects
the images meanwhile, so a server that answers slice by slice never blocks on a full socket.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Optional

import h5py

from . import MriGenpriorError, mrd
from .io import atomic_path
from .readers.ismrmrd_raw import find_group
from .server import DEFAULT_METHOD


def send_file(path, host: str, port: int, out, method: Optional[str] = None, config: Optional[dict] = None) -> Path:
    """Stream the ISMRMRD raw file ``path`` to a server and write the images it returns to the
    ISMRMRD file ``out`` (atomically; nothing is written if the server reports an error)."""
    import ismrmrd

    with h5py.File(path, "r") as handle:
        group = find_group(handle)
    if group is None:
        raise MriGenpriorError(f"{path}: no ISMRMRD dataset (a group with 'xml' and 'data')")
    images, texts = [], []
    with socket.create_connection((host, port)) as sock:
        stream = mrd.Stream(sock)
        receiver = threading.Thread(target=_collect, args=(stream, images, texts), daemon=True)
        receiver.start()
        if config is not None:
            stream.send_text(json.dumps(config), mrd.CONFIG_TEXT)
        else:
            stream.send_config_file(method or DEFAULT_METHOD)
        with ismrmrd.Dataset(str(path), group, create_if_needed=False, mode="r") as dataset:
            xml = dataset.read_xml_header()
            stream.send_text(xml.decode() if isinstance(xml, bytes) else xml, mrd.HEADER)
            try:
                for i in range(dataset.number_of_acquisitions()):
                    stream.send_acquisition(dataset.read_acquisition(i))
                stream.send_close()
            except OSError:
                pass  # the server stopped reading: its reason arrives as text
        receiver.join()
    errors = [t for t in texts if t.startswith("ERR")]
    if errors:
        raise MriGenpriorError(f"server: {errors[0][3:].strip()}")
    if not images:
        raise MriGenpriorError("the server sent no images")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with ismrmrd.Dataset(str(tmp), "dataset", mode="w") as dataset:
            dataset.write_xml_header(xml)
            for image in images:
                dataset.append_image(f"images_{image.image_series_index}", image)
    return out


def _collect(stream: mrd.Stream, images: list, texts: list) -> None:
    """Receive until close: images into ``images``, texts into ``texts``."""
    try:
        while True:
            identifier, body = stream.receive()
            if identifier in (None, mrd.CLOSE):
                return
            if identifier == mrd.IMAGE:
                images.append(body)
            elif identifier == mrd.TEXT:
                texts.append(body)
    except (MriGenpriorError, OSError) as err:
        texts.append(f"ERR {err}")
