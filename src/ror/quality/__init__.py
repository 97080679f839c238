"""Data-quality engine: the national ROR's rules (docs/quality-rules.md §2) adapted to our data, their anomalies as
RORTask resources and their weekly counts; population (completeness) tracking. Core: no adapter imports.
docs/quality.md."""
