from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialler.fleet.audiosocket import (
    FRAME_BYTES,
    Frame,
    FrameReader,
    InvalidFrame,
    Kind,
    TruncatedFrame,
    UnknownKind,
    audio,
    encode,
    hangup,
    read_frame,
    uuid_frame,
)

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


def test_wire_format_matches_the_protocol() -> None:
    assert hangup() == b"\x00\x00\x00"
    assert uuid_frame(CALL) == b"\x01\x00\x10" + CALL.bytes
    assert uuid_frame(str(CALL)) == uuid_frame(CALL)
    pcm = bytes(range(256)) + bytes(64)
    assert audio(pcm) == b"\x10\x01\x40" + pcm  # 320 = 0x0140, big-endian
    assert encode(Kind.ERROR, b"\x01") == b"\xff\x00\x01\x01"
    assert encode(Kind.DTMF, b"5") == b"\x03\x00\x015"


def test_frame_helpers() -> None:
    (frame,) = FrameReader().feed(uuid_frame(CALL))
    assert frame.kind is Kind.UUID
    assert frame.call_id == CALL
    (error,) = FrameReader().feed(encode(Kind.ERROR, b"\x02"))
    assert error.error_code == 2
    (bare,) = FrameReader().feed(encode(Kind.ERROR))
    assert bare.error_code is None
    with pytest.raises(InvalidFrame, match="carries no call id"):
        _ = Frame.of(Kind.AUDIO, bytes(2)).call_id


def _messages() -> st.SearchStrategy[list[Frame]]:
    audio_frame = st.binary(min_size=1, max_size=700).map(
        lambda b: Frame.of(Kind.AUDIO, b + b"\x00" if len(b) % 2 else b)
    )
    fixed = st.sampled_from(
        [
            Frame.of(Kind.HANGUP),
            Frame.of(Kind.UUID, CALL.bytes),
            Frame.of(Kind.DTMF, b"#"),
            Frame.of(Kind.ERROR, b"\x04"),
            Frame.of(Kind.ERROR),
        ]
    )
    return st.lists(audio_frame | fixed, max_size=20)


@given(frames=_messages(), data=st.data())
def test_round_trip_whatever_the_segmentation(frames: list[Frame], data: st.DataObject) -> None:
    stream = b"".join(f.encode() for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    reader = FrameReader()
    decoded: list[Frame] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += reader.feed(stream[start:end])
    reader.close()
    assert decoded == frames
    assert reader.pending == 0


def test_split_reads_byte_by_byte() -> None:
    stream = uuid_frame(CALL) + audio(bytes(FRAME_BYTES)) + hangup()
    reader = FrameReader()
    seen: list[Frame] = []
    for i in range(len(stream)):
        got = reader.feed(stream[i : i + 1])
        # A frame comes out exactly when its last byte arrives, not before.
        assert bool(got) == (i + 1 in (19, 19 + 323, len(stream)))
        seen += got
    assert [f.kind for f in seen] == [Kind.UUID, Kind.AUDIO, Kind.HANGUP]


def test_merged_reads() -> None:
    stream = uuid_frame(CALL) + audio(b"\x01\x02" * 160) * 3 + hangup()
    reader = FrameReader()
    frames = reader.feed(stream[:-2])  # three whole frames, the hang-up's header cut short
    assert [f.kind for f in frames] == [Kind.UUID, Kind.AUDIO, Kind.AUDIO, Kind.AUDIO]
    assert reader.pending == 1
    assert [f.kind for f in reader.feed(stream[-2:])] == [Kind.HANGUP]


@pytest.mark.parametrize(
    ("stream", "have", "need"),
    [
        (b"\x10", 1, 3),  # inside the header
        (b"\x10\x01\x40" + bytes(100), 103, 323),  # inside the payload
        (b"\x01\x00\x10" + bytes(15), 18, 19),
    ],
)
def test_truncated_frame(stream: bytes, have: int, need: int) -> None:
    reader = FrameReader()
    assert reader.feed(stream) == []
    with pytest.raises(TruncatedFrame) as info:
        reader.close()
    assert (info.value.have, info.value.need) == (have, need)
    assert f"{have} of {need} bytes" in str(info.value)


def test_unknown_kind() -> None:
    reader = FrameReader()
    with pytest.raises(UnknownKind, match="unknown AudioSocket message kind 0x02") as info:
        reader.feed(audio(bytes(4)) + b"\x02\x00\x00")
    assert info.value.kind == 2
    with pytest.raises(UnknownKind, match="0x11"):
        encode(0x11, bytes(640))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "payload", "message"),
    [
        (Kind.UUID, bytes(15), "16-byte UUID"),
        (Kind.HANGUP, b"\x00", "no payload"),
        (Kind.AUDIO, b"", "non-empty"),
        (Kind.AUDIO, bytes(3), "16-bit samples"),
        (Kind.DTMF, b"12", "one digit"),
        (Kind.AUDIO, bytes(0x10000), "limit of 65535"),
    ],
)
def test_payload_must_fit_its_kind(kind: Kind, payload: bytes, message: str) -> None:
    with pytest.raises(InvalidFrame, match=message):
        encode(kind, payload)
    if len(payload) <= 0xFFFF:  # the same check applies on the way in
        raw = bytes([kind]) + len(payload).to_bytes(2, "big") + payload
        with pytest.raises(InvalidFrame, match=message):
            FrameReader().feed(raw)


def _stream(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_read_frame_reads_one_frame_at_a_time_and_none_at_eof() -> None:
    reader = _stream(uuid_frame(CALL) + audio(bytes(FRAME_BYTES)) + hangup())
    first = await read_frame(reader)
    assert first is not None and first.call_id == CALL
    second = await read_frame(reader)
    assert second == Frame.of(Kind.AUDIO, bytes(FRAME_BYTES))
    third = await read_frame(reader)
    assert third == Frame.of(Kind.HANGUP)
    assert await read_frame(reader) is None


async def test_read_frame_errors() -> None:
    with pytest.raises(TruncatedFrame, match="2 of 3 bytes"):
        await read_frame(_stream(b"\x10\x01"))
    with pytest.raises(TruncatedFrame, match="13 of 323 bytes"):
        await read_frame(_stream(b"\x10\x01\x40" + bytes(10)))
    with pytest.raises(UnknownKind):
        await read_frame(_stream(b"\x42\x00\x00"))
