from __future__ import annotations

import array
import math
import random
import sys

import pytest

from dialler.fleet.audiosocket import FRAME_BYTES
from dialler.fleet.greeting import (
    GREETING_SECONDS,
    HEARD_THRESHOLD,
    SEQUENCE,
    detect_greeting,
    greeting,
    greeting_frames,
)

RATE = 8000


# --- G.711 μ-law, written out here: `audioop` is deprecated (and warnings are errors) -------


def ulaw_encode(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def ulaw_decode(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84 << (byte >> 4 & 0x07)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


def test_ulaw_helpers_follow_g711() -> None:
    assert ulaw_encode(0) == 0xFF and ulaw_decode(0xFF) == 0
    assert ulaw_encode(32767) == 0x80 and ulaw_decode(0x80) == 32124
    assert ulaw_encode(-32768) == 0x00 and ulaw_decode(0x00) == -32124
    for sample in (-20000, -1234, -5, 7, 100, 999, 12345):
        error = abs(ulaw_decode(ulaw_encode(sample)) - sample)
        assert error <= max(4, abs(sample) // 16)  # the quantisation step grows with level


# --- helpers -----------------------------------------------------------------------------


def samples_of(pcm: bytes) -> list[int]:
    values = array.array("h")
    values.frombytes(pcm)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def pcm_of(samples: list[int]) -> bytes:
    values = array.array("h", [max(-32768, min(32767, s)) for s in samples])
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def tones(pairs: list[tuple[float, ...]], seconds: float, amplitude: int = 8000) -> list[int]:
    each = round(seconds * RATE)
    return [
        round(amplitude * sum(math.sin(2 * math.pi * f * n / RATE) for f in freqs))
        for freqs in pairs
        for n in range(each)
    ]


def through_the_network(pcm: bytes, delay_ms: float, noise: float, seed: int = 7) -> bytes:
    """What the worker hears back: delayed, with line noise, through μ-law both ways."""
    rng = random.Random(seed)
    delayed = [0] * round(delay_ms * RATE / 1000) + samples_of(pcm) + [0] * RATE
    noisy = [s + round(rng.gauss(0, noise)) for s in delayed]
    return pcm_of([ulaw_decode(ulaw_encode(max(-32768, min(32767, s)))) for s in noisy])


# --- the greeting ------------------------------------------------------------------------


def test_greeting_format() -> None:
    pcm = greeting()
    assert GREETING_SECONDS == 1.5
    assert len(pcm) == 1.5 * RATE * 2 == 24_000
    frames = greeting_frames()
    assert len(frames) == 75 and all(len(f) == FRAME_BYTES for f in frames)
    assert b"".join(frames) == pcm
    samples = samples_of(pcm)
    peak = max(abs(s) for s in samples)
    assert 12_000 < peak < 20_000  # loud enough to be heard, far from clipping
    assert samples[0] == 0  # faded in: no click at the start
    assert len(SEQUENCE) == 6 and len(set(SEQUENCE)) == 6


def test_greeting_is_what_the_detector_looks_for() -> None:
    assert detect_greeting(greeting()) > 0.95


@pytest.mark.parametrize("delay_ms", [0, 7, 20, 55, 113, 160, 200])
def test_detected_after_g711_delay_and_noise(delay_ms: int) -> None:
    heard = through_the_network(greeting(), delay_ms, noise=800)  # about 20 dB below
    assert detect_greeting(heard) > 0.8


def test_detected_despite_jitter() -> None:
    samples = samples_of(greeting())
    # A jitter buffer that inserted 40 ms mid-greeting, then lost a 20 ms frame.
    jittered = samples[:5000] + [0] * 320 + samples[5000:9000] + samples[9160:]
    assert detect_greeting(through_the_network(pcm_of(jittered), 60, noise=300)) > 0.8


def test_detected_at_any_level() -> None:
    quiet = pcm_of([s // 16 for s in samples_of(greeting())])  # 24 dB down
    assert detect_greeting(through_the_network(quiet, 40, noise=20)) > 0.8


def test_only_what_was_heard_counts() -> None:
    half = greeting()[: len(greeting()) // 2]
    assert 0.4 < detect_greeting(half) < 0.6


def test_found_within_max_delay_only() -> None:
    late = through_the_network(greeting(), 3000, noise=100)
    assert detect_greeting(late) > 0.8
    assert detect_greeting(late, max_delay=1.0) < HEARD_THRESHOLD


def test_silence_scores_zero() -> None:
    assert detect_greeting(b"") == 0.0
    assert detect_greeting(bytes(3 * RATE * 2)) == 0.0
    assert detect_greeting(through_the_network(bytes(RATE * 2), 0, noise=5)) == 0.0


def test_noise_scores_low() -> None:
    rng = random.Random(3)
    noise = pcm_of([round(rng.gauss(0, 3000)) for _ in range(3 * RATE)])
    assert detect_greeting(noise) < 0.1


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(tones([(1000,)], 3.0), id="1 kHz tone"),
        pytest.param(
            tones(
                [(697, 1209), (770, 1336), (852, 1477), (941, 1633), (697, 1336), (770, 1477)], 0.25
            ),
            id="DTMF digits",
        ),
        pytest.param(tones([(540, 1040, 1400, 1820, 2300, 2860)], 1.5, 3000), id="all six at once"),
        pytest.param(
            tones([(540,), (1040,), (1400,), (1820,), (2300,), (2860,)], 0.25),
            id="its tones one by one",
        ),
        pytest.param(tones(list(reversed(SEQUENCE)), 0.25), id="its pairs in reverse"),
    ],
)
def test_other_sounds_score_low(other: list[int]) -> None:
    assert detect_greeting(pcm_of(other)) < 0.3


def test_chirp_scores_low() -> None:
    sweep = [
        round(12000 * math.sin(2 * math.pi * (300 * t + 900 * t * t)))
        for t in (n / RATE for n in range(3 * RATE))
    ]  # 300 Hz → 3.3 kHz in 1.5 s
    assert detect_greeting(pcm_of(sweep)) < 0.2


def test_odd_length_input_is_accepted() -> None:
    assert detect_greeting(greeting() + b"\x01") > 0.95
