"""The AudioSocket protocol: how Asterisk's `AudioSocket()` talks to a bot worker over TCP.

Every message is a 3-byte header — one byte of kind, two bytes of payload length (unsigned,
big-endian) — followed by the payload. Asterisk opens the connection and sends the call's
UUID first (16 bytes, the binary form of the id given to ``AudioSocket(<uuid>,host:port)``),
then one audio message per frame it reads from the channel: signed linear 16-bit
little-endian, 8 kHz mono, normally 20 ms = 320 bytes. Either side may send hang-up (kind
0x00, no payload); closing the socket means the same. Asterisk reports trouble with kind
0xff (payload: an optional one-byte, bit-packed code) and, on recent versions, forwards DTMF
digits as kind 0x03 (one ASCII byte).

Pure protocol, no I/O policy: `encode` builds a message, `FrameReader` cuts a byte stream into
frames whatever the TCP segmentation, `read_frame` reads one frame from an asyncio stream.
"""

from __future__ import annotations

import asyncio
import enum
import struct
import uuid
from dataclasses import dataclass

from ..errors import DiallerError

__all__ = [
    "FRAME_BYTES",
    "HEADER_BYTES",
    "MAX_PAYLOAD",
    "SAMPLE_RATE",
    "AudioSocketError",
    "Frame",
    "FrameReader",
    "InvalidFrame",
    "Kind",
    "TruncatedFrame",
    "UnknownKind",
    "audio",
    "encode",
    "error",
    "hangup",
    "read_frame",
    "uuid_frame",
]

HEADER_BYTES = 3
MAX_PAYLOAD = 0xFFFF
SAMPLE_RATE = 8000
#: One 20 ms frame of 8 kHz 16-bit mono audio: what Asterisk sends and expects.
FRAME_BYTES = SAMPLE_RATE // 50 * 2

_HEADER = struct.Struct(">BH")


class Kind(enum.IntEnum):
    """Message kinds of the AudioSocket protocol (Asterisk's `ast_audiosocket_msg_kind`)."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


_KINDS = frozenset(kind.value for kind in Kind)


class AudioSocketError(DiallerError):
    """The AudioSocket peer broke the protocol."""


class UnknownKind(AudioSocketError):
    """An AudioSocket message of an unknown kind."""

    def __init__(self, kind: int) -> None:
        self.kind = kind
        super().__init__(
            f"unknown AudioSocket message kind 0x{kind:02x} (known: "
            + ", ".join(f"0x{k.value:02x} {k.name.lower()}" for k in Kind)
            + ")"
        )


class TruncatedFrame(AudioSocketError):
    """The stream ended in the middle of an AudioSocket message."""

    def __init__(self, have: int, need: int) -> None:
        self.have = have
        self.need = need
        super().__init__(
            f"the stream ended inside an AudioSocket message: {have} of {need} bytes received"
        )


class InvalidFrame(AudioSocketError):
    """An AudioSocket message whose payload does not fit its kind."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One AudioSocket message. Build it with `Frame.of` to have the payload checked."""

    kind: Kind
    payload: bytes = b""

    @classmethod
    def of(cls, kind: int, payload: bytes = b"") -> Frame:
        """The frame of `kind` with `payload`; `UnknownKind` or `InvalidFrame` if it cannot be.

        The checks are Asterisk's own: a UUID is 16 bytes, audio is a non-empty whole number
        of 16-bit samples (Asterisk drops the call on an empty audio message), hang-up carries
        nothing, DTMF one digit.
        """
        try:
            known = Kind(kind)
        except ValueError:
            raise UnknownKind(kind) from None
        if len(payload) > MAX_PAYLOAD:
            raise InvalidFrame(
                f"{known.name.lower()} payload of {len(payload)} bytes is over "
                f"the protocol's limit of {MAX_PAYLOAD}"
            )
        problem = _payload_problem(known, len(payload))
        if problem is not None:
            raise InvalidFrame(f"{known.name.lower()} message: {problem}")
        return cls(known, bytes(payload))

    @property
    def call_id(self) -> uuid.UUID:
        """The call's id carried by a UUID frame."""
        if self.kind is not Kind.UUID:
            raise InvalidFrame(f"a {self.kind.name.lower()} message carries no call id")
        return uuid.UUID(bytes=self.payload)

    @property
    def error_code(self) -> int | None:
        """The code of an error frame (Asterisk: 0x01 hang-up of the calling party, 0x02
        frame forwarding error, 0x04 memory error), None when it sent none."""
        return self.payload[0] if self.kind is Kind.ERROR and self.payload else None

    def encode(self) -> bytes:
        return _HEADER.pack(self.kind, len(self.payload)) + self.payload


