"""Database: engine, tables, Alembic migrations."""
