"""The HTTP listener's limits and fixed paths: plain constants, imported by the routes and by
the OpenAPI document alike (this module imports nothing)."""

from __future__ import annotations

__all__ = [
    "BODY_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "MAX_FIELD_SIZE",
    "MAX_HEADERS",
    "MAX_JSON_DEPTH",
    "MAX_LINE_SIZE",
    "MAX_UPLOAD_BYTES",
    "OPEN_PATHS",
    "READY_TIMEOUT",
    "REJECTED_ROWS_SHOWN",
    "WORKER_ROUTES",
    "WRITE_BYTES",
]

#: Largest JSON body (the CSV upload streams, with its own cap: `MAX_UPLOAD_BYTES`).
MAX_BODY = 64 * 1024
#: Largest contacts CSV accepted by the upload (413 beyond); not a config setting.
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
#: Rejected rows listed in an import's answer; the rest are only counted.
REJECTED_ROWS_SHOWN = 1000
#: Streamed answers (the call list, the report) go out in pieces of about this size.
WRITE_BYTES = 64 * 1024
#: Routes open without a token: probes, and the API's description.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v1/openapi.json"})
#: The bot workers' routes (method, route pattern): a worker token may use these and only
#: these; every other `/v1` route is an operator route (a viewer token: GET and HEAD only).
WORKER_ROUTES = frozenset(
    {
        ("POST", "/v1/workers"),
        ("POST", "/v1/workers/{name}/heartbeat"),
        ("POST", "/v1/workers/{name}/leave"),
        ("GET", "/v1/calls/{attempt_id}/context"),
        ("POST", "/v1/calls/{attempt_id}/result"),
    }
)
#: When the daemon stops, an API request still being answered gets this long (seconds) to
#: finish; then it is cancelled (aiohttp's own default is 60 s: as long as a stop may take).
SHUTDOWN_TIMEOUT = 5.0
#: A connection that sends no complete request for this long (seconds) is closed: idle
#: keep-alive connections and requests whose line and headers trickle in alike.
IDLE_TIMEOUT = 15.0
#: Reading a JSON body (the CSV upload: each piece of it) may take at most this long.
BODY_TIMEOUT = 30.0
#: Open connections to the HTTP listener; one more is closed at once (no answer).
MAX_CONNECTIONS = 512
#: Longest request line and header line (bytes), and most header lines, per request.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 64
#: Deepest nesting of a JSON body (objects and arrays); deeper is 400 `bad_json`.
MAX_JSON_DEPTH = 32
#: How long /readyz waits for the database.
READY_TIMEOUT = 2.0
