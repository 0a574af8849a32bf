"""What every route of the HTTP listener shares: the application's keys (config, pool, the
daemon's callables), reading JSON bodies and their fields, and streamed answers.

The shapes of the request itself (not JSON, a key twice, an unknown or missing field, the
wrong media type, too large) are refused with `ApiError`; a field with a bad value with
`errors.InvalidField`, like every other refusal of the package (`answers` turns both into the
JSON error answer).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

from aiohttp import web

from ..config import Config
from ..domain.results import ResultRecorded, WorkerResult
from ..errors import InvalidField, UnknownCall
from ..store.conn import Pool

__all__ = [
    "CONFIG",
    "ON_RESULT",
    "OPENAPI",
    "POOL",
    "READINESS",
    "TEST_CALL",
    "ApiError",
    "CallProgress",
    "ConfigRef",
    "Readiness",
    "ResultSink",
    "StreamAborted",
    "TestCaller",
    "attempt_id",
    "check_keys",
    "current_config",
    "int_field",
    "json_body",
    "json_object",
    "optional_string",
    "seconds_field",
    "streaming",
    "string_field",
]

#: Where a worker's result goes (the daemon's `Engine.record_result`): `FINAL` or `STORED`;
#: raises `errors.UnknownCall` or `errors.AlreadyFinal`.
ResultSink = Callable[[uuid.UUID, WorkerResult], Awaitable[ResultRecorded]]
#: Extra readiness checks (`make_app(readiness=...)`): name → up, e.g. `{"ami:pbx1": True}`.
Readiness = Callable[[], Awaitable[dict[str, bool]]]


class CallProgress(Protocol):
    """A test call being placed, as the stream follows it (the AMI tracker's call)."""

    @property
    def sent_at(self) -> float:
        """Wall-clock time (`time.time`) the originate was sent."""

    @property
    def stages(self) -> Sequence[tuple[str, float]]:
        """AMI stages seen so far (`ringing`, `answered`), with their times."""


#: Places a test call (the daemon's `Engine.test_call`): bot, to, caller ID, carrier and ring
#: timeout → the attempt id and the call. Raises `errors.UnknownBot` or a
#: `errors.TestCallRefused` (`TestCallInProgress`, `NoFreeWorker`, `DiallingUnavailable`).
TestCaller = Callable[[str, str, str, str, float], Awaitable[tuple[uuid.UUID, CallProgress]]]


class ConfigRef:
    """The daemon's current config: replaced on SIGHUP reload (the app itself is frozen)."""

    def __init__(self, config: Config) -> None:
        self.config = config


CONFIG = web.AppKey("config", ConfigRef)
POOL: web.AppKey[Pool] = web.AppKey("pool")
ON_RESULT: web.AppKey[ResultSink] = web.AppKey("on_result")
TEST_CALL: web.AppKey[TestCaller | None] = web.AppKey("test_call")
READINESS: web.AppKey[Readiness | None] = web.AppKey("readiness")
OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")


def current_config(request: web.Request) -> Config:
    """The config in force for this request (a reload swaps it)."""
    return request.app[CONFIG].config


class ApiError(Exception):
    """A request of the wrong shape (not a JSON object, an unknown or missing field, wrong
    media type, too large), refused before any work: status, code, message, field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


class StreamAborted(Exception):
    """A streamed answer failed after its status line was sent: only cutting the connection
    can tell the client, so the middleware lets this through to aiohttp, which does that."""


@contextlib.contextmanager
def streaming() -> Iterator[None]:
    """Around the writes of a response already prepared (see `StreamAborted`)."""
    try:
        yield
    except Exception as exc:
        raise StreamAborted(f"{type(exc).__name__}: {exc}") from exc


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise ApiError(400, "bad_json", f"key {key!r} appears twice in a JSON object", key)
        body[key] = value
    return body


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (at most `limits.MAX_BODY` bytes); 400 when it is not one."""
    try:
        body = json.loads(await request.text(), object_pairs_hook=_no_duplicate_keys)
    except ValueError:
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def check_keys(
    body: dict[str, Any], allowed: set[str], required: set[str], prefix: str = ""
) -> None:
    """No key of `body` outside `allowed`, every one of `required` (422 naming the field,
    `prefix` before it for a nested object: ``audio.``)."""
    for key in body:
        if key not in allowed:
            raise ApiError(422, "unknown_field", f"unknown field {prefix + key!r}", prefix + key)
    for key in sorted(required - body.keys()):
        raise ApiError(
            422, "missing_field", f"missing required field {prefix + key!r}", prefix + key
        )


async def json_object(
    request: web.Request, allowed: set[str], required: set[str]
) -> dict[str, Any]:
    """`json_body`, checked with `check_keys`."""
    body = await json_body(request)
    check_keys(body, allowed, required)
    return body


def string_field(body: dict[str, Any], key: str) -> str:
    """`body[key]`, a non-empty string; `InvalidField` otherwise."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidField(key, f"{key!r} must be a non-empty string")
    return value


def optional_string(body: dict[str, Any], key: str) -> str | None:
    """`string_field`, or None when the key is absent or null."""
    return None if body.get(key) is None else string_field(body, key)


def int_field(
    body: dict[str, Any], key: str, low: int, high: int, *, name: str | None = None
) -> int:
    """`body[key]`, an integer in `low..high` (not a bool); `InvalidField` naming `name`
    (default: the key) otherwise."""
    value = body.get(key)
    field = name or key
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidField(field, f"{field!r} must be an integer in {low}..{high}")
    return value


def seconds_field(body: dict[str, Any], key: str, default: float, *, high: float) -> float:
    """`body[key]`, a number of seconds in (0, high]; `default` when absent."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise InvalidField(key, f"{key!r} must be a number of seconds in (0, {high:g}]")
    return float(value)


def attempt_id(request: web.Request) -> uuid.UUID:
    """The `{attempt_id}` of the path; a string that is no UUID names no call (404)."""
    text = request.match_info["attempt_id"]
    try:
        return uuid.UUID(text)
    except ValueError:
        raise UnknownCall(text) from None
