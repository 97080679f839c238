"""Settings, read from the environment (never from files committed to the repo)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./ror.db"
FHIR_BASE_PATH = "/fhir"


def _default_reference_dir() -> Path | None:
    """`ROR_REFERENCE_DATA`, else `../shared/data` when it exists (next to the checkout)."""
    env = os.environ.get("ROR_REFERENCE_DATA")
    if env:
        return Path(env)
    for candidate in (
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[3] / "shared" / "data",
    ):
        if candidate.is_dir():
            return candidate
    return None


def _default_export_dir() -> Path:
    """`ROR_EXPORT_DIR`, else `exports/` next to the SQLite database file (or in the working directory)."""
    env = os.environ.get("ROR_EXPORT_DIR")
    if env:
        return Path(env)
    url = os.environ.get("ROR_DATABASE_URL", DEFAULT_DATABASE_URL)
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        return Path(url[len("sqlite:///") :]).parent / "exports"
    return Path("exports")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: os.environ.get("ROR_DATABASE_URL", DEFAULT_DATABASE_URL))
    reference_data: Path | None = field(default_factory=_default_reference_dir)
    base_url: str = field(default_factory=lambda: os.environ.get("ROR_BASE_URL", "http://127.0.0.1:8000"))
    host: str = field(default_factory=lambda: os.environ.get("ROR_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(os.environ.get("ROR_PORT", "8000")))
    demo_scope: str = field(default_factory=lambda: os.environ.get("ROR_DEMO_SCOPE", "region:53"))
    export_dir: Path = field(default_factory=_default_export_dir)  # bulk $export files and open-data CSV

    @property
    def fhir_base(self) -> str:
        return self.base_url.rstrip("/") + FHIR_BASE_PATH


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
