"""The web application for people (server-rendered, French UI): login, search, unit pages, capacity entry,
dashboard. An adapter like `fhir/`: it calls the core services and the access rules; docs/web.md."""

from __future__ import annotations

from ror.web.app import install_web

__all__ = ["install_web"]
