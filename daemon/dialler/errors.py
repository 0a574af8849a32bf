"""The package's exceptions: one root, each docstring is its default message."""

from __future__ import annotations


class DiallerError(Exception):
    """Something went wrong in the dialler."""

    #: CLI exit code for this kind of error (CONTRACT.md: 1 operational, 2 invalid input).
    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InvalidInput(DiallerError):
    """The input is invalid."""

    exit_code = 2


class ConfigError(InvalidInput):
    """The configuration is invalid."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class OperationalError(DiallerError):
    """A service the dialler needs is unavailable."""

    exit_code = 1


class LabError(OperationalError):
    """The lab could not be brought up or down."""
