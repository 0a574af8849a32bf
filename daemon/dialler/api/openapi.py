"""The OpenAPI 3.1 document of the HTTP listener, served at `GET /v1/openapi.json` (no token).

Written here as data, next to the code, rather than generated: the handlers validate by hand
(with the campaign file's own parser), so there is nothing to generate it from. A test checks
that every route the application registers is documented with its method, and that every
documented path and method exists (tests/integration/test_api_operators.py). This module
imports no route: only the limits the routes apply (`limits`, `pages`).
"""

from __future__ import annotations

from typing import Any

from ..campaigns.spec import system_dispositions
from ..domain.numbers import E164
from ..domain.outcomes import Outcome
from ..domain.states import ContactState
from ..domain.window import DAYS
from ..stats import STATES
from .limits import MAX_UPLOAD_BYTES, REJECTED_ROWS_SHOWN
from .pages import DEFAULT_LIMIT, MAX_LIMIT

__all__ = ["document"]

Schema = dict[str, Any]

_UUID: Schema = {"type": "string", "format": "uuid"}
_TIME: Schema = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
_E164: Schema = {
    "type": "string",
    "pattern": f"^{E164.pattern}$",
    "description": "E.164: '+', the country code and the number",
}
_STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
_NULLABLE_TIME: Schema = {**_TIME, "type": ["string", "null"]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Schema],
    required: tuple[str, ...] = (),
    *,
    closed: bool = True,
    description: str | None = None,
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _schemas() -> dict[str, Schema]:
    duration: Schema = {
        "description": "an integer of seconds, or a string of <number><unit> parts with unit "
        "ms, s, m, h or d (`90s`, `1h30m`)",
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+\s*$"},
        ],
    }
    counts = {str(state): {"type": "integer"} for state in STATES}
    return {
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {
                            "type": "string",
                            "description": "machine-readable, e.g. `bad_field`",
                        },
                        "message": {"type": "string", "description": "what is wrong and where"},
                        "field": {"type": "string", "description": "the field (key path) to blame"},
                        "problems": {**_STRINGS, "description": "every problem, one line each"},
                        "line": {"type": "integer", "description": "line of the uploaded CSV"},
                    },
                    ("code", "message"),
                )
            },
            ("error",),
        ),
        "Duration": duration,
        "Bot": _object(
            {
                "name": {"type": "string", "maxLength": 200},
                "prompt": {
                    "type": "string",
                    "description": "`{{NAME}}` / `{{call.NAME}}` name contact variables",
                },
                "pipeline": {"type": "object", "description": "opaque, passed to workers"},
            },
            ("name", "prompt"),
            description="CONTRACT.md's bot file, as JSON",
        ),
        "BotSummary": _object(
            {
                "id": _UUID,
                "name": {"type": "string"},
                "campaigns": {"type": "integer"},
                "created_at": _TIME,
            }
        ),
        "Campaign": _object(
            {
                "name": {"type": "string", "maxLength": 200},
                "bot": {"type": ["string", "null"], "description": "may be absent in a draft"},
                "numbers": {
                    "type": "array",
                    "items": _E164,
                    "description": "caller IDs from the configured pool",
                },
                "concurrency": {"type": ["integer", "null"], "default": 50},
                "window": _object(
                    {
                        "start": {"type": "string", "default": "09:00", "description": "HH:MM"},
                        "end": {
                            "type": "string",
                            "default": "18:00",
                            "description": "HH:MM, after start; 24:00 allowed",
                        },
                        "days": {
                            "type": "array",
                            "items": {"enum": list(DAYS)},
                            "default": list(DAYS[:5]),
                        },
                        "timezone": {"type": "string", "default": "UTC"},
                        "per_contact": {
                            "type": "boolean",
                            "default": False,
                            "description": "read the window on each contact's own clocks "
                            "(the zones its number may be in, or its `timezone` field); "
                            "`timezone` is the fallback",
                        },
                    }
                ),
                "always_on": {"type": "boolean", "default": False},
                "ring_timeout": {**_ref("Duration"), "default": "30s"},
                "retry": _object(
                    {
                        "max_attempts": {"type": "integer", "minimum": 1, "default": 1},
                        "delay": {**_ref("Duration"), "default": "30m"},
                        "on_system": {
                            "type": "array",
                            "items": {"enum": list(system_dispositions())},
                        },
                        "on_custom": _STRINGS,
                    }
                ),
                "redial": _object(
                    {
                        "stop_after_connect_longer_than": _nullable(_ref("Duration")),
                        "redial_after_connect_shorter_than": _nullable(_ref("Duration")),
                    }
                ),
            },
            ("name",),
            description="CONTRACT.md's campaign file, as JSON; absent fields take their defaults",
        ),
        "CampaignSummary": _object(
            {
                "id": _UUID,
                "name": {"type": "string"},
                "state": {"enum": ["draft", "running", "paused", "completed"]},
                "cancelled_at": _NULLABLE_TIME,
                "bot": {"type": ["string", "null"]},
                "concurrency": {"type": "integer"},
                "always_on": {"type": "boolean"},
                "numbers": {"type": "integer", "description": "caller IDs in the pool"},
                "created_at": _TIME,
            }
        ),
        "CampaignShow": _object(
            {
                "id": _UUID,
                "name": {"type": "string"},
                "state": {"enum": ["draft", "running", "paused", "completed"]},
                "activity": {
                    "enum": [
                        "live",
                        "idle_waiting_for_retries",
                        "paused_outside_window",
                        "draft",
                        "paused",
                        "completed",
                    ]
                },
                "stalled": {"type": "boolean"},
                "effective_concurrency": {"type": "integer"},
                "capped_by": {"enum": [None, "fleet", "carrier", "carrier_throttle"]},
                "stats": _object(
                    {
                        **counts,
                        "retries_left": {"type": "integer"},
                        "answer_rate": {"type": "number", "description": "a fraction of attempts"},
                        "last_dial_at": _NULLABLE_TIME,
                    }
                ),
                "outcomes": _object(
                    {str(outcome): {"type": "integer"} for outcome in Outcome},
                    description="final attempts by outcome",
                ),
                "abandon_rate_30d": {
                    "type": "number",
                    "description": "abandoned ÷ answered attempts that ended in the last 30 "
                    "days (0.0 when none)",
                },
                "waiting_for_local_window": {
                    "type": "integer",
                    "description": "contacts waiting for their own time zone's window",
                },
                "settings": _object(
                    {
                        "bot": {"type": ["string", "null"]},
                        "numbers": {"type": "array", "items": _E164},
                        "concurrency": {"type": "integer"},
                        "window": _object(
                            {
                                "start": {"type": "string"},
                                "end": {"type": "string"},
                                "days": _STRINGS,
                                "timezone": {"type": "string"},
                                "per_contact": {"type": "boolean"},
                            },
                            closed=False,
                        ),
                        "always_on": {"type": "boolean"},
                        "ring_timeout": {"type": "string"},
                        "retry": _object(
                            {
                                "max_attempts": {"type": "integer"},
                                "delay": {"type": "string"},
                                "on_system": _STRINGS,
                                "on_custom": _STRINGS,
                            }
                        ),
                        "redial": _object(
                            {
                                "stop_after_connect_longer_than": {"type": ["string", "null"]},
                                "redial_after_connect_shorter_than": {"type": ["string", "null"]},
                            }
                        ),
                    },
                    closed=False,
                    description="the campaign file's fields, durations as duration strings",
                ),
            },
            description="exactly `dialler campaign show ID --json` (CONTRACT.md)",
        ),
        "BotDetail": _object(
            {
                "name": {"type": "string"},
                "prompt": {"type": "string"},
                "pipeline": {"type": "object"},
                "campaigns": {"type": "integer", "description": "campaigns using it"},
                "created_at": _TIME,
            }
        ),
        "CampaignCheck": _object(
            {
                "problems": {
                    "type": "array",
                    "items": _object(
                        {
                            "field": {
                                "type": "string",
                                "description": "key path of the field at fault "
                                "(`bot`, `numbers`, `window.start`); empty for the whole body",
                            },
                            "message": {"type": "string"},
                        }
                    ),
                },
                "warnings": _STRINGS,
            }
        ),
        "Fleet": _object(
            {
                "capacity": {"type": "integer", "description": "slots of workers in rotation"},
                "in_use": {"type": "integer"},
                "free": {"type": "integer", "description": "free slots in rotation"},
                "running_concurrency": {
                    "type": "integer",
                    "description": "sum of the running campaigns' concurrency",
                },
                "workers": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": {"type": "string"},
                            "host": {"type": "string"},
                            "port": {"type": "integer"},
                            "capacity": {"type": "integer"},
                            "in_use": {"type": "integer"},
                            "free": {"type": "integer", "description": "0 out of rotation"},
                            "heartbeat_age_seconds": {
                                "type": ["number", "null"],
                                "description": "null: never heard from (static workers)",
                            },
                            "in_rotation": {"type": "boolean"},
                            "source": {"enum": ["config", "api"]},
                        }
                    ),
                },
            }
        ),
        "NumberStatus": _object(
            {
                "number": _E164,
                "carrier": {"type": "string"},
                "enabled": {"type": "boolean"},
                "calls_last_hour": {
                    "type": "integer",
                    "description": "attempts from this caller ID that ended in the last hour",
                },
                "share_4xx": {
                    "type": "number",
                    "description": "fraction of those ended 400-499, 429 apart",
                },
                "share_5xx": {"type": "number"},
                "share_429": {"type": "number"},
                "campaigns": {
                    **_STRINGS,
                    "description": "draft, running or paused campaigns whose pool has it",
                },
                "warnings": _STRINGS,
            }
        ),
        "Swap": _object({"to": _E164}, ("to",)),
        "Swapped": _object(
            {"from": _E164, "to": _E164, "campaigns": _STRINGS},
            description="the campaigns whose pool now has `to` instead of `from`",
        ),
        "Triage": {
            "type": "object",
            "description": "exactly `dialler triage ID --json` (docs/triage.md)",
        },
        "Created": _object({"id": _UUID}, ("id",)),
        "Edited": _object({"id": _UUID, "name": {"type": "string"}, "warnings": _STRINGS}),
        "Changed": _object(
            {
                "id": _UUID,
                "name": {"type": "string"},
                "state": {"enum": ["running", "paused"]},
                "warnings": _STRINGS,
            }
        ),
        "Cancelled": _object(
            {
                "id": _UUID,
                "name": {"type": "string"},
                "state": {"type": "string"},
                "contacts_cancelled": {"type": "integer"},
                "in_flight": {"type": "integer", "description": "live calls still to finish"},
            }
        ),
        "ImportSummary": _object(
            {
                "campaign_id": _UUID,
                "campaign": {"type": "string"},
                "imported": {"type": "integer"},
                "rejected": {"type": "integer", "description": "every rejected row"},
                "duplicates_in_campaign": {"type": "integer"},
                "suppressed": {
                    "type": "integer",
                    "description": "imported as cancelled: on the do-not-call list",
                },
                "warnings": _STRINGS,
                "rejected_rows": {
                    "type": "array",
                    "maxItems": REJECTED_ROWS_SHOWN,
                    "items": _object({"line": {"type": "integer"}, "reason": {"type": "string"}}),
                },
                "rejected_rows_omitted": {
                    "type": "integer",
                    "description": f"rejected rows beyond the first {REJECTED_ROWS_SHOWN}",
                },
            }
        ),
        "ContactTrigger": _object(
            {
                "phone_number": {
                    "type": "string",
                    "description": "any format; normalised to E.164 with contacts.default_region",
                },
                "metadata": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "the contact's variables",
                },
            },
            ("phone_number",),
        ),
        "AddedContact": _object(
            {
                "id": _UUID,
                "phone_number": _E164,
                "state": {"enum": [ContactState.PENDING, ContactState.CANCELLED]},
                "suppressed": {"type": "boolean"},
                "warnings": _STRINGS,
            }
        ),
        "PhoneNumber": _object({"phone_number": {"type": "string"}}, ("phone_number",)),
        "CancelledContact": _object(
            {
                "id": _UUID,
                "phone_number": _E164,
                "state": {"type": "string", "description": "cancelled, or the final state it had"},
                "already_final": {"type": "boolean"},
            }
        ),
        "Call": _object(
            {
                "contact_id": _UUID,
                "phone_number": _E164,
                "state": {"enum": list(STATES)},
                "attempts": {"type": "string", "description": "used/max, e.g. `1/3`"},
                "last_outcome": {"type": ["string", "null"]},
                "last_sip_code": {"type": ["integer", "null"]},
                "last_disposition": {"type": ["string", "null"]},
                "next_action": {"type": ["string", "null"]},
                "next_due_at": _NULLABLE_TIME,
                "last_attempt_at": {
                    **_NULLABLE_TIME,
                    "description": "when the last attempt ended (else was dialled); null: "
                    "never dialled",
                },
                "reason": {
                    "type": ["string", "null"],
                    "description": "why the contact was cancelled without a call "
                    "(`no_common_window`); null when none",
                },
            }
        ),
        "Suppression": _object(
            {"phone_number": _E164, "reason": {"type": ["string", "null"]}, "added_at": _TIME}
        ),
        "SuppressionInput": _object(
            {
                "phone_number": {"type": "string"},
                "reason": {"type": ["string", "null"], "maxLength": 1000},
            },
            ("phone_number",),
        ),
        "AddedSuppression": _object(
            {
                "phone_number": _E164,
                "reason": {"type": ["string", "null"]},
                "added_at": _TIME,
                "new": {"type": "boolean"},
                "contacts_cancelled": {
                    "type": "integer",
                    "description": "waiting contacts cancelled, all campaigns",
                },
            }
        ),
        "Health": _object({"status": {"const": "ok"}}),
        "Readiness": _object(
            {
                "ready": {"type": "boolean"},
                "checks": {
                    "type": "object",
                    "additionalProperties": {"type": "boolean"},
                    "description": "`database`; in the daemon also `asterisk` (at least one "
                    "Asterisk's AMI is up), `database_writes` and `results_written`",
                },
                "asterisk_servers": {
                    "type": "array",
                    "description": "the daemon's Asterisk servers (informative: one down "
                    "does not make the daemon unready while another is up)",
                    "items": _object(
                        {
                            "name": {"type": "string"},
                            "up": {"type": "boolean"},
                            "in_flight": {"type": "integer"},
                            "max_channels": {"type": ["integer", "null"]},
                        }
                    ),
                },
            }
        ),
        "WorkerRegistration": _object(
            {
                "name": {"type": "string"},
                "host": {"type": "string"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "capacity": {"type": "integer", "minimum": 0, "maximum": 10000},
            },
            ("name", "host", "port", "capacity"),
        ),
        "WorkerRegistered": _object(
            {"name": {"type": "string"}, "heartbeat_timeout": {"type": "number"}}
        ),
        "CallContext": _object(
            {
                "attempt_id": _UUID,
                "campaign_id": _UUID,
                "campaign": {"type": "string"},
                "caller_id": _E164,
                "bot": _object(
                    {
                        "name": {"type": "string"},
                        "prompt": {"type": "string"},
                        "pipeline": {"type": "object"},
                    }
                ),
                "variables": {"type": "object", "additionalProperties": {"type": "string"}},
                "prompt": {"type": "string", "description": "rendered with the variables"},
                "unresolved": _STRINGS,
            }
        ),
        "CallResult": _object(
            {
                "disposition": {"type": "string", "description": "completed, RNR or a custom name"},
                "callback_at": {**_TIME, "description": "RFC 3339 with an offset"},
                "notes": {
                    "type": "string",
                    "description": "free text for people, stored as given and never "
                    "parsed: put numbers in `audio`",
                },
                "audio": _object(
                    {
                        "frames_sent": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 2**31 - 1,
                            "description": "AudioSocket audio frames sent to the call",
                        },
                        "frames_received": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 2**31 - 1,
                            "description": "audio frames received from the call",
                        },
                    },
                    ("frames_sent", "frames_received"),
                    description="optional; shown by `dialler test-call` and kept on the attempt",
                ),
            },
            ("disposition",),
        ),
        "TestCall": _object(
            {
                "bot": {"type": "string"},
                "to": {"type": "string"},
                "from": {**_E164, "description": "an enabled caller ID of the config"},
                "ring_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            },
            ("bot", "to"),
        ),
        "TestCallStage": _object(
            {
                "stage": {
                    "enum": [
                        "originated",
                        "ringing",
                        "answered",
                        "attached",
                        "audio",
                        "result",
                        "failed",
                    ]
                },
                "t": {"type": "number", "description": "seconds since the originate"},
            },
            ("stage", "t"),
            closed=False,
        ),
    }


