"""The daemon's HTTP API (docs/api.md): `server.make_app` assembles it.

`http` (what routes share) and `limits` (sizes) are imported by the route modules
(`operators`, `workers`, `testcalls`) and by `answers` (the middleware); `openapi` imports only
`limits`; `server` imports them all and nothing imports `server` but the composition root.
"""
