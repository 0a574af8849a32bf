"""Console sign-in: sessions, their cookie, CSRF tokens, and the middleware that guards every
console path (docs/console.md, "Security").

A session is made by signing in with an operator or viewer API token (`api.auth.authenticate`;
worker tokens do not sign in). It lives in the daemon's memory, keyed by a random id sent as
an HttpOnly, SameSite=Strict cookie with an expiry (`SESSION_SECONDS`): a daemon restart signs
everyone out, and each daemon of a shared database has its own sessions. Every state-changing
request (POST, PUT, DELETE) must carry the session's CSRF token — in the `X-CSRF-Token` header
(fetch) or a `csrf` form field (the sign-out form) — or it is refused with 403. A viewer's
session reads everything and changes nothing (403).

Every console answer carries a Content-Security-Policy that allows only the daemon's own
scripts, styles and images: no inline script, no inline event handler, nothing from outside.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp_jinja2
from aiohttp import web

from ..api.answers import error_response, refusal
from ..api.auth import Principal, Role, authenticate
from ..api.http import ApiError, current_config
from ..config import Config
from ..errors import DiallerError, answer_for
from ..store.pool import UNAVAILABLE

__all__ = [
    "COOKIE",
    "CSP",
    "SESSIONS",
    "SESSION_SECONDS",
    "Session",
    "Sessions",
    "console_guard",
    "current_session",
    "is_console_path",
    "sign_in",
]

log = logging.getLogger(__name__)

COOKIE = "dialler_session"
#: How long a session lasts after sign-in (the cookie's Max-Age too).
SESSION_SECONDS = 8 * 3600
#: Sessions kept at most (oldest dropped first): a flood of sign-ins cannot grow memory.
MAX_SESSIONS = 10_000
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Paths the daemon's other adapters own: the console leaves them alone.
_NOT_CONSOLE = ("/v1/", "/healthz", "/readyz", "/metrics")
#: Console paths open without a session.
_OPEN = ("/login", "/static/")
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True)
class Session:
    """A signed-in browser: its role, CSRF token and expiry (monotonic seconds)."""

    role: Role
    csrf: str
    expires: float
    created: float = field(default_factory=time.monotonic)

    @property
    def can_change(self) -> bool:
        """Operators change things; viewers only look."""
        return self.role is Role.OPERATOR


class Sessions:
    """The daemon's console sessions, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def create(self, principal: Principal) -> tuple[str, Session]:
        """A new session for `principal`; its id goes into the cookie."""
        now = time.monotonic()
        self._by_id = {k: s for k, s in self._by_id.items() if s.expires > now}
        while len(self._by_id) >= MAX_SESSIONS:
            del self._by_id[next(iter(self._by_id))]
        session_id = secrets.token_urlsafe(32)
        session = Session(principal.role, secrets.token_urlsafe(32), now + SESSION_SECONDS)
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown or expired)."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None or session.expires <= time.monotonic():
            self._by_id.pop(session_id, None)
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


SESSIONS: web.AppKey[Sessions] = web.AppKey("console_sessions", Sessions)
_SESSION: web.RequestKey[Session] = web.RequestKey("console_session", Session)


def _principal(token: str, config: Config) -> Principal | None:
    """Who signs in with `token`: operators and viewers; a worker token signs in nobody."""
    principal = authenticate(token, config)
    if principal is None or principal.role not in (Role.OPERATOR, Role.VIEWER):
        return None
    return principal


def sign_in(request: web.Request, token: str, response: web.StreamResponse) -> bool:
    """Start a session for `token` (setting its cookie on `response`); False when the token
    signs in nobody."""
    principal = _principal(token.strip(), current_config(request))
    if principal is None:
        return False
    sessions = request.app[SESSIONS]
    sessions.drop(request.cookies.get(COOKIE))  # a new id at every sign-in (no fixation)
    session_id, _session = sessions.create(principal)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
    )
    return True


def sign_out(request: web.Request, response: web.StreamResponse) -> None:
    """End the request's session and clear its cookie."""
    request.app[SESSIONS].drop(request.cookies.get(COOKIE))
    response.del_cookie(COOKIE, path="/")


def current_session(request: web.Request) -> Session:
    """The session of a request the guard let through (not for the open paths)."""
    return request[_SESSION]


def is_console_path(path: str) -> bool:
    """Is `path` one of the console's (not the API's, the probes' or the metrics')?"""
    return not any(path == p.rstrip("/") or path.startswith(p) for p in _NOT_CONSOLE)


def _wants_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


async def _csrf_ok(request: web.Request, session: Session) -> bool:
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type == "application/x-www-form-urlencoded":
        value = (await request.post()).get("csrf")
        given = value if isinstance(value, str) else None
    return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    """The console's security headers (set before a streamed answer is prepared)."""
    if not response.prepared:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _as_page(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """A page's error answer (JSON from the API's middleware) as an HTML page saying the same;
    any other answer as it is."""
    if not (
        _wants_page(request)
        and isinstance(response, web.Response)
        and response.status >= 400
        and response.content_type == "application/json"
        and response.text
    ):
        return response
    try:
        error = json.loads(response.text).get("error", {})
    except ValueError:
        return response
    page = aiohttp_jinja2.render_template(
        "error.html",
        request,
        {
            "status": response.status,
            "message": error.get("message", ""),
            "problems": error.get("problems", []),
        },
    )
    page.set_status(response.status)
    return page


async def _admit(request: web.Request) -> web.Response | None:
    """Let a request to a guarded path in (its session kept on the request), or the answer
    refusing it: no session (a page goes to /login), no CSRF token, a viewer's change."""
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        if _wants_page(request):
            raise web.HTTPSeeOther("/login")
        return error_response(401, "unauthorized", "sign in first")
    if request.method in _CHANGES:
        if not await _csrf_ok(request, session):
            return error_response(403, "forbidden", "missing or wrong CSRF token")
        if not session.can_change:
            return error_response(403, "forbidden", "a viewer's session changes nothing")
    request[_SESSION] = session
    return None


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console paths: the session (pages without one go to /login, other requests get 401),
    the CSRF token on every change (403 without it), viewers refused any change (403), the
    security headers, and refusals answered as the API answers them (JSON, `errors.ANSWERS`).
    Every other path passes through untouched."""
    if not is_console_path(request.path):
        return await handler(request)
    if not request.path.startswith(_OPEN):
        refused = await _admit(request)
        if refused is not None:
            return _secured(refused)
    try:
        # The API's middleware behind this one asks `/v1/` routes only for a bearer token,
        # and answers every error as JSON: a page shows it as a page.
        return _secured(_as_page(request, await handler(request)))
    except web.HTTPException as exc:
        if exc.status < 400:
            _secured(exc)
            raise
        return _secured(error_response(exc.status, "http_error", exc.reason))
    except ApiError as exc:
        return _secured(error_response(exc.status, exc.code, str(exc), field=exc.field))
    except DiallerError as exc:
        if answer_for(exc).status == 500:  # no refusal: a bug or an unexpected failure
            log.exception("console request failed", extra={"path": request.path})
            return _secured(error_response(500, "internal", "internal error; see the log"))
        return _secured(refusal(exc))
    except UNAVAILABLE as exc:
        log.warning("console request failed: %s", type(exc).__name__, extra={"path": request.path})
        return _secured(error_response(503, "unavailable", "a service is unavailable; try again"))
    except Exception:
        log.exception("console request failed", extra={"path": request.path})
        return _secured(error_response(500, "internal", "internal error; see the log"))
