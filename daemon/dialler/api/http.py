"""What every route of the HTTP listener shares: the application's keys (config, pool, the
daemon's callables), reading JSON bodies and their fields, and streamed answers.

The shapes of the request itself (not JSON, a key twice, an unknown or missing field, the
wrong media type, too large) are refused with `ApiError`; a field with a bad value with
`errors.InvalidField`, like every other refusal of the package (`answers` turns both into the
JSON error answer).
"""

from __future__ import annotations

import asyncio
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
from .limits import (
    BODY_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_CONNECTIONS,
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    MAX_JSON_DEPTH,
    MAX_LINE_SIZE,
    SHUTDOWN_TIMEOUT,
)

__all__ = [
    "CONFIG",
    "ON_RESULT",
    "OPENAPI",
    "POOL",
    "READINESS",
    "TEST_CALL",
    "ApiError",
    "CallProgress",
    "CappedSite",
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
    "parse_json_object",
    "seconds_field",
    "serve",
    "streaming",
    "string_field",
]

#: Where a worker's result goes (the daemon's `Engine.record_result`): `FINAL` or `STORED`;
#: raises `errors.UnknownCall` or `errors.AlreadyFinal`.
ResultSink = Callable[[uuid.UUID, WorkerResult], Awaitable[ResultRecorded]]
#: Extra readiness checks (`make_app(readiness=...)`): name → up, e.g. `{"ami:pbx1": True}`.
Readiness = Callable[[], Awaitable[dict[str, bool]]]
#: What `/readyz` shows besides its checks (`make_app(readiness_detail=...)`): top-level keys
#: of its body, e.g. `{"asterisk_servers": [...]}` — informative, never a reason to fail.
ReadinessDetail = Callable[[], dict[str, object]]


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
READINESS_DETAIL: web.AppKey[ReadinessDetail | None] = web.AppKey("readiness_detail")
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
    """The request's JSON object (at most `limits.MAX_BODY` bytes, read within
    `limits.BODY_TIMEOUT`); 400 when it is not one: not UTF-8, a lone surrogate (`\\ud800`,
    which nothing downstream could encode), nested deeper than `limits.MAX_JSON_DEPTH`."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(408, "timeout", "the body was not received in time") from None
    return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object (`json_body` without the reading; the fuzz tests call it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not UTF-8 (byte {exc.start})") from None
    _check_depth(text)
    try:
        body = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    _check_text(body, "")
    return body


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than `MAX_JSON_DEPTH` before parsing (the parser recurses): a
    bracket inside a string counts too, which only ever refuses a body that is odd anyway."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ApiError(
                    400, "bad_json", f"the body is nested deeper than {MAX_JSON_DEPTH} levels"
                )
        elif char in "]}":
            depth -= 1


def _check_text(value: object, path: str) -> None:
    """Every string (keys too) encodable as UTF-8: JSON escapes can spell a lone surrogate."""
    if isinstance(value, str):
        if not _encodable(value):
            raise ApiError(400, "bad_json", f"{path or 'the body'} holds a lone surrogate", path)
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not _encodable(key):
                raise ApiError(400, "bad_json", "a key holds a lone surrogate")
            _check_text(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{path}[{index}]")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


# --- the listener ------------------------------------------------------------------------------


class _Refused(asyncio.Protocol):
    """A connection over `limits.MAX_CONNECTIONS`: closed at once (the client may retry)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class CappedSite(web.BaseSite):
    """`web.TCPSite` with a cap on open connections (`limits.MAX_CONNECTIONS`): one more is
    closed as soon as it is accepted, so held-open connections cannot exhaust the daemon."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, cap: int) -> None:
        super().__init__(runner)
        self._host, self._port, self._cap = host, port, cap

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one the system chose for 0)."""
        return self._port

    async def start(self) -> None:
        """Listen; every connection past the cap is closed on arrival."""
        await super().start()
        server = self._runner.server
        assert server is not None
        cap = self._cap

        def factory() -> asyncio.BaseProtocol:
            if len(server.connections) >= cap:
                return _Refused()
            return server()

        self._server = await asyncio.get_running_loop().create_server(
            factory, self._host, self._port, backlog=self._backlog
        )
        if self._server.sockets:
            self._port = self._server.sockets[0].getsockname()[1]


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port with the listener's limits (`limits`: idle and header
    timeout, line and header sizes, connection cap); the runner (`runner.cleanup()` stops
    it) and the bound port (port 0: the system's pick)."""
    runner = web.AppRunner(
        app,
        access_log=None,  # access logs would carry call ids only, but one line per request
        keepalive_timeout=idle_timeout,  # is noise; also closes a connection that never
        max_line_size=MAX_LINE_SIZE,  # completes its request's headers
        max_field_size=MAX_FIELD_SIZE,
        max_headers=MAX_HEADERS,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    site = CappedSite(runner, host, port, max_connections)
    await site.start()
    return runner, site.port