_ERRORS = {
    "400": (
        "BadRequest",
        "the body is not a JSON object (a key appears twice, it is not UTF-8, holds a lone "
        "surrogate, or nests deeper than 32 levels: `bad_json`)",
    ),
    "401": ("Unauthorized", "missing or wrong bearer token"),
    "403": (
        "Forbidden",
        "the token's role does not allow this (a viewer changing something, a worker token "
        "outside its worker names or the worker routes, any change to a worker the config "
        "defines)",
    ),
    "404": ("NotFound", "no such campaign (by id or name), contact, worker or call"),
    "408": ("Timeout", "the body was not received in time"),
    "409": ("Conflict", "the state does not allow it, or the name is taken"),
    "413": ("TooLarge", "the body is over the limit"),
    "415": ("UnsupportedMediaType", "the body must be text/csv"),
    "422": ("Invalid", "invalid input, naming the field; every problem in `problems`"),
    "503": (
        "Unavailable",
        "the database (or another service) is unavailable; `try_again` "
        "(with `Retry-After`) when the same request again should work",
    ),
}


def _responses() -> dict[str, Any]:
    return {
        name: {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
        for name, text in _ERRORS.values()
    }


def _parameters() -> dict[str, Any]:
    return {
        "campaign": {
            "name": "campaign",
            "in": "path",
            "required": True,
            "description": "the campaign's id or its unique name",
            "schema": {"type": "string"},
        },
        "attempt_id": {"name": "attempt_id", "in": "path", "required": True, "schema": _UUID},
        "bot": {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "the bot's name",
            "schema": {"type": "string"},
        },
        "number": {
            "name": "number",
            "in": "path",
            "required": True,
            "description": "a caller ID, E.164 (`+` may be written `%2B`)",
            "schema": {"type": "string"},
        },
        "limit": {
            "name": "limit",
            "in": "query",
            "description": f"items per page, 1 to {MAX_LIMIT} (422 naming `limit` otherwise)",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            },
        },
        "after": {
            "name": "after",
            "in": "query",
            "description": "the cursor: the last item of the previous page (its id, name or "
            'number); a full page\'s `Link: <...>; rel="next"` header gives the next URL',
            "schema": {"type": "string"},
        },
        "state": {
            "name": "state",
            "in": "query",
            "description": "only contacts in this state",
            "schema": {"enum": list(STATES)},
        },
        "edited": {
            "name": "campaign",
            "in": "query",
            "description": "check an edit of this campaign (id or name): its own name is free",
            "schema": {"type": "string"},
        },
        "worker": {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "the worker's registered name",
            "schema": {"type": "string"},
        },
        "phone_number": {
            "name": "phone_number",
            "in": "path",
            "required": True,
            "description": "any format (`+` may be written `%2B`)",
            "schema": {"type": "string"},
        },
    }


