"""Who is using the web pages: the session cookie, the CSRF checks and the French error pages' exceptions.

Cookie `ror_session`: a random token (only its SHA-256 is stored, `web_session`), HttpOnly, SameSite=Lax, Secure
when the request came over HTTPS or `ROR_COOKIE_SECURE=1`. Every POST form carries the session's CSRF token in a
hidden `csrf` field (the login form: a double-submit token in the `ror_login` cookie); a missing or wrong token
is a 403 page."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ror.access.people import SESSION_LIFETIME, PersonRegistry, Session

SESSION_COOKIE = "ror_session"
LOGIN_COOKIE = "ror_login"


class WebError(Exception):
    """An error shown as a French HTML page with its HTTP status."""

    def __init__(self, status: int, title: str, message: str = "") -> None:
        super().__init__(message or title)
        self.status = status
        self.title = title
        self.message = message


class LoginRequired(Exception):
    """No live session: redirect to the login page, then back."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def registry(request: Request) -> PersonRegistry:
    return PersonRegistry(request.app.state.services.engine)


def remote_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def current_session(request: Request) -> Session | None:
    if not hasattr(request.state, "web_session"):
        request.state.web_session = registry(request).session(request.cookies.get(SESSION_COOKIE))
    return request.state.web_session


def require_session(request: Request) -> Session:
    session = current_session(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return session


def check_csrf(session: Session, form: Mapping[str, Any]) -> None:
    sent = form.get("csrf")
    if not isinstance(sent, str) or not secrets.compare_digest(sent, session.csrf):
        raise WebError(
            403,
            "Formulaire refusé",
            "Le jeton de sécurité du formulaire (CSRF) est absent ou invalide. Rechargez la page et recommencez.",
        )


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https" or os.environ.get("ROR_COOKIE_SECURE", "") in ("1", "true")


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )


def login_token(request: Request) -> str:
    """The login form's double-submit token (kept if the browser already has one)."""
    current = request.cookies.get(LOGIN_COOKIE)
    return current if current and len(current) >= 20 else secrets.token_urlsafe(24)


def set_login_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", secure=secure_cookies(request), path="/"
    )
