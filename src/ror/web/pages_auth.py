"""Login and logout pages."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ror.web.render import render
from ror.web.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    WebError,
    check_csrf,
    current_session,
    login_token,
    registry,
    remote_addr,
    require_session,
    set_login_cookie,
    set_session_cookie,
)

router = APIRouter(include_in_schema=False)


def _safe_target(target: str | None) -> str:
    """Only local paths (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(request: Request, target: str, message: str = "", email: str = "", status: int = 200) -> Response:
    token = login_token(request)
    response = render(
        request,
        "login.html",
        {"title": "Connexion", "login_csrf": token, "target": target, "message": message, "email": email},
        status=status,
    )
    set_login_cookie(request, response, token)
    return response


@router.get("/connexion")
def login_form(request: Request, suivant: str = "/") -> Response:
    if current_session(request) is not None:
        return RedirectResponse(_safe_target(suivant), status_code=303)
    return _login_page(request, _safe_target(suivant))


@router.post("/connexion")
async def login(request: Request) -> Response:
    form = await request.form()
    sent, expected = str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE) or ""
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise WebError(
            403,
            "Formulaire refusé",
            "Le jeton de sécurité du formulaire de connexion est absent ou invalide (cookies bloqués ?). "
            "Rechargez la page de connexion.",
        )
    email, password = str(form.get("email") or ""), str(form.get("password") or "")
    target = _safe_target(str(form.get("suivant") or "/"))
    people = registry(request)
    result = people.authenticate(email, password, remote_addr=remote_addr(request))
    if result.person is None:
        return _login_page(request, target, result.message, email, status=401)
    token, _ = people.open_session(result.person, remote_addr=remote_addr(request))
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/deconnexion")
async def logout(request: Request) -> Response:
    session = require_session(request)
    check_csrf(session, await request.form())
    registry(request).close_session(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/connexion", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
