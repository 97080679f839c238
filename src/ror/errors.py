"""Domain errors. Each carries what a FHIR OperationOutcome needs (HTTP status, issue code, FHIRPath
expression); the HTTP adapters turn them into responses, the core never builds HTTP objects."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar


@dataclass
class Issue:
    severity: str  # fatal | error | warning | information
    code: str  # FHIR issue-type: invalid, not-found, business-rule, conflict, ...
    diagnostics: str
    expression: list[str] = field(default_factory=list)


class RorError(Exception):
    status: int = 400
    code: str = "invalid"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: str | list[str] | None = None,
        status: int | None = None,
        code: str | None = None,
        issues: list[Issue] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        exprs = [expression] if isinstance(expression, str) else list(expression or [])
        self.issues = issues or [Issue("error", self.code, diagnostics, exprs)]


class InvalidRequest(RorError):
    status, code = 400, "invalid"


class NotFound(RorError):
    status, code = 404, "not-found"


class Gone(RorError):
    status, code = 410, "deleted"


class PreconditionFailed(RorError):
    status, code = 412, "conflict"


class Conflict(RorError):
    status, code = 409, "conflict"


class Unprocessable(RorError):
    status, code = 422, "processing"


class UnknownCode(RorError):
    """A code or system that the terminology does not know: never silently accepted."""

    status, code = 400, "code-invalid"


F = TypeVar("F", bound=Callable[..., Any])


def client_json(what: str) -> Callable[[F], F]:
    """Decorator for parsers of a client's JSON body: an element of the wrong JSON type met while parsing (a list
    where an object is expected, a number where a string is…) is a 400 naming `what`, never a 500."""

    def wrap(parse: F) -> F:
        @functools.wraps(parse)
        def parsed(*args: Any, **kwargs: Any) -> Any:
            try:
                return parse(*args, **kwargs)
            except (AttributeError, TypeError, KeyError) as exc:
                raise InvalidRequest(
                    f"malformed {what}: an element has the wrong JSON type ({exc})", expression=what
                ) from exc

        return parsed  # type: ignore[return-value]

    return wrap
