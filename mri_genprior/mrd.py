"""The MRD streaming protocol: the messages Gadgetron, Siemens FIRE and the open
python-ismrmrd-server exchange over TCP ("MRD Streaming Format", kspaceKelvin/python-ismrmrd-server).

Every message is a little-endian ``uint16`` identifier and a body:

=====  =================  =====================================================
 ID    message            body
=====  =================  =====================================================
 1     config file        1024 bytes, a NUL-padded name
 2     config text        ``uint32`` length, text (NUL-terminated)
 3     XML header         ``uint32`` length, ISMRMRD header XML (NUL-terminated)
 4     close              none
 5     text               ``uint32`` length, text (NUL-terminated)
 1008  acquisition        ISMRMRD acquisition header (340 bytes), trajectory, data
 1022  image              ISMRMRD image header (198 bytes), ``uint64`` attribute
                          length, attribute text, pixel data
 1026  waveform           ISMRMRD waveform header (240 bytes), ``uint32`` data
=====  =================  =====================================================

:class:`Stream` reads and writes these on a socket; the acquisition, image and waveform
bodies are (de)serialised by the ``ismrmrd`` package.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Optional, Tuple

import numpy as np

from . import MriGenpriorError

CONFIG_FILE, CONFIG_TEXT, HEADER, CLOSE, TEXT = 1, 2, 3, 4, 5
ACQUISITION, IMAGE, WAVEFORM = 1008, 1022, 1026
NAMES = {CONFIG_FILE: "config file", CONFIG_TEXT: "config text", HEADER: "XML header", CLOSE: "close",
         TEXT: "text", ACQUISITION: "acquisition", IMAGE: "image", WAVEFORM: "waveform"}
CONFIG_FILE_BYTES = 1024
MAX_TEXT_BYTES = 64 * 2 ** 20      # a longer text or header is taken for garbage
MAX_SAMPLES = 2 ** 26              # samples × channels of one acquisition, likewise


class ProtocolError(MriGenpriorError):
    """A malformed, truncated or unknown message: the connection cannot go on."""


class Stream:
    """MRD messages over a connected ``socket``: :meth:`receive` one at a time, ``send_*`` back."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def read(self, count: int) -> bytes:
        """Exactly ``count`` bytes; :class:`ProtocolError` if the peer closes first."""
        chunks, left = [], count
        while left:
            chunk = self.sock.recv(min(left, 2 ** 20))
            if not chunk:
                raise ProtocolError(f"connection closed {count - left} bytes into a {count}-byte field")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _text(self) -> str:
        (length,) = struct.unpack("<I", self.read(4))
        if length > MAX_TEXT_BYTES:
            raise ProtocolError(f"a {length}-byte text message is beyond the {MAX_TEXT_BYTES}-byte limit")
        return self.read(length).split(b"\0", 1)[0].decode("utf-8", errors="replace")

    def _replaying(self, head: bytes):
        """A reader that returns ``head`` first (its size already checked), then reads the socket."""
        pending = [head]

        def read(count: int) -> bytes:
            return pending.pop() if pending else self.read(count)

        return read

    def _acquisition(self):
        import ismrmrd

        head = self.read(ctypes.sizeof(ismrmrd.AcquisitionHeader))
        header = ismrmrd.AcquisitionHeader.from_buffer_copy(head)
        if header.number_of_samples * (header.active_channels + header.trajectory_dimensions) > MAX_SAMPLES:
            raise ProtocolError(f"an acquisition of {header.number_of_samples} samples × {header.active_channels} "
                                "channels is beyond the size limit")
        return ismrmrd.Acquisition.deserialize_from(self._replaying(head))

    def _image(self):
        import ismrmrd

        head = self.read(ctypes.sizeof(ismrmrd.ImageHeader))
        header = ismrmrd.ImageHeader.from_buffer_copy(head)
        values = header.channels * header.matrix_size[0] * header.matrix_size[1] * header.matrix_size[2]
        if values > MAX_SAMPLES:
            raise ProtocolError(f"an image of {values} values is beyond the size limit")
        (length,) = struct.unpack("<Q", self.read(8))
        if length > MAX_TEXT_BYTES:
            raise ProtocolError(f"image attributes of {length} bytes are beyond the size limit")
        attributes = self.read(length).split(b"\0", 1)[0].decode("utf-8", errors="replace")
        try:
            image = ismrmrd.Image(head, attributes)
        except (TypeError, ValueError) as err:
            raise ProtocolError(f"malformed image header ({err})") from err
        image.data.ravel()[:] = np.frombuffer(self.read(image.data.nbytes), dtype=image.data.dtype)
        return image

    def _waveform(self):
        import ismrmrd

        head = self.read(ctypes.sizeof(ismrmrd.WaveformHeader))
        header = ismrmrd.WaveformHeader.from_buffer_copy(head)
        if header.number_of_samples * header.channels > MAX_SAMPLES:
            raise ProtocolError("a waveform beyond the size limit")
        return ismrmrd.Waveform.deserialize_from(self._replaying(head))

    def receive(self) -> Tuple[Optional[int], object]:
        """The next message as ``(ID, body)``: a ``str`` for 1, 2, 3 and 5, None for close,
        an ``ismrmrd`` Acquisition, Image or Waveform for the others; ``(None, None)`` when
        the peer has closed the connection between messages."""
        first = self.sock.recv(2)
        if not first:
            return None, None
        identifier = struct.unpack("<H", first + (self.read(1) if len(first) == 1 else b""))[0]
        if identifier == CONFIG_FILE:
            return identifier, self.read(CONFIG_FILE_BYTES).split(b"\0", 1)[0].decode("utf-8", errors="replace")
        if identifier in (CONFIG_TEXT, HEADER, TEXT):
            return identifier, self._text()
        if identifier == CLOSE:
            return identifier, None
        readers = {ACQUISITION: self._acquisition, IMAGE: self._image, WAVEFORM: self._waveform}
        if identifier not in readers:
            raise ProtocolError(f"unknown message identifier {identifier}")
        return identifier, readers[identifier]()

    def _send(self, identifier: int, body: bytes = b"") -> None:
        self.sock.sendall(struct.pack("<H", identifier) + body)

    def send_config_file(self, name: str) -> None:
        self._send(CONFIG_FILE, name.encode()[:CONFIG_FILE_BYTES - 1].ljust(CONFIG_FILE_BYTES, b"\0"))

    def send_text(self, text: str, identifier: int = TEXT) -> None:
        """A text message (``identifier`` 2 or 3 for config text or the XML header), NUL-terminated."""
        data = text.encode() + b"\0"
        self._send(identifier, struct.pack("<I", len(data)) + data)

    def send_close(self) -> None:
        self._send(CLOSE)

    def send_acquisition(self, acquisition) -> None:
        self._send(ACQUISITION, acquisition.to_bytes())

    def send_image(self, image) -> None:
        self._send(IMAGE, image.to_bytes())

