"""People (accounts of the web application): roles, argon2-hashed passwords, lockout, server-side sessions.

Roles and what they give (docs/web.md):

| role | access profile | may write |
|---|---|---|
| national_admin | 1 (everything, level 3) | every establishment |
| regional_admin | 1 | the establishments of its region |
| establishment_manager, unit_editor | 2 (professionals) | its FINESS list |
| regulator (SAMU, crisis cell) | 1 (level 3 phones) | nothing |
| viewer | 2 | nothing |

Sessions are rows of `web_session`: the cookie holds a random token, the table only its SHA-256, so a database
dump does not give sessions away; each session carries its own CSRF token. Every login attempt is audited."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, func, insert, select, update

from ror.access import audit
from ror.access.policy import Profile
from ror.access.tokens import Caller
from ror.db.tables import person, web_session
from ror.errors import InvalidRequest, NotFound
from ror.search.normalise import utcnow

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password, only for constant time")


@dataclass(frozen=True)
class Role:
    label: str  # French, shown in the pages
    profile: Profile
    writes: str  # all | region | finess | none
    dashboard: bool  # may see the regional/national dashboard


ROLES: dict[str, Role] = {
    "national_admin": Role("Administrateur national", Profile.ALL, "all", True),
    "regional_admin": Role("Administrateur régional (ARS / GRADeS)", Profile.ALL, "region", True),
    "establishment_manager": Role("Responsable d'établissement", Profile.PROFESSIONAL, "finess", False),
    "unit_editor": Role("Éditeur d'unité", Profile.PROFESSIONAL, "finess", False),
    "regulator": Role("Régulateur (SAMU, cellule de crise)", Profile.ALL, "none", True),
    "viewer": Role("Lecteur (professionnel)", Profile.PROFESSIONAL, "none", False),
}


@dataclass(frozen=True)
class Person:
    pk: int
    email: str
    name: str
    role: str
    finess: tuple[str, ...]
    region: str | None
    active: bool

    @property
    def role_info(self) -> Role:
        return ROLES[self.role]

    @property
    def profile(self) -> Profile:
        return self.role_info.profile

    @property
    def subject(self) -> str:
        return f"person:{self.email}"

    def may_write(self, finess: str, region: str | None) -> bool:
        """Whether the person may enter the capacities of establishment `finess` (in `region`)."""
        writes = self.role_info.writes
        if writes == "all":
            return True
        if writes == "region":
            return bool(self.region) and self.region == region
        if writes == "finess":
            return finess in self.finess
        return False

    def caller(self, finess: str | None = None, region: str | None = None) -> Caller:
        """The access-control caller of this person; given an establishment the person may write (administrators
        included), its FINESS is in `feeds` so that `rights.require_write` accepts its resources."""
        feeds = set(self.finess if self.role_info.writes == "finess" else ())
        if finess is not None and self.may_write(finess, region):
            feeds.add(finess)
        scopes = {"read"} | ({"write"} if feeds else set())
        return Caller(self.profile, "person", self.subject, tuple(sorted(feeds)), frozenset(scopes))


@dataclass(frozen=True)
class LoginResult:
    person: Person | None
    message: str = ""  # French, for the login page when refused


@dataclass(frozen=True)
class Session:
    person: Person
    csrf: str
    expires: datetime


def _row_to_person(row: object) -> Person:
    return Person(
        int(row.pk),  # type: ignore[attr-defined]
        row.email,  # type: ignore[attr-defined]
        row.name,  # type: ignore[attr-defined]
        row.role,  # type: ignore[attr-defined]
        tuple(json.loads(row.finess or "[]")),  # type: ignore[attr-defined]
        row.region,  # type: ignore[attr-defined]
        bool(row.active),  # type: ignore[attr-defined]
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"le mot de passe doit compter au moins {MIN_PASSWORD} caractères", expression="password")


class PersonRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- accounts ----------------------------------------------------------------------------------------------
    def add(
        self,
        email: str,
        name: str,
        role: str,
        password: str,
        finess: list[str] | None = None,
        region: str | None = None,
    ) -> Person:
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise InvalidRequest(f"adresse électronique invalide : {email!r}", expression="email")
        if role not in ROLES:
            raise InvalidRequest(f"rôle inconnu {role!r} (rôles : {', '.join(ROLES)})", expression="role")
        check_password_strength(password)
        finess = sorted(set(finess or []))
        for f in finess:
            if len(f) != 9 or not f[:2].isalnum():
                raise InvalidRequest(f"{f!r} n'est pas un numéro FINESS (9 caractères)", expression="finess")
        if ROLES[role].writes == "finess" and not finess:
            raise InvalidRequest(f"le rôle {role} demande au moins un FINESS (--finess)", expression="finess")
        if ROLES[role].writes == "region" and not region:
            raise InvalidRequest(f"le rôle {role} demande une région (--region)", expression="region")
        with self.engine.begin() as c:
            if c.execute(select(person.c.pk).where(person.c.email == email)).first() is not None:
                raise InvalidRequest(f"un compte existe déjà pour {email}", expression="email")
            c.execute(
                insert(person).values(
                    email=email,
                    name=name.strip(),
                    role=role,
                    password_hash=_hasher.hash(password),
                    active=True,
                    failed_attempts=0,
                    finess=json.dumps(finess),
                    region=region,
                    created=utcnow(),
                )
            )
        return self.get(email)

    def get(self, email: str) -> Person:
        with self.engine.connect() as c:
            row = c.execute(select(person).where(person.c.email == email.strip().lower())).first()
        if row is None:
            raise NotFound(f"aucun compte pour {email}")
        return _row_to_person(row)

    def list(self) -> list[Person]:
        with self.engine.connect() as c:
            return [_row_to_person(r) for r in c.execute(select(person).order_by(person.c.email))]

    def set_active(self, email: str, active: bool) -> Person:
        found = self.get(email)
        with self.engine.begin() as c:
            c.execute(update(person).where(person.c.pk == found.pk).values(active=active))
            if not active:
                c.execute(delete(web_session).where(web_session.c.person_pk == found.pk))
        return self.get(email)

    def set_role(self, email: str, role: str, finess: list[str] | None = None, region: str | None = None) -> Person:
        """Change the role (and its FINESS list / région, checked as in `add`); the person's sessions end so that
        the new rights apply at once."""
        found = self.get(email)
        if role not in ROLES:
            raise InvalidRequest(f"rôle inconnu {role!r} (rôles : {', '.join(ROLES)})", expression="role")
        finess = sorted(set(finess or []))
        for f in finess:
            if len(f) != 9 or not f[:2].isalnum():
                raise InvalidRequest(f"{f!r} n'est pas un numéro FINESS (9 caractères)", expression="finess")
        if ROLES[role].writes == "finess" and not finess:
            raise InvalidRequest(f"le rôle {role} demande au moins un FINESS", expression="finess")
        if ROLES[role].writes == "region" and not region:
            raise InvalidRequest(f"le rôle {role} demande une région", expression="region")
        with self.engine.begin() as c:
            c.execute(
                update(person)
                .where(person.c.pk == found.pk)
                .values(role=role, finess=json.dumps(finess), region=region or None)
            )
            c.execute(delete(web_session).where(web_session.c.person_pk == found.pk))
        return self.get(email)

    def set_password(self, email: str, password: str) -> None:
        check_password_strength(password)
        found = self.get(email)
        with self.engine.begin() as c:
            c.execute(
                update(person)
                .where(person.c.pk == found.pk)
                .values(password_hash=_hasher.hash(password), failed_attempts=0, locked_until=None)
            )
            c.execute(delete(web_session).where(web_session.c.person_pk == found.pk))

    # -- login -------------------------------------------------------------------------------------------------
    def authenticate(
        self, email: str, password: str, *, remote_addr: str | None = None, now: datetime | None = None
    ) -> LoginResult:
        """The person when the password matches an active, unlocked account. 5 failures lock the account for 15
        minutes. Every outcome is audited (action `login`)."""
        now = now or utcnow()
        email = email.strip().lower()
        refused = LoginResult(None, "Adresse électronique ou mot de passe incorrect.")
        # The password is checked (~90 ms of argon2) outside any transaction; the bookkeeping is then one short
        # write transaction that takes the write lock up front (BEGIN IMMEDIATE on SQLite: a deferred transaction
        # that read first could not become a writer once other writers had committed — logins failed with
        # "database is locked" under a capacity feed).
        with self.engine.connect() as c:
            row = c.execute(select(person).where(person.c.email == email)).first()
        if row is None:
            _verify(_DUMMY_HASH, password)  # same cost as a real check: no timing oracle on emails
            audit.record(self.engine, **_login(email, "denied", remote_addr, "unknown account"))
            return refused
        if row.locked_until is not None and row.locked_until > now:
            audit.record(self.engine, **_login(email, "denied", remote_addr, "account locked"))
            until = row.locked_until.strftime("%H:%M")
            return LoginResult(None, f"Compte verrouillé après {MAX_FAILURES} échecs : réessayez après {until} (UTC).")
        matches = _verify(row.password_hash, password)
        with self.engine.connect().execution_options(ror_write=True) as c, c.begin():
            by_pk = person.c.pk == row.pk
            if not matches:  # counted in the database: concurrent wrong attempts all count
                c.execute(
                    update(person).where(by_pk).values(failed_attempts=func.coalesce(person.c.failed_attempts, 0) + 1)
                )
                failures = int(c.execute(select(person.c.failed_attempts).where(by_pk)).scalar_one())
                detail = f"wrong password ({failures} consecutive)"
                if failures >= MAX_FAILURES:
                    c.execute(update(person).where(by_pk).values(failed_attempts=0, locked_until=now + LOCKOUT))
                    detail += f"; locked for {int(LOCKOUT.total_seconds() // 60)} min"
                audit.record(c, **_login(email, "denied", remote_addr, detail))
                if failures >= MAX_FAILURES:
                    return LoginResult(
                        None,
                        f"Compte verrouillé pour {int(LOCKOUT.total_seconds() // 60)} minutes après "
                        f"{MAX_FAILURES} échecs.",
                    )
                return refused
            if not row.active:
                audit.record(c, **_login(email, "denied", remote_addr, "account disabled"))
                return LoginResult(None, "Ce compte est désactivé : contactez votre administrateur.")
            values: dict[str, object] = {"failed_attempts": 0, "locked_until": None, "last_login": now}
            if _hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = _hasher.hash(password)
            c.execute(update(person).where(by_pk).values(**values))
            audit.record(c, **_login(email, "success", remote_addr, None))
        return LoginResult(_row_to_person(row))

    # -- sessions ----------------------------------------------------------------------------------------------
    def open_session(self, who: Person, *, remote_addr: str | None = None) -> tuple[str, Session]:
        """A new session: (cookie token, session). The token is returned once; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        csrf = secrets.token_urlsafe(24)
        expires = now + SESSION_LIFETIME
        with self.engine.begin() as c:
            c.execute(delete(web_session).where(web_session.c.expires < now))
            c.execute(
                insert(web_session).values(
                    token_hash=token_hash(token),
                    person_pk=who.pk,
                    csrf=csrf,
                    created=now,
                    expires=expires,
                    remote_addr=remote_addr,
                )
            )
        return token, Session(who, csrf, expires)

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie token (its person active), else None."""
        if not token:
            return None
        with self.engine.connect() as c:
            row = c.execute(
                select(person, web_session.c.csrf, web_session.c.expires)
                .select_from(web_session.join(person, person.c.pk == web_session.c.person_pk))
                .where(web_session.c.token_hash == token_hash(token))
            ).first()
        if row is None or row.expires <= utcnow() or not row.active:
            return None
        return Session(_row_to_person(row), row.csrf, row.expires)

    def close_session(self, token: str | None) -> None:
        if token:
            with self.engine.begin() as c:
                c.execute(delete(web_session).where(web_session.c.token_hash == token_hash(token)))


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _login(email: str, outcome: str, remote_addr: str | None, detail: str | None) -> dict[str, object]:
    return {
        "actor_type": "person",
        "actor_id": email,
        "action": "login",
        "outcome": outcome,
        "remote_addr": remote_addr,
        "detail": detail,
    }
