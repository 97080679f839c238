"""Validation of written resources against the ROR profiles (docs/validation.md): structure (400), profile
cardinalities, required extensions, codes within their JDV, references that resolve and unique identifiers (422).
Rules are declared one per constraint, each with an id, a FHIRPath expression and a severity."""

from ror.validation.model import Finding, ValidationFailed, ValidationResult
from ror.validation.validator import Validator

__all__ = ["Finding", "ValidationFailed", "ValidationResult", "Validator"]
