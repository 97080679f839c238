"""Search: SearchParameter registry (data), value extraction, query parsing and SQL compilation."""
