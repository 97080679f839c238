"""Resource store: FHIR resources as the stored truth, with versions and search indexes."""

from ror.store.store import ResourceStore, Stored, UpsertCounts

__all__ = ["ResourceStore", "Stored", "UpsertCounts"]
