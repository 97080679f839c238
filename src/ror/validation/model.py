"""What validation reports: findings (one per problem) and how they become an HTTP-mappable error."""

from __future__ import annotations

from dataclasses import dataclass, field

from ror.errors import Issue, RorError


@dataclass(frozen=True)
class Finding:
    rule: str  # rule id (docs/validation.md)
    severity: str  # error | warning | information
    code: str  # FHIR issue type: structure, required, value, code-invalid, not-found, duplicate, invariant…
    expression: str  # FHIRPath of the offending element
    message: str
    structural: bool = False  # a malformed resource (400) rather than a profile violation (422)

    def issue(self) -> Issue:
        return Issue(self.severity, self.code, f"[{self.rule}] {self.message}", [self.expression])


class ValidationFailed(RorError):
    """422 when the resource violates the profile, 400 when it is not a well-formed resource."""

    status, code = 422, "processing"


@dataclass
class ValidationResult:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in ("error", "fatal")]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity not in ("error", "fatal")]

    @property
    def ok(self) -> bool:
        return not self.errors

    def warning_issues(self) -> list[Issue]:
        return [f.issue() for f in self.warnings]

    def raise_for_errors(self) -> None:
        """Raise ValidationFailed carrying one issue per finding (warnings included, errors first)."""
        errors = self.errors
        if not errors:
            return
        status = 400 if any(f.structural for f in errors) else 422
        issues = [f.issue() for f in errors] + self.warning_issues()
        raise ValidationFailed(
            f"{len(errors)} error(s): " + "; ".join(f.message for f in errors[:3]), status=status, issues=issues
        )
