"""The package's exceptions: one root, each docstring its default message, and one table.

Every refusal the CLI, the HTTP API or the console can give is a class here carrying typed data
(the field at fault, the problems, the states involved), so callers tell refusals apart by
their type, never by their text. `ANSWERS` maps each class, once, to its CLI exit code and its
HTTP status and error code; `answer_for` finds the entry of an exception (its class or the
nearest mapped base). CONTRACT.md: exit 1 operational failure, 2 invalid input or refused.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType


class DiallerError(Exception):
    """Something went wrong in the dialler."""

    #: The key path or request field at fault, when one is (`phone_number`, `window.start`).
    field: str | None = None
    #: Several problems at once (start checks, every invalid key of a file), each one line.
    problems: Sequence[str] = ()

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this error (from `ANSWERS`)."""
        return answer_for(self).exit_code


# --- operational failures (exit 1, HTTP 503) ------------------------------------------------


class OperationalError(DiallerError):
    """A service the dialler needs is unavailable."""


class LabError(OperationalError):
    """The lab could not be brought up or down."""


class TryAgain(OperationalError):
    """The request met a change in progress; the same request again is expected to work."""


# --- invalid input (exit 2, HTTP 422) -------------------------------------------------------


class InvalidInput(DiallerError):
    """The input is invalid."""

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(InvalidInput):
    """The configuration is invalid."""

    def __init__(self, problems: Sequence[str], source: str = "config") -> None:
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = tuple(problems)


class SpecError(InvalidInput):
    """The bot or campaign file is invalid."""

    def __init__(self, problems: Sequence[str], source: str, fields: Sequence[str] = ()) -> None:
        #: Each problem as ``<file>[:<line>]: <key path>: <what is wrong>``.
        self.source = source
        #: The key paths at fault, in the order of `problems` (when the reader knows them).
        self.fields = tuple(fields)
        if len(problems) == 1:
            message = problems[0]
        else:
            message = f"{source}: {len(problems)} problems:\n  - " + "\n  - ".join(problems)
        super().__init__(message, field=self.fields[0] if self.fields else None)
        self.problems = tuple(problems)


class CsvFileError(InvalidInput):
    """The contacts file cannot be imported."""

    def __init__(self, path: str | os.PathLike[str], problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")


class InvalidField(InvalidInput):
    """A field of the request has an invalid value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class InvalidNumber(InvalidField):
    """The phone number cannot be used."""

    def __init__(self, message: str, field: str = "phone_number") -> None:
        super().__init__(field, message)


class StartChecksFailed(InvalidInput):
    """The campaign cannot start: the guide's checks found problems."""

    def __init__(self, campaign: str, problems: Sequence[str], verb: str = "start") -> None:
        #: The campaign's name, and what it was refused (start, resume, take new settings).
        self.campaign, self.verb = campaign, verb
        super().__init__(f"campaign {campaign} cannot {verb}:\n  - " + "\n  - ".join(problems))
        self.problems = tuple(problems)


class SettingsRefused(InvalidInput):
    """The database refused the campaign's settings (a CHECK constraint)."""

    def __init__(self, constraint: str | None) -> None:
        #: The constraint that refused them, when PostgreSQL names it.
        self.constraint = constraint
        super().__init__(
            f"the database refused the campaign's settings ({constraint or 'a check constraint'})"
        )


class Forbidden(InvalidInput):
    """The token's role does not allow this request: a viewer changing something, a worker
    token outside the worker routes or acting for another worker's name, anyone changing a
    worker the config defines."""

    def __init__(self, message: str | None = None, field: str | None = None) -> None:
        super().__init__(message, field=field)


# --- not found (exit 2, HTTP 404) ----------------------------------------------------------


class NotFound(InvalidInput):
    """No such thing."""


class UnknownCampaign(NotFound):
    """No such campaign."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"unknown campaign: {ref!r}", field="campaign")


class UnknownBot(NotFound):
    """No such bot."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no bot named {name!r}", field="bot")


class UnknownWorker(NotFound):
    """No such worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown worker {name!r}: register first", field="name")


class UnknownCall(NotFound):
    """No such call."""

    def __init__(self, attempt_id: uuid.UUID | str) -> None:
        self.attempt_id = str(attempt_id)
        super().__init__("no such call")


class UnknownNumber(NotFound):
    """The number is not a caller ID of the configured pool."""

    def __init__(
        self, number: str, why: str = "it is not a caller ID of any configured carrier"
    ) -> None:
        self.number = number
        super().__init__(f"unknown number {number}: {why}", field="number")


class ContactNotFound(NotFound):
    """No such contact in this campaign."""

    def __init__(self, phone: str) -> None:
        self.phone = phone
        super().__init__(
            f"phone_number {phone}: no such contact in this campaign", field="phone_number"
        )


class NotSuppressed(NotFound):
    """The number is not on the do-not-call list."""

    def __init__(self, phone: str) -> None:
        self.phone = phone
        super().__init__(f"{phone} is not on the do-not-call list", field="phone_number")


# --- conflicts with the current state (exit 2, HTTP 409) -----------------------------------


class Conflict(InvalidInput):
    """The current state does not allow it."""


class NameTaken(Conflict):
    """Another bot or campaign already has this name."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"a {kind} named {name!r} already exists", field="name")


