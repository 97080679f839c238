"""API clients, OAuth2 client-credentials tokens, external OIDC tokens, and what each caller sees over HTTP."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.access.clients import ClientRegistry
from ror.access.policy import Profile
from ror.access.tokens import OidcConfig, TokenError, TokenService
from ror.db.tables import api_client, audit_event
from ror.server import create_app
from ror.store import ResourceStore
from tests.test_access_policy import seed

KEY = "test-secret-key-0123456789-abcdefghijklmnop"


@pytest.fixture
def clients(engine: Engine) -> ClientRegistry:
    with engine.begin() as c:
        c.execute(api_client.delete())
        c.execute(audit_event.delete())
    return ClientRegistry(engine)


def test_client_secret_is_hashed_and_checked(clients: ClientRegistry, engine: Engine) -> None:
    creds = clients.add("SAMU 35", 1, ["350000001"])
    with engine.connect() as c:
        stored = c.execute(select(api_client.c.secret_hash)).scalar_one()
    assert creds.secret not in stored and stored.startswith("$argon2")
    assert clients.authenticate(creds.client.client_id, creds.secret) is not None
    assert clients.authenticate(creds.client.client_id, "wrong") is None
    assert clients.authenticate("ror-unknown", creds.secret) is None
    clients.set_active(creds.client.client_id, False)
    assert clients.authenticate(creds.client.client_id, creds.secret) is None
    rotated = clients.rotate(creds.client.client_id)
    clients.set_active(creds.client.client_id, True)
    assert clients.authenticate(creds.client.client_id, creds.secret) is None
    assert clients.authenticate(creds.client.client_id, rotated.secret) is not None


def test_token_expiry_and_tampering(clients: ClientRegistry) -> None:
    tokens = TokenService(KEY)
    client = clients.add("x", 2).client
    tok, ttl = tokens.issue(client)
    assert ttl == 900 and tokens.verify(tok).profile == Profile.PROFESSIONAL
    old, _ = tokens.issue(client, now=time.time() - 3600)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(old)
    head, payload, sig = tok.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["profile"] = 1
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(TokenError):
        tokens.verify(f"{head}.{forged}.{sig}")
    with pytest.raises(TokenError):
        TokenService("another-key-0123456789-abcdefghijklmnopqr").verify(tok)


def test_verified_token_cache_still_honours_expiry(clients: ClientRegistry) -> None:
    """Verified tokens are cached (decode once per token), but a cached token stops working when it expires."""
    tokens = TokenService(KEY)
    client = clients.add("short", 2).client
    tok, _ = tokens.issue(client, now=time.time() - 900 + 1.5)  # expires in 1.5 s
    first = tokens.verify(tok)
    assert tokens.verify(tok) is first  # the second verification is the cached one
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            tokens.verify(tok)
        except TokenError as exc:
            assert "expired" in str(exc)
            break
        time.sleep(0.1)
    else:
        raise AssertionError("an expired token was still accepted")


def _rsa_jwks(tmp_path: Path) -> tuple[object, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return key, path


def test_external_oidc_tokens(tmp_path: Path) -> None:
    key, path = _rsa_jwks(tmp_path)
    oidc = OidcConfig(issuer="https://keycloak.example/realms/bzh", audience="ror", jwks=str(path))
    tokens = TokenService(KEY, oidc)
    now = int(time.time())
    good = {"iss": oidc.issuer, "aud": "ror", "sub": "samu-35", "exp": now + 60, "ror_profile": 1}
    tok = jwt.encode(good, key, algorithm="RS256", headers={"kid": "k1"})  # type: ignore[arg-type]
    caller = tokens.verify(tok)
    assert caller.profile == Profile.ALL and caller.kind == "external" and not caller.can_write
    for bad in ({**good, "aud": "other"}, {**good, "iss": "https://evil"}, {**good, "exp": now - 10}):
        with pytest.raises(TokenError):
            tokens.verify(jwt.encode(bad, key, algorithm="RS256", headers={"kid": "k1"}))  # type: ignore[arg-type]


@pytest.fixture
def http(store: ResourceStore, engine: Engine, clients: ClientRegistry) -> Iterator[TestClient]:
    seed(store)
    with TestClient(create_app(engine, tokens=TokenService(KEY))) as c:
        yield c


def _token(http: TestClient, clients: ClientRegistry, profile: int) -> str:
    creds = clients.add(f"p{profile}", profile)
    r = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds.client.client_id, "client_secret": creds.secret},
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    return r.json()["access_token"]


def test_token_endpoint_errors(http: TestClient, clients: ClientRegistry, engine: Engine) -> None:
    creds = clients.add("x", 1)
    basic = base64.b64encode(f"{creds.client.client_id}:{creds.secret}".encode()).decode()
    r = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert r.status_code == 200
    r = http.post("/oauth/token", data={"grant_type": "password", "client_id": "a", "client_secret": "b"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds.client.client_id, "client_secret": "nope"},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    with engine.connect() as c:
        assert c.execute(select(audit_event.c.outcome).where(audit_event.c.action == "token")).scalars().all() == [
            "denied"
        ]
    r = http.get("/fhir/Location/loc-mco", headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"


def test_what_each_caller_sees_over_http(http: TestClient, clients: ClientRegistry) -> None:
    anon = http.get("/fhir/Location/loc-mco").json()
    assert not [e for e in anon["extension"] if e["url"].endswith("ror-location-supported-capacity")]
    assert http.get("/fhir/HealthcareService/hs-secret").status_code == 404
    assert http.get("/fhir/HealthcareService").json()["total"] == 2
    headers = {"Authorization": f"Bearer {_token(http, clients, 1)}"}
    full = http.get("/fhir/Location/loc-mco", headers=headers).json()
    assert len([e for e in full["extension"] if e["url"].endswith("ror-location-supported-capacity")]) == 4
    assert http.get("/fhir/HealthcareService/hs-secret", headers=headers).status_code == 200
    bundle = http.get(
        "/fhir/HealthcareService", params={"_include": "HealthcareService:location"}, headers=headers
    ).json()
    assert bundle["total"] == 3
    headers5 = {"Authorization": f"Bearer {_token(http, clients, 5)}"}
    b5 = http.get(
        "/fhir/Location", params={"_id": "loc-mco", "_revinclude": "HealthcareService:location"}, headers=headers5
    ).json()
    loc = b5["entry"][0]["resource"]
    caps = [e for e in loc["extension"] if e["url"].endswith("ror-location-supported-capacity")]
    assert len(caps) == 1
    hist = http.get("/fhir/Location/loc-mco/_history").json()
    assert not [e for e in hist["entry"][0]["resource"]["extension"] if "supported-capacity" in e["url"]]
    assert http.get("/fhir/Location/loc-secret/_history").status_code == 404


def test_security_headers_on_every_response(http: TestClient, clients: ClientRegistry) -> None:
    """Set by the authentication middleware on answers, refusals (401) and pages alike."""
    expected = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "same-origin"}
    token = _token(http, clients, 1)
    for r in (
        http.get("/fhir/metadata"),
        http.get("/fhir/Location", headers={"Authorization": f"Bearer {token}"}),
        http.get("/fhir/Location", headers={"Authorization": "Bearer not-a-token"}),
        http.get("/health"),
    ):
        assert {k: r.headers.get(k) for k in expected} == expected, (r.status_code, dict(r.headers))
    assert http.get("/fhir/Location", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
