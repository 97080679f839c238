"""The write use cases of the FHIR API (create, update, patch, conditional writes, delete-as-closure): rights,
profile validation, storage and audit in one transaction; generic FHIRPath Patch and JSON Patch."""
