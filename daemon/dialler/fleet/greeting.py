"""The reference worker's greeting, and the detector that proves it came back.

The greeting is 1.5 s of slin16 8 kHz mono made in code: six 250 ms dual tones, each a pair
of one "low" frequency (540, 1040, 1400 Hz) and one "high" one (1820, 2300, 2860 Hz), in a
fixed order in which every pair is different and every frequency is used twice. None of them
is a DTMF, call-progress, fax or MF tone, so nothing on the path (an inband DTMF detector,
say) mistakes the greeting for signalling and mutes it.

`detect_greeting` scores how clearly a recording holds the greeting. For every 20 ms block
it measures, with a single-frequency DFT per tone, which fraction of the block's energy sits
at each of the six frequencies. A block scores, for a segment of the greeting, twice the
weaker of that segment's two tones (a lone tone of the pair scores nothing) minus the
fraction at the four others. The score of a recording is the best, over the possible delays,
of the mean segment score: about 1 for the greeting itself, still high after G.711
(μ-law/A-law) quantisation, a delay, jitter of a block or so and moderate noise; about 0 for
silence, noise, broadband sound or other tones. Only blocks well inside each segment count,
so a delay that is not a whole number of blocks costs nothing.
"""

from __future__ import annotations

import array
import math
import sys
from functools import cache
from operator import mul

from .audiosocket import FRAME_BYTES, SAMPLE_RATE

__all__ = [
    "GREETING_SECONDS",
    "HEARD_THRESHOLD",
    "SEQUENCE",
    "detect_greeting",
    "greeting",
    "greeting_frames",
]

#: The greeting's tone pairs (Hz), in order; each lasts `_SEGMENT` samples.
SEQUENCE: tuple[tuple[int, int], ...] = (
    (540, 1820),
    (1040, 2300),
    (1400, 2860),
    (540, 2300),
    (1040, 2860),
    (1400, 1820),
)
_SEGMENT = SAMPLE_RATE // 4  # 250 ms
_SAMPLES = _SEGMENT * len(SEQUENCE)
GREETING_SECONDS = _SAMPLES / SAMPLE_RATE  # 1.5 s
#: A score at or above this means the greeting was heard.
HEARD_THRESHOLD = 0.5

_AMPLITUDE = 8000  # per tone: about -12 dBFS, the pair peaks at about -6 dBFS
_FADE = SAMPLE_RATE // 200  # 5 ms raised-cosine edges: no clicks between segments
_BLOCK = FRAME_BYTES // 2  # analysis block: one 20 ms frame, 160 samples
_JITTER_BLOCKS = 1  # blocks ignored at each segment edge beyond the minimum
_SILENT_ENERGY = _BLOCK * 32.0**2  # a block under about -60 dBFS carries nothing
_FREQUENCIES = tuple(sorted({f for pair in SEQUENCE for f in pair}))


@cache
def greeting() -> bytes:
    """The greeting: 1.5 s of signed 16-bit little-endian PCM, 8 kHz mono (24,000 bytes)."""
    samples = array.array("h")
    for low, high in SEQUENCE:
        for n in range(_SEGMENT):
            edge = min(n, _SEGMENT - 1 - n)
            gain = 1.0 if edge >= _FADE else 0.5 - 0.5 * math.cos(math.pi * edge / _FADE)
            t = n / SAMPLE_RATE
            value = (
                _AMPLITUDE
                * gain
                * (math.sin(2 * math.pi * low * t) + math.sin(2 * math.pi * high * t))
            )
            samples.append(round(value))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def greeting_frames() -> list[bytes]:
    """The greeting cut into 20 ms frames of 320 bytes (75 of them)."""
    data = greeting()
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


@cache
def _tables() -> dict[int, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Cosine and sine of each tone over one block, for a DFT at exactly that frequency."""
    return {
        f: (
            tuple(math.cos(2 * math.pi * f * n / SAMPLE_RATE) for n in range(_BLOCK)),
            tuple(math.sin(2 * math.pi * f * n / SAMPLE_RATE) for n in range(_BLOCK)),
        )
        for f in _FREQUENCIES
    }


def _fractions(block: array.array[int]) -> dict[int, float] | None:
    """Which fraction of the block's energy lies at each tone (a lone sine scores 1, each
    tone of an equal pair 0.5, white noise about 2/160); None for a silent block."""
    energy = float(sum(map(mul, block, block)))
    if energy < _SILENT_ENERGY:
        return None
    scale = _BLOCK / 2 * energy
    fractions: dict[int, float] = {}
    for f, (cosines, sines) in _tables().items():
        re = sum(map(mul, block, cosines))
        im = sum(map(mul, block, sines))
        fractions[f] = (re * re + im * im) / scale
    return fractions


def _segment_scores(fractions: dict[int, float] | None) -> tuple[float, ...]:
    """How well one block matches each segment of the greeting (from -1 to 1)."""
    if fractions is None:
        return (0.0,) * len(SEQUENCE)
    total = sum(fractions.values())
    # Both tones of the pair must be there, in balance (a lone tone of the pair scores 0),
    # and nothing at the other four.
    return tuple(
        2 * min(fractions[low], fractions[high]) - (total - fractions[low] - fractions[high])
        for low, high in SEQUENCE
    )


def _segment_blocks(index: int) -> range:
    """Blocks (counted from the block the greeting starts in) lying wholly inside segment
    `index` whatever the delay within that first block, less the jitter margin."""
    first = -(-_SEGMENT * index // _BLOCK) + 1 + _JITTER_BLOCKS
    last = _SEGMENT * (index + 1) // _BLOCK - 1 - _JITTER_BLOCKS
    return range(first, last + 1)


def detect_greeting(received: bytes, *, max_delay: float = 5.0) -> float:
    """How clearly `received` (slin16 8 kHz mono) holds the greeting, from 0 to 1.

    The greeting may start anywhere in the first `max_delay` seconds; later audio is not
    looked at, so a long call costs no more than a short one. A score of `HEARD_THRESHOLD`
    or more means the greeting was heard.
    """
    samples = array.array("h")
    usable = len(received) - len(received) % 2
    limit = 2 * (_SAMPLES + round(max_delay * SAMPLE_RATE) + _BLOCK)
    samples.frombytes(received[: min(usable, limit)])
    if sys.byteorder == "big":
        samples.byteswap()
    blocks = [
        _segment_scores(_fractions(samples[i : i + _BLOCK]))
        for i in range(0, len(samples) - _BLOCK + 1, _BLOCK)
    ]
    if not blocks:
        return 0.0
    windows = [_segment_blocks(i) for i in range(len(SEQUENCE))]
    last_lag = min(len(blocks) - 1, round(max_delay * SAMPLE_RATE / _BLOCK))
    best = 0.0
    for lag in range(last_lag + 1):
        # Blocks past the end of the recording count as silence: a cut-off greeting scores
        # in proportion to what was heard.
        per_segment = [
            sum(blocks[lag + b][index] for b in window if lag + b < len(blocks)) / len(window)
            for index, window in enumerate(windows)
        ]
        best = max(best, sum(per_segment) / len(per_segment))
    return min(1.0, best)
