"""Bulk export (FHIR Bulk Data `$export`: requests, persisted jobs, a background runner writing ndjson) and the open
data extraction (public view as CSV). Core: never imports the adapters (fhir/, web/, cli, server)."""
