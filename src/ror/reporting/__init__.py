"""Reports built from the capacity history (core: no adapter imports). docs/reports.md."""
