"""Pagination of the list routes (campaigns, bots, calls, suppressions, numbers; docs/api.md,
"Pagination"): `?limit=N` (default 100, at most 1,000) and `?after=<cursor>` (the id, name or
number of the previous page's last item). The body stays a JSON list; when a page is full, the
next page's URL is in a `Link: <...>; rel="next"` header. A short page is the last one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from ..errors import InvalidField

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "page_of", "page_request", "paged"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page:
    """What a request asks for: at most `limit` items after the cursor `after` (None: from
    the first)."""

    limit: int
    after: str | None


def page_request(request: web.Request) -> Page:
    """The page asked for by the query string; `InvalidField` (`limit`, 422) for a limit that
    is not an integer from 1 to `MAX_LIMIT`, (`after`) for an empty cursor."""
    raw = request.query.get("limit")
    limit = DEFAULT_LIMIT
    if raw is not None:
        try:
            limit = int(raw, 10)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT or not raw.strip().isdigit():
            raise InvalidField(
                "limit", f"limit: expected an integer from 1 to {MAX_LIMIT}, got {raw!r}"
            )
    after = request.query.get("after")
    if after is not None and not after:
        raise InvalidField("after", "after: empty cursor; give the last item of the last page")
    return Page(limit, after)


def page_of(items: Sequence[T], key: Callable[[T], str], page: Page) -> list[T]:
    """The page of `items` (already in the list's order) after the item whose `key` is
    `page.after`; `InvalidField` (`after`) when no item has it."""
    start = 0
    if page.after is not None:
        for index, item in enumerate(items):
            if key(item) == page.after:
                start = index + 1
                break
        else:
            raise InvalidField("after", f"after: {page.after!r} is not an item of this list")
    return list(items[start : start + page.limit])


def paged(request: web.Request, page: Page, items: list[object], last: str | None) -> web.Response:
    """The JSON list `items`, with the next page's `Link` when the page is full (`last`: the
    cursor of its last item)."""
    response = web.json_response(items)
    if last is not None and len(items) >= page.limit:
        query = {**request.rel_url.query, "limit": str(page.limit), "after": last}
        response.headers["Link"] = f'<{request.rel_url.with_query(query)}>; rel="next"'
    return response
