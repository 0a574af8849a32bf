"""Who a bearer token is: its role and, for a worker token, the worker names it acts for.

Three kinds of token (docs/security.md, docs/config.md "api"):
- operator (`api.tokens_file`): every `/v1` route;
- viewer (`api.viewer_tokens_file`): read-only — `GET`/`HEAD` of the operator routes;
- worker (`api.worker_tokens_file`): the worker routes only, and for a worker name only the
  names the token is bound to (register, heartbeat); a call's context and result.

`authenticate` compares the token given against every configured token in constant time,
with no early exit, so the time taken tells nothing about which token (or how much of one)
matched. The console signs in with the same function (an operator or viewer token).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from ..config import Config

__all__ = ["Principal", "Role", "authenticate", "bearer_token"]


class Role(StrEnum):
    """What a token may do."""

    OPERATOR = "operator"
    VIEWER = "viewer"
    WORKER = "worker"


@dataclass(frozen=True)
class Principal:
    """The holder of a valid token: its role; for a worker token, the worker names it may
    register, heartbeat and report for (empty for the other roles)."""

    role: Role
    workers: frozenset[str] = frozenset()

    def may_act_for(self, worker: str) -> bool:
        """True when this is a worker token bound to `worker`."""
        return self.role is Role.WORKER and worker in self.workers


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without one."""
    if not header or not header.startswith("Bearer "):
        return None
    token = header.removeprefix("Bearer ").strip()
    return token or None


def authenticate(token: str, config: Config) -> Principal | None:
    """The principal holding `token`, or None when it is no configured token.

    Every configured token is compared (`hmac.compare_digest`), whichever matches: the time
    taken depends on the number of tokens, not on which one matched."""
    given = token.encode("utf-8", "surrogateescape")
    found: Principal | None = None
    api = config.api
    for candidate in api.tokens:
        if hmac.compare_digest(given, candidate.encode()) and found is None:
            found = Principal(Role.OPERATOR)
    for candidate in api.viewer_tokens:
        if hmac.compare_digest(given, candidate.encode()) and found is None:
            found = Principal(Role.VIEWER)
    for worker in api.worker_tokens:
        if hmac.compare_digest(given, worker.token.encode()) and found is None:
            found = Principal(Role.WORKER, worker.workers)
    return found
