"""Named SQL queries kept in `.sql` files (STYLE: SQL lives in .sql files).

A file under `dialler/store/sql/` holds queries separated by `-- name: <query_name>` lines; the
comment lines right after a name say why the query is written the way it is.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@cache
def load(filename: str) -> dict[str, str]:
    """All queries in `dialler/store/sql/<filename>`, by name."""
    text = resources.files("dialler.store").joinpath("sql", filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{filename}: query {name!r} defined twice")
        queries[name] = body.strip().rstrip(";")
    return queries