def _payload_problem(kind: Kind, size: int) -> str | None:
    if kind is Kind.UUID and size != 16:
        return f"expected a 16-byte UUID, got {size} bytes"
    if kind is Kind.HANGUP and size != 0:
        return f"expected no payload, got {size} bytes"
    if kind is Kind.DTMF and size != 1:
        return f"expected one digit, got {size} bytes"
    if kind is Kind.AUDIO and (size == 0 or size % 2):
        return f"expected a non-empty whole number of 16-bit samples, got {size} bytes"
    return None


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    """The wire form of one message (header and payload in one buffer: Asterisk reads the
    header with a single `read`, so the two should leave in one write)."""
    return Frame.of(kind, payload).encode()


def audio(pcm: bytes) -> bytes:
    """An audio message carrying `pcm` (slin16 little-endian, 8 kHz mono)."""
    return encode(Kind.AUDIO, pcm)


def hangup() -> bytes:
    """The hang-up message: Asterisk hangs the channel up when it reads it."""
    return encode(Kind.HANGUP)


def error(code: int = 0x01) -> bytes:
    """An error message (one byte: `code`). Asterisk's `AudioSocket()` takes any message but
    audio and hang-up from the server as a failure and returns -1: under `TryExec` the dialplan
    then plays the abandon message (agi/dialler.conf), where a hang-up ends the call in
    silence."""
    return encode(Kind.ERROR, bytes([code]))


def uuid_frame(call_id: uuid.UUID | str) -> bytes:
    """The first message of a connection, as Asterisk sends it."""
    value = call_id if isinstance(call_id, uuid.UUID) else uuid.UUID(call_id)
    return encode(Kind.UUID, value.bytes)


def _parse_header(header: bytes | bytearray) -> tuple[int, int]:
    kind, length = _HEADER.unpack(header)
    if kind not in _KINDS:
        raise UnknownKind(kind)
    return kind, length


class FrameReader:
    """Cuts a byte stream into frames, whatever the TCP segmentation.

    `feed` takes the bytes of one read (a partial header, half a frame, several frames at
    once) and returns the frames completed by them; the rest waits for the next read. Call
    `close` at the end of the stream: it raises `TruncatedFrame` if a message was cut short.
    After an `AudioSocketError` the stream cannot be resynchronised; drop the connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        start = 0
        try:
            while len(self._buffer) - start >= HEADER_BYTES:
                kind, length = _parse_header(self._buffer[start : start + HEADER_BYTES])
                end = start + HEADER_BYTES + length
                if end > len(self._buffer):
                    break
                frames.append(Frame.of(kind, bytes(self._buffer[start + HEADER_BYTES : end])))
                start = end
        finally:
            del self._buffer[:start]
        return frames

    def close(self) -> None:
        """The stream has ended: `TruncatedFrame` if part of a message is left over."""
        if not self._buffer:
            return
        need = HEADER_BYTES
        if len(self._buffer) >= HEADER_BYTES:
            need += _parse_header(self._buffer[:HEADER_BYTES])[1]
        raise TruncatedFrame(len(self._buffer), need)


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame from `reader`; None when the stream ends cleanly between frames.

    Raises `UnknownKind` as soon as a header names an unknown kind (its payload is not read),
    `TruncatedFrame` if the stream ends inside a message, `InvalidFrame` if a payload does
    not fit its kind.
    """
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise TruncatedFrame(len(exc.partial), HEADER_BYTES) from None
    kind, length = _parse_header(header)
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise TruncatedFrame(HEADER_BYTES + len(exc.partial), HEADER_BYTES + length) from None
    return Frame.of(kind, payload)
