"""HTTP adapter: the FHIR R4 REST API of the ROR (docs/ror-fhir-api.md)."""
