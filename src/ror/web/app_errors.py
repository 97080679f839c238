"""Core errors as French error pages."""

from __future__ import annotations

from fastapi import Request

from ror.access.rights import Forbidden, Unauthorized
from ror.errors import RorError
from ror.web.session import WebError, current_session


def error_from(exc: RorError) -> WebError:
    """A core error as a French page (403 for rights, 404, 400 otherwise)."""
    if isinstance(exc, Forbidden | Unauthorized):
        return WebError(403, "Accès refusé", "Votre compte ne permet pas de modifier cet établissement.")
    if exc.status in (404, 410):
        return WebError(404, "Page introuvable", exc.diagnostics)
    return WebError(exc.status, "Requête invalide", exc.diagnostics)


def may_not_see(request: Request) -> WebError:
    who = current_session(request)
    name = who.person.name if who else "?"
    return WebError(403, "Accès refusé", f"Le rôle de {name} ne donne pas accès à cette page.")