class WrongState(Conflict):
    """The campaign's state does not allow this."""

    def __init__(self, message: str, *, state: str, allowed: Sequence[str] = ()) -> None:
        #: The state found, and the states the action needs.
        self.state = state
        self.allowed = tuple(allowed)
        super().__init__(message)
        self.problems = (message,)


class DuplicateContact(Conflict):
    """The campaign already has a contact with this number."""

    def __init__(self, phone: str, campaign: str, contact_id: uuid.UUID, state: str) -> None:
        self.phone, self.contact_id, self.state = phone, contact_id, state
        super().__init__(
            f"phone_number {phone} is already in campaign {campaign!r} "
            f"(contact {contact_id}, {state})",
            field="phone_number",
        )


class ContactBusy(Conflict):
    """The contact is in a call now."""

    def __init__(self, phone: str, contact_id: uuid.UUID, state: str) -> None:
        self.phone, self.contact_id, self.state = phone, contact_id, state
        super().__init__(
            f"phone_number {phone}: contact {contact_id} is in a call now ({state}) and "
            "cannot be cancelled; the call's result decides whether it is dialled again, "
            "so cancel it once the call has ended",
            field="phone_number",
        )


class AlreadyFinal(Conflict):
    """This call's result is already final."""


class TestCallRefused(DiallerError):
    """The test call cannot be placed."""

    __test__ = False  # not a pytest class, despite its name

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TestCallInProgress(TestCallRefused):
    """A test call to this number is in progress."""

    def __init__(self) -> None:
        super().__init__(field="to")


class NumberSuppressed(TestCallRefused):
    """The number is on the do-not-call list: no test call to it (nothing reaches the
    carrier)."""

    def __init__(self) -> None:
        super().__init__("the number is on the do-not-call list", field="to")


class NoFreeWorker(TestCallRefused):
    """No bot worker has a free slot."""


class DiallingUnavailable(TestCallRefused):
    """AMI is down: nothing can be dialled."""


# --- the one table ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """How a refusal is answered: CLI exit code, HTTP status, the JSON error's `code`."""

    exit_code: int
    status: int
    code: str


ANSWERS: Mapping[type[DiallerError], Answer] = MappingProxyType(
    {
        DiallerError: Answer(1, 500, "internal"),
        OperationalError: Answer(1, 503, "unavailable"),
        LabError: Answer(1, 503, "unavailable"),
        TryAgain: Answer(1, 503, "try_again"),
        InvalidInput: Answer(2, 422, "invalid"),
        ConfigError: Answer(2, 422, "invalid_config"),
        SpecError: Answer(2, 422, "invalid_field"),
        CsvFileError: Answer(2, 422, "bad_csv"),
        InvalidField: Answer(2, 422, "bad_field"),
        InvalidNumber: Answer(2, 422, "bad_field"),
        StartChecksFailed: Answer(2, 422, "start_checks_failed"),
        SettingsRefused: Answer(2, 422, "settings_refused"),
        Forbidden: Answer(2, 403, "forbidden"),
        NotFound: Answer(2, 404, "not_found"),
        UnknownCampaign: Answer(2, 404, "not_found"),
        UnknownBot: Answer(2, 404, "not_found"),
        UnknownWorker: Answer(2, 404, "not_found"),
        UnknownCall: Answer(2, 404, "not_found"),
        UnknownNumber: Answer(2, 404, "not_found"),
        ContactNotFound: Answer(2, 404, "not_found"),
        NotSuppressed: Answer(2, 404, "not_found"),
        Conflict: Answer(2, 409, "conflict"),
        NameTaken: Answer(2, 409, "name_taken"),
        WrongState: Answer(2, 409, "wrong_state"),
        DuplicateContact: Answer(2, 409, "duplicate"),
        ContactBusy: Answer(2, 409, "in_call"),
        AlreadyFinal: Answer(2, 409, "already_final"),
        TestCallRefused: Answer(2, 409, "refused"),
        TestCallInProgress: Answer(2, 409, "in_progress"),
        NumberSuppressed: Answer(2, 409, "suppressed"),
        NoFreeWorker: Answer(1, 503, "no_capacity"),
        DiallingUnavailable: Answer(1, 503, "unavailable"),
    }
)


def answer_for(exc: DiallerError) -> Answer:
    """The table's entry for `exc`: its own class's, else its nearest mapped base's."""
    for cls in type(exc).__mro__:
        answer = ANSWERS.get(cls)
        if answer is not None:
            return answer
    raise AssertionError("DiallerError is always mapped")  # pragma: no cover
