"""The HTTP answer to every refusal comes from `errors.ANSWERS`, and docs/api.md lists them all.

Each refusal kind is also tested through a real listener (tests/integration/
test_api_refusals.py); these check the mapping itself and its documentation.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dialler import errors
from dialler.api.answers import refusal

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_ROW = re.compile(r"^\| `(?P<name>\w+)` \| (?P<status>\d{3}) \| `(?P<code>\w+)` \|", re.M)


def _body(response: web.Response) -> dict[str, Any]:
    assert isinstance(response.body, bytes)
    found: dict[str, Any] = json.loads(response.body)["error"]
    return found


def test_docs_list_every_refusal_with_its_status_and_code() -> None:
    documented = {m["name"]: (int(m["status"]), m["code"]) for m in _ROW.finditer(DOC.read_text())}
    table = {cls.__name__: (answer.status, answer.code) for cls, answer in errors.ANSWERS.items()}
    assert documented == table


@pytest.mark.parametrize(
    "exc",
    [
        errors.UnknownCampaign("Renewals"),
        errors.NameTaken("campaign", "Renewals"),
        errors.WrongState(
            "campaign Renewals is running, not draft: cannot start it",
            state="running",
            allowed=("draft",),
        ),
        errors.StartChecksFailed("Renewals", ["no bot selected", "number pool is empty"]),
        errors.DuplicateContact("+447700900001", "Renewals", uuid.uuid4(), "pending"),
        errors.ContactNotFound("+447700900001"),
        errors.ContactBusy("+447700900001", uuid.uuid4(), "dialing"),
        errors.TryAgain("the contact kept changing state"),
        errors.NotSuppressed("+447700900001"),
        errors.InvalidField("metadata.Plan", "'metadata.Plan' must be a string"),
        errors.InvalidNumber("invalid phone number '12': too short"),
        errors.CsvFileError("body", "no 'phone_number' column", 1),
        errors.AlreadyFinal(),
        errors.UnknownCall(uuid.uuid4()),
        errors.UnknownWorker("w1"),
        errors.UnknownBot("renewals-bot"),
        errors.TestCallInProgress(),
        errors.NoFreeWorker(),
        errors.DiallingUnavailable(),
        errors.SpecError(
            ["name: missing", "concurrency: must be an integer"],
            "body",
            fields=["name", "concurrency"],
        ),
    ],
)
def test_refusal_answer_is_the_tables(exc: errors.DiallerError) -> None:
    response = refusal(exc)
    answer = errors.answer_for(exc)
    body = _body(response)
    assert (response.status, body["code"]) == (answer.status, answer.code)
    assert body["message"] == str(exc)
    assert body.get("field") == exc.field
    assert body.get("problems", []) == list(exc.problems)
    assert body.get("line") == (exc.line if isinstance(exc, errors.CsvFileError) else None)
    assert ("Retry-After" in response.headers) == isinstance(exc, errors.TryAgain)


def test_try_again_says_when() -> None:
    response = refusal(errors.TryAgain())
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert _body(response)["code"] == "try_again"


def test_a_class_without_its_own_entry_takes_its_bases() -> None:
    class Gone(errors.NotFound):
        """Gone."""

    body = _body(refusal(Gone()))
    assert body == {"code": "not_found", "message": "Gone."}