def _op(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *errors: int,
    body: Schema | None = None,
    body_type: str = "application/json",
    params: tuple[str, ...] = (),
    open_route: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation: its answers are `ok` plus the shared error answers `errors` (401 and
    403 and 503 are added unless the route is open)."""
    codes = sorted({*errors, *(() if open_route else (401, 403, 503))})
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            **ok,
            **{
                str(code): {"$ref": f"#/components/responses/{_ERRORS[str(code)][0]}"}
                for code in codes
            },
        },
    }
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = [{"$ref": f"#/components/parameters/{name}"} for name in params]
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    if open_route:
        operation["security"] = []
    return operation


def _json(description: str, schema: Schema, status: str = "200") -> dict[str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def _list(description: str, item: str) -> dict[str, Any]:
    listed = _json(description, {"type": "array", "items": _ref(item)})
    listed["200"]["headers"] = {
        "Link": {
            "description": 'when the page is full: `<URL of the next page>; rel="next"`',
            "schema": {"type": "string"},
        }
    }
    return listed


def _empty(description: str, status: str = "204") -> dict[str, Any]:
    return {status: {"description": description}}


#: The query parameters of a paginated list.
_PAGE = ("limit", "after")


def _paths() -> dict[str, Any]:
    campaign = ("campaign",)
    transition = {
        "start": ("draft → running, after the start checks", 422),
        "resume": ("paused → running, after the start checks again", 422),
        "pause": ("running → paused: no new dials; live calls finish", None),
    }
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _op("liveness", "probes", _json("alive", _ref("Health")), open_route=True)
        },
        "/readyz": {
            "get": _op(
                "readiness: the database answers and at least one Asterisk's AMI is up",
                "probes",
                {
                    **_json("ready", _ref("Readiness")),
                    **_json("not ready; `checks` says what is down", _ref("Readiness"), "503"),
                },
                open_route=True,
            )
        },
        "/v1/openapi.json": {
            "get": _op(
                "this document", "probes", _json("OpenAPI 3.1", {"type": "object"}), open_route=True
            )
        },
        "/v1/bots": {
            "post": _op(
                "create a bot",
                "bots",
                _json("created", _ref("Created"), "201"),
                400,
                409,
                422,
                body=_ref("Bot"),
            ),
            "get": _op(
                "list bots",
                "bots",
                _list("by name (`after`: a name)", "BotSummary"),
                422,
                params=_PAGE,
            ),
        },
        "/v1/campaigns": {
            "post": _op(
                "create a draft campaign",
                "campaigns",
                _json("created (Location: its URL)", _ref("Created"), "201"),
                400,
                409,
                422,
                body=_ref("Campaign"),
                description="A missing bot or empty pool is allowed in a draft; "
                "`start` checks them.",
            ),
            "get": _op(
                "list campaigns",
                "campaigns",
                _list("oldest first (`after`: an id)", "CampaignSummary"),
                422,
                params=_PAGE,
            ),
        },
        "/v1/campaigns/{campaign}": {
            "get": _op(
                "live activity and stats (`campaign show --json`)",
                "campaigns",
                _json("the campaign", _ref("CampaignShow")),
                404,
                params=campaign,
            ),
            "put": _op(
                "replace the settings of a draft or paused campaign",
                "campaigns",
                _json("updated", _ref("Edited")),
                400,
                404,
                409,
                422,
                body=_ref("Campaign"),
                params=campaign,
                description="Every setting is replaced; absent fields take their "
                "defaults. A paused campaign must still pass the start "
                "checks (422 with `problems`).",
            ),
        },
        "/v1/campaigns/{campaign}/cancel": {
            "post": _op(
                "no new dials; waiting contacts cancelled; completed once live calls end",
                "campaigns",
                _json("cancelled", _ref("Cancelled")),
                404,
                409,
                params=campaign,
            )
        },
        "/v1/campaigns/{campaign}/contacts/import": {
            "post": _op(
                "import a contacts CSV",
                "contacts",
                _json("imported", _ref("ImportSummary")),
                404,
                409,
                413,
                415,
                422,
                params=campaign,
                body={"type": "string"},
                body_type="text/csv",
                description=f"The body is the CSV file (CONTRACT.md), at most {MAX_UPLOAD_BYTES} "
                "bytes. Valid rows land atomically; rejected rows are listed (the "
                f"first {REJECTED_ROWS_SHOWN}) with line and reason. A file-level "
                "problem (no `phone_number` column, not UTF-8, empty) imports "
                "nothing: 422 `bad_csv`.",
            )
        },
        "/v1/campaigns/{campaign}/contacts": {
            "post": _op(
                "add one contact, dialled at once (the API trigger)",
                "contacts",
                _json("added", _ref("AddedContact"), "201"),
                400,
                404,
                409,
                422,
                body=_ref("ContactTrigger"),
                params=campaign,
                description="Any state but completed or cancelled; `metadata` keys become "
                "variables. A number on the do-not-call list is added as "
                "cancelled.",
            )
        },
        "/v1/campaigns/{campaign}/contacts/cancel": {
            "post": _op(
                "cancel a waiting contact",
                "contacts",
                _json("cancelled, or final already", _ref("CancelledContact")),
                400,
                404,
                409,
                422,
                body=_ref("PhoneNumber"),
                params=campaign,
                description="409 when the contact is in a call now.",
            )
        },
        "/v1/campaigns/{campaign}/calls": {
            "get": _op(
                "the call list: every contact with attempts/max and its last result",
                "contacts",
                _list("`dialler calls --json`, in its order (`after`: a contact id)", "Call"),
                404,
                422,
                params=(*campaign, *_PAGE, "state"),
            )
        },
        "/v1/campaigns/{campaign}/report": {
            "get": _op(
                "the attempt report (CSV, CONTRACT.md's columns)",
                "reports",
                {
                    "200": {
                        "description": "streamed CSV",
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    }
                },
                404,
                params=campaign,
            )
        },
        "/v1/bots/{name}": {
            "get": _op(
                "one bot: prompt and pipeline",
                "bots",
                _json("the bot", _ref("BotDetail")),
                404,
                params=("bot",),
            ),
            "put": _op(
                "replace a bot (a rename carries its campaigns along)",
                "bots",
                _json("the bot as it is now", _ref("BotDetail")),
                400,
                404,
                409,
                422,
                body=_ref("Bot"),
                params=("bot",),
            ),
        },
        "/v1/campaigns/validate": {
            "post": _op(
                "check a campaign file without storing it (the console's wizard)",
                "campaigns",
                _json("every problem beside its field, and the warnings", _ref("CampaignCheck")),
                400,
                404,
                params=("edited",),
                body={"type": "object", "description": "the campaign file's fields"},
                description="The checks of `campaign create` and of `campaign start`, except "
                "`no contacts`; problems are answered with 200, not refused.",
            ),
        },
        "/v1/campaigns/{campaign}/triage": {
            "get": _op(
                "the triage guide's quick table evaluated (`dialler triage --json`)",
                "campaigns",
                _json("the report", _ref("Triage")),
                404,
                params=campaign,
            )
        },
        "/v1/fleet": {
            "get": _op(
                "the bot workers: capacity, in use, free, heartbeat age, rotation",
                "fleet",
                _json("the fleet", _ref("Fleet")),
            )
        },
        "/v1/numbers": {
            "get": _op(
                "caller IDs: carrier, enabled, the last hour's calls and SIP shares",
                "numbers",
                _list("by number (`after`: a number)", "NumberStatus"),
                422,
                params=_PAGE,
            )
        },
        "/v1/numbers/{number}/disable": {
            "post": _op(
                "take a caller ID out of rotation",
                "numbers",
                _json(
                    "its status; `warnings` names campaigns left without one", _ref("NumberStatus")
                ),
                404,
                422,
                params=("number",),
            )
        },
        "/v1/numbers/{number}/enable": {
            "post": _op(
                "put a caller ID back in rotation (422 when the config disables it)",
                "numbers",
                _json("its status", _ref("NumberStatus")),
                404,
                422,
                params=("number",),
            )
        },
        "/v1/numbers/{number}/swap": {
            "post": _op(
                "replace a caller ID by another in every pool that can still dial",
                "numbers",
                _json("the campaigns changed", _ref("Swapped")),
                400,
                404,
                422,
                body=_ref("Swap"),
                params=("number",),
                description="Draft, running and paused campaigns that have the number and not "
                "`to`; `to` must be an enabled caller ID of the config (404 unknown, 422 "
                "disabled). One transaction; running daemons are woken.",
            )
        },
        "/v1/suppressions": {
            "get": _op(
                "the do-not-call list",
                "suppressions",
                _list("oldest first (`after`: a number)", "Suppression"),
                422,
                params=_PAGE,
            ),
            "post": _op(
                "add a number; its waiting contacts are cancelled in every campaign",
                "suppressions",
                {
                    **_json("added", _ref("AddedSuppression"), "201"),
                    **_json("listed already (reason updated if given)", _ref("AddedSuppression")),
                },
                400,
                422,
                body=_ref("SuppressionInput"),
            ),
        },
        "/v1/suppressions/{phone_number}": {
            "delete": _op(
                "take a number off the list",
                "suppressions",
                _empty("removed"),
                404,
                422,
                params=("phone_number",),
                description="Contacts it cancelled stay cancelled.",
            )
        },
        "/v1/workers": {
            "post": _op(
                "register (or re-register) a bot worker",
                "workers",
                _json("registered", _ref("WorkerRegistered")),
                400,
                422,
                body=_ref("WorkerRegistration"),
            )
        },
        "/v1/workers/{name}/heartbeat": {
            "post": _op(
                "keep a registered worker in rotation",
                "workers",
                _empty("noted"),
                404,
                params=("worker",),
            )
        },
        "/v1/workers/{name}/leave": {
            "post": _op(
                "take a stopping worker out of rotation (before it closes its port)",
                "workers",
                _empty("out of rotation"),
                404,
                params=("worker",),
            )
        },
        "/v1/calls/{attempt_id}/context": {
            "get": _op(
                "the call's bot, prompt and variables (for the worker)",
                "workers",
                _json("the context", _ref("CallContext")),
                404,
                params=("attempt_id",),
            )
        },
        "/v1/calls/{attempt_id}/result": {
            "post": _op(
                "the bot's result of a call",
                "workers",
                _empty("recorded"),
                400,
                404,
                409,
                422,
                body=_ref("CallResult"),
                params=("attempt_id",),
            )
        },
        "/v1/test-calls": {
            "post": _op(
                "place one call outside any campaign; its stages stream back",
                "workers",
                {
                    "200": {
                        "description": "one JSON object per line, one per stage",
                        "content": {"application/x-ndjson": {"schema": _ref("TestCallStage")}},
                    }
                },
                400,
                404,
                409,
                422,
                503,
                body=_ref("TestCall"),
                description="Only when the daemon runs (not in `make_app` without a placer).",
            )
        },
    }
    for verb, (summary, refused) in transition.items():
        errors = (404, 409) if refused is None else (404, 409, refused)
        paths[f"/v1/campaigns/{{campaign}}/{verb}"] = {
            "post": _op(
                summary,
                "campaigns",
                _json("done", _ref("Changed")),
                *errors,
                params=campaign,
                description=None
                if refused is None
                else "422 `start_checks_failed` lists every problem in `problems`; 409 when the "
                "state does not allow it.",
            )
        }
    return paths


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a new one each call: callers may change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dialler HTTP API",
            "version": "1",
            "description": "Operators (bots, campaigns, contacts, reports, the do-not-call "
            "list), bot workers and probes. docs/api.md has the details. "
            'Errors: {"error": {"code", "message", "field"}}.',
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an operator, viewer or worker token (`api.tokens_file`, "
                    "`api.viewer_tokens_file`, `api.worker_tokens_file`; docs/security.md)",
                }
            },
            "schemas": _schemas(),
            "responses": _responses(),
            "parameters": _parameters(),
        },
    }
