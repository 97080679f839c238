"""People: argon2 hashes, lockout after 5 failures for 15 minutes, audited logins, sessions, roles → access
profile and write rights, CSRF rejection of the web forms."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select

from ror.access.people import LOCKOUT, MAX_FAILURES, ROLES, PersonRegistry
from ror.access.policy import Profile
from ror.db.tables import audit_event, person, web_session
from ror.errors import InvalidRequest
from ror.search.normalise import utcnow
from ror.server import create_app

PASSWORD = "un mot de passe assez long"


@pytest.fixture
def people(engine: Engine) -> PersonRegistry:
    with engine.begin() as c:
        c.execute(delete(web_session))
        c.execute(delete(person))
    return PersonRegistry(engine)


def _logins(engine: Engine, email: str) -> list[tuple[str, str | None]]:
    with engine.connect() as c:
        rows = c.execute(
            select(audit_event.c.outcome, audit_event.c.detail)
            .where(audit_event.c.action == "login", audit_event.c.actor_id == email)
            .order_by(audit_event.c.pk)
        ).all()
    return [(r.outcome, r.detail) for r in rows]


def test_passwords_are_argon2_hashed_and_checked(people: PersonRegistry, engine: Engine) -> None:
    who = people.add("Marie.Curie@Test.fr", "Marie Curie", "viewer", PASSWORD)
    assert who.email == "marie.curie@test.fr"
    with engine.connect() as c:
        stored = c.execute(select(person.c.password_hash).where(person.c.pk == who.pk)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert people.authenticate("marie.curie@test.fr", PASSWORD).person == who
    assert people.authenticate("marie.curie@test.fr", "wrong").person is None
    assert people.authenticate("nobody@test.fr", PASSWORD).person is None
    assert [o for o, _ in _logins(engine, "marie.curie@test.fr")] == ["success", "denied"]
    assert _logins(engine, "nobody@test.fr") == [("denied", "unknown account")]


def test_account_rules(people: PersonRegistry) -> None:
    with pytest.raises(InvalidRequest, match="12 caractères"):
        people.add("a@test.fr", "A", "viewer", "court")
    with pytest.raises(InvalidRequest, match="rôle inconnu"):
        people.add("a@test.fr", "A", "king", PASSWORD)
    with pytest.raises(InvalidRequest, match="FINESS"):
        people.add("a@test.fr", "A", "unit_editor", PASSWORD)
    with pytest.raises(InvalidRequest, match="région"):
        people.add("a@test.fr", "A", "regional_admin", PASSWORD)
    people.add("a@test.fr", "A", "viewer", PASSWORD)
    with pytest.raises(InvalidRequest, match="existe déjà"):
        people.add("A@test.fr", "A", "viewer", PASSWORD)


def test_lockout_after_five_failures_for_fifteen_minutes(people: PersonRegistry, engine: Engine) -> None:
    people.add("b@test.fr", "B", "viewer", PASSWORD)
    now = utcnow()
    for _ in range(MAX_FAILURES):
        result = people.authenticate("b@test.fr", "mauvais", now=now)
        assert result.person is None
    assert "verrouillé" in result.message
    locked = people.authenticate("b@test.fr", PASSWORD, now=now + timedelta(minutes=1))
    assert locked.person is None and "verrouillé" in locked.message  # even the right password
    later = people.authenticate("b@test.fr", PASSWORD, now=now + LOCKOUT + timedelta(seconds=1))
    assert later.person is not None
    details = [d for _, d in _logins(engine, "b@test.fr")]
    assert "locked for 15 min" in (details[MAX_FAILURES - 1] or "")
    assert details[MAX_FAILURES] == "account locked"
    assert _logins(engine, "b@test.fr")[-1][0] == "success"


def test_disabled_accounts_and_sessions(people: PersonRegistry) -> None:
    who = people.add("c@test.fr", "C", "viewer", PASSWORD)
    token, session = people.open_session(who)
    found = people.session(token)
    assert found is not None and found.person == who and found.csrf == session.csrf
    assert people.session("forged") is None
    people.set_active("c@test.fr", False)
    assert people.session(token) is None  # disabling ends the sessions
    assert "désactivé" in people.authenticate("c@test.fr", PASSWORD).message
    people.set_active("c@test.fr", True)
    token, _ = people.open_session(who)
    people.close_session(token)
    assert people.session(token) is None


@pytest.mark.parametrize(
    ("role", "profile", "writes_own", "writes_other_in_region", "writes_elsewhere"),
    [
        ("national_admin", Profile.ALL, True, True, True),
        ("regional_admin", Profile.ALL, True, True, False),
        ("establishment_manager", Profile.PROFESSIONAL, True, False, False),
        ("unit_editor", Profile.PROFESSIONAL, True, False, False),
        ("regulator", Profile.ALL, False, False, False),
        ("viewer", Profile.PROFESSIONAL, False, False, False),
    ],
)
def test_role_gives_profile_and_rights(
    people: PersonRegistry,
    role: str,
    profile: Profile,
    writes_own: bool,
    writes_other_in_region: bool,
    writes_elsewhere: bool,
) -> None:
    finess = ["220000012"] if ROLES[role].writes == "finess" else []
    region = "53" if role == "regional_admin" else None
    who = people.add(f"{role}@test.fr", role, role, PASSWORD, finess, region)
    assert who.profile == profile
    assert who.may_write("220000012", "53") is (writes_own or writes_other_in_region or role == "regional_admin")
    assert who.may_write("220000095", "53") is writes_other_in_region
    assert who.may_write("750000001", "11") is writes_elsewhere
    caller = who.caller("220000095", "53")
    assert caller.kind == "person" and caller.subject == f"person:{role}@test.fr"
    assert caller.can_write is (writes_other_in_region or bool(finess))
    assert ("220000095" in caller.feeds) is writes_other_in_region
    assert not who.caller().can_write or bool(finess)


def test_forms_without_csrf_are_rejected(people: PersonRegistry, engine: Engine) -> None:
    people.add("d@test.fr", "D", "viewer", PASSWORD)
    with TestClient(create_app(engine)) as client:
        # login form: the double-submit token is required
        r = client.post("/connexion", data={"email": "d@test.fr", "password": PASSWORD})
        assert r.status_code == 403 and "CSRF" not in r.text and "jeton de sécurité" in r.text
        page = client.get("/connexion")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        r = client.post(
            "/connexion",
            data={"email": "d@test.fr", "password": PASSWORD, "csrf": token.group(1)},
            follow_redirects=False,
        )
        assert r.status_code == 303
        # logged in: every POST form needs the session's token
        assert client.post("/deconnexion", data={"csrf": "forged"}).status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 200
        assert _logins(engine, "d@test.fr")[-1][0] == "success"
