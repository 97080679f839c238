"""Emergency-department activity (urgences): patients present, waiting for a bed (brancards) and passages of the
last 24 h, reported by hand or by feed, kept as a time series and exposed as FHIR MeasureReport
(docs/urgences.md)."""

from ror.urgences.model import Report
from ror.urgences.service import UrgencesService

__all__ = ["Report", "UrgencesService"]
