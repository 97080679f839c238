"""Bearer tokens: our own short-lived HS256 JWTs for API clients, and tokens of an external OpenID Connect
provider (e.g. a region's Keycloak) verified with its JWKS."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt

from ror.access.clients import Client
from ror.access.policy import Profile

TOKEN_LIFETIME_S = 900
VERIFIED_CACHE_SIZE = 4096
ISSUER = "ror"


@dataclass(frozen=True)
class Caller:
    profile: Profile
    kind: str  # client | person | external | anonymous
    subject: str | None = None
    feeds: tuple[str, ...] = ()  # FINESS EG the caller may write
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_write(self) -> bool:
        return "write" in self.scopes

    @cached_property
    def feed_set(self) -> frozenset[str]:
        """`feeds` as a set, made once per caller: a regional feeder holds thousands of establishments, and
        `set.isdisjoint(tuple)` walks the whole tuple at every write."""
        return frozenset(self.feeds)


ANONYMOUS = Caller(Profile.OPEN_DATA, "anonymous")


class TokenError(Exception):
    """The bearer token is missing its parts, expired, tampered with or unknown (→ 401)."""


def secret_key() -> str:
    """`ROR_SECRET_KEY`, else a random key kept in `./.ror-secret` (created once, private) for a single machine."""
    key = os.environ.get("ROR_SECRET_KEY")
    if key:
        return key
    path = Path(".ror-secret")
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


@dataclass
class OidcConfig:
    issuer: str
    audience: str
    jwks: str  # URL or path of a JWKS document
    profile_claim: str = "ror_profile"
    feeds_claim: str = "ror_feeds"

    @classmethod
    def from_env(cls) -> OidcConfig | None:
        issuer = os.environ.get("ROR_OIDC_ISSUER")
        if not issuer:
            return None
        return cls(
            issuer=issuer,
            audience=os.environ.get("ROR_OIDC_AUDIENCE", "ror"),
            jwks=os.environ["ROR_OIDC_JWKS"],
            profile_claim=os.environ.get("ROR_OIDC_PROFILE_CLAIM", "ror_profile"),
            feeds_claim=os.environ.get("ROR_OIDC_FEEDS_CLAIM", "ror_feeds"),
        )


def admin_clients_from_env() -> frozenset[str]:
    """`ROR_AUDIT_CLIENTS`: client ids (space or comma separated) whose tokens carry the `audit` scope, i.e. the
    administrators' programs allowed to read the audit trail (`GET /fhir/AuditEvent`, profile 1 needed too)."""
    return frozenset(x for x in os.environ.get("ROR_AUDIT_CLIENTS", "").replace(",", " ").split() if x)


class TokenService:
    def __init__(
        self, key: str | None = None, oidc: OidcConfig | None = None, admin_clients: frozenset[str] | None = None
    ) -> None:
        self.key = key or secret_key()
        self.oidc = oidc
        self.admin_clients = admin_clients if admin_clients is not None else admin_clients_from_env()
        self._jwk_client: jwt.PyJWKClient | None = None
        self._jwk_set: jwt.PyJWKSet | None = None
        # verified own tokens → (caller, exp): a feeder sends the same token for up to 15 minutes, and decoding a
        # token that lists hundreds of granted FINESS cost ~10 % of a capacity PATCH's server time
        self._verified: dict[str, tuple[Caller, float]] = {}

    def issue(self, client: Client, now: float | None = None) -> tuple[str, int]:
        now = time.time() if now is None else now
        scopes = ["read"] + (["write"] if client.feeds else [])
        if client.client_id in self.admin_clients:
            scopes.append("audit")
        claims = {
            "iss": ISSUER,
            "sub": client.client_id,
            "iat": int(now),
            "exp": int(now) + TOKEN_LIFETIME_S,
            "jti": secrets.token_hex(8),
            "profile": int(client.profile),
            "feeds": list(client.feeds),
            "scope": " ".join(scopes),
        }
        return jwt.encode(claims, self.key, algorithm="HS256"), TOKEN_LIFETIME_S

    def verify(self, token: str) -> Caller:
        hit = self._verified.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]  # before any decoding: a feeder's token lists its establishments and can be large
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed bearer token") from exc
        if header.get("alg") == "HS256":
            return self._verify_own(token)
        if self.oidc is not None:
            return self._verify_external(token)
        raise TokenError("token not issued by this server")

    def _verify_own(self, token: str) -> Caller:
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                return hit[0]
            self._verified.pop(token, None)
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp"]})
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenError("invalid token") from exc
        caller = Caller(
            Profile(int(claims["profile"])),
            "client",
            claims["sub"],
            tuple(claims.get("feeds") or ()),
            frozenset(str(claims.get("scope", "")).split()),
        )
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # bounded; tokens are short-lived, a cold cache only costs a decode
        self._verified[token] = (caller, float(claims["exp"]))
        return caller

    def _signing_key(self, token: str) -> Any:
        assert self.oidc is not None
        source = self.oidc.jwks
        if source.startswith(("http://", "https://")):
            if self._jwk_client is None:
                self._jwk_client = jwt.PyJWKClient(source, cache_keys=True)
            return self._jwk_client.get_signing_key_from_jwt(token).key
        if self._jwk_set is None:
            self._jwk_set = jwt.PyJWKSet.from_dict(json.loads(Path(source).read_text(encoding="utf-8")))
        kid = jwt.get_unverified_header(token).get("kid")
        for k in self._jwk_set.keys:
            if kid is None or k.key_id == kid:
                return k.key
        raise TokenError("signing key not found in the provider's JWKS")

    def _verify_external(self, token: str) -> Caller:
        assert self.oidc is not None
        try:
            claims = jwt.decode(
                token,
                self._signing_key(token),
                algorithms=["RS256", "ES256"],
                audience=self.oidc.audience,
                issuer=self.oidc.issuer,
                options={"require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        try:
            profile = Profile(int(claims.get(self.oidc.profile_claim, 0)))
        except ValueError as exc:
            raise TokenError(f"claim {self.oidc.profile_claim} is not a profile 0..5") from exc
        feeds = tuple(claims.get(self.oidc.feeds_claim) or ())
        scopes = {"read"} | ({"write"} if feeds else set())
        if "ror:audit" in str(claims.get("scope", "")).split():  # the provider grants the audit trail
            scopes.add("audit")
        return Caller(profile, "external", str(claims.get("sub")), feeds, frozenset(scopes))
