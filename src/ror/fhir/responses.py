"""FHIR JSON responses and OperationOutcome."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from ror.errors import Issue

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode()
        return orjson.dumps(content)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    out = []
    for i in issues:
        item: dict[str, Any] = {"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics}
        if i.expression:
            item["expression"] = i.expression
        out.append(item)
    return {"resourceType": "OperationOutcome", "issue": out}


def outcome_response(status: int, issues: list[Issue], headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(operation_outcome(issues), status_code=status, headers=headers)
