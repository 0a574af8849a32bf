"""Every error the HTTP listener gives, as JSON, decided in one place: the middleware here.

`{"error": {"code": "...", "message": "...", "field": "...", "problems": [...], "line": N}}`:
`field` when one is to blame, `problems` when there are several, `line` for an uploaded CSV.

A refusal of the package (`errors.DiallerError`, raised by the services, the store and the
daemon's callables) is answered from `errors.answer_for` — its status and code come from the
one table, `errors.ANSWERS`; its message, field, problems and line from the exception's typed
data. Handlers let refusals propagate; none catches one to turn it into another answer. The
request's own shape (`http.ApiError`), aiohttp's answers (no such route, 405, 413), the
database being unreachable (`store.pool.UNAVAILABLE`) and bugs (500) are answered here too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from ..errors import CsvFileError, DiallerError, Forbidden, TryAgain, answer_for
from ..store.pool import UNAVAILABLE
from .auth import Principal, Role, authenticate, bearer_token
from .http import ApiError, StreamAborted, current_config
from .limits import OPEN_PATHS, WORKER_ROUTES

__all__ = ["HTTP_CODES", "error_response", "errors_and_auth", "principal", "refusal"]

log = logging.getLogger(__name__)

#: aiohttp's own refusals (no such route, body over `client_max_size`, ...) by status.
HTTP_CODES: Mapping[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
#: What a client is told to wait before trying a `TryAgain` request again (seconds).
RETRY_AFTER = 1


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    problems: Sequence[str] = (),
    line: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The JSON error answer (`problems` only when there are some)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if problems:
        body["problems"] = list(problems)
    if line is not None:
        body["line"] = line
    return web.json_response({"error": body}, status=status, headers=headers)


def refusal(exc: DiallerError) -> web.Response:
    """The answer to a refusal: status and code from `errors.ANSWERS`, the rest from the
    exception's data (`TryAgain` adds `Retry-After`)."""
    answer = answer_for(exc)
    return error_response(
        answer.status,
        answer.code,
        str(exc),
        field=exc.field,
        problems=exc.problems,
        line=exc.line if isinstance(exc, CsvFileError) else None,
        headers={"Retry-After": str(RETRY_AFTER)} if isinstance(exc, TryAgain) else None,
    )


def _internal() -> web.Response:
    return error_response(500, "internal", "internal error; the daemon's log has the details")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Where the middleware leaves the request's `auth.Principal` (`principal(request)`).
_PRINCIPAL = web.RequestKey("principal", Principal)
#: Methods a viewer token may use on an operator route.
_READ_METHODS = frozenset({"GET", "HEAD"})


def principal(request: web.Request) -> Principal:
    """The principal of an authenticated `/v1` request (set by the middleware)."""
    found = request.get(_PRINCIPAL)
    if not isinstance(found, Principal):  # an open route: no handler asks
        raise Forbidden("this route has no principal")
    return found


def _route_of(request: web.Request) -> tuple[str, str]:
    resource = request.match_info.route.resource
    return request.method, resource.canonical if resource is not None else request.path


def _check_access(request: web.Request) -> web.StreamResponse | None:
    """The bearer check of a `/v1` route: None to go on (the principal recorded), else the
    401 or 403 answer. Paths outside `/v1/` (the console's pages, its sign-in, static files)
    are the console's own session check's; `limits.OPEN_PATHS` are open to all."""
    if not request.path.startswith("/v1/") or request.path in OPEN_PATHS:
        return None
    token = bearer_token(request.headers.get("Authorization"))
    who = authenticate(token, current_config(request)) if token is not None else None
    if who is None:
        return error_response(401, "unauthorized", "missing or wrong bearer token")
    request[_PRINCIPAL] = who
    worker_route = _route_of(request) in WORKER_ROUTES
    if who.role is Role.OPERATOR:
        return None  # the worker routes check a worker name themselves
    if who.role is Role.WORKER and worker_route:
        return None
    if who.role is Role.VIEWER and not worker_route and request.method in _READ_METHODS:
        return None
    return refusal(
        Forbidden(
            "a viewer token may only read"
            if who.role is Role.VIEWER
            else "a worker token may only use the worker routes"
        )
    )


@web.middleware
async def errors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The bearer token and its role (`/v1` routes but `limits.OPEN_PATHS`), then every
    error as JSON."""
    refused = _check_access(request)
    if refused is not None:
        return refused
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, str(exc), field=exc.field)
    except StreamAborted:
        log.warning("streamed answer cut short", exc_info=True, extra={"path": request.path})
        raise
    except web.HTTPException as exc:  # aiohttp's own: no such route, body over the limit ...
        if exc.status < 400:
            raise
        return error_response(exc.status, HTTP_CODES.get(exc.status, "http_error"), exc.reason)
    except DiallerError as exc:
        status = answer_for(exc).status
        if status == 500:  # no refusal: an error the table has no better answer for
            log.exception("request failed", extra={"path": request.path})
            return _internal()
        if status >= 500:  # the database, AMI or the fleet: the operator should know
            log.warning("request failed: %s", exc, extra={"path": request.path})
        return refusal(exc)
    except UNAVAILABLE as exc:
        log.warning(
            "request failed: a service is unavailable: %s", exc, extra={"path": request.path}
        )
        return error_response(
            503,
            "unavailable",
            f"a service the dialler needs is unavailable ({type(exc).__name__}: {exc}); try again",
        )
    except Exception:
        log.exception("request failed", extra={"path": request.path})
        return _internal()
