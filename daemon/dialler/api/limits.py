"""The HTTP listener's limits and fixed paths: plain constants, imported by the routes and by
the OpenAPI document alike (this module imports nothing)."""

from __future__ import annotations

__all__ = [
    "MAX_BODY",
    "MAX_UPLOAD_BYTES",
    "OPEN_PATHS",
    "READY_TIMEOUT",
    "REJECTED_ROWS_SHOWN",
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
#: How long /readyz waits for the database.
READY_TIMEOUT = 2.0
