"""API clients (third-party programs): creation with a secret shown once, argon2 hashes, disable, rotate."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update

from ror.access.policy import Profile
from ror.db.tables import api_client
from ror.errors import InvalidRequest, NotFound
from ror.search.normalise import utcnow

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    profile: Profile
    feeds: tuple[str, ...]  # FINESS EG numbers the client may write
    active: bool


@dataclass(frozen=True)
class NewCredentials:
    client: Client
    secret: str  # shown once, never stored


def _row_to_client(row: object) -> Client:
    return Client(
        row.client_id,  # type: ignore[attr-defined]
        row.name,  # type: ignore[attr-defined]
        Profile(row.profile),  # type: ignore[attr-defined]
        tuple(json.loads(row.feeds)),  # type: ignore[attr-defined]
        bool(row.active),  # type: ignore[attr-defined]
    )


class ClientRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str, profile: int, feeds: list[str] | None = None) -> NewCredentials:
        if profile not in [p.value for p in Profile]:
            raise InvalidRequest(f"profile must be 0..5, got {profile}", expression="profile")
        feeds = sorted(set(feeds or []))
        for f in feeds:
            if len(f) != 9:
                raise InvalidRequest(f"{f!r} is not a FINESS number (9 characters)", expression="feeds")
        client_id = "ror-" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            c.execute(
                insert(api_client).values(
                    client_id=client_id,
                    name=name,
                    profile=int(profile),
                    feeds=json.dumps(feeds),
                    secret_hash=_hasher.hash(secret),
                    active=True,
                    created=utcnow(),
                )
            )
        return NewCredentials(Client(client_id, name, Profile(profile), tuple(feeds), True), secret)

    def get(self, client_id: str) -> Client:
        with self.engine.connect() as c:
            row = c.execute(select(api_client).where(api_client.c.client_id == client_id)).first()
        if row is None:
            raise NotFound(f"client {client_id} is not known")
        return _row_to_client(row)

    def list(self) -> list[Client]:
        with self.engine.connect() as c:
            return [_row_to_client(r) for r in c.execute(select(api_client).order_by(api_client.c.pk))]

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The client when the secret matches and the client is active; None otherwise (no detail leaked)."""
        with self.engine.connect() as c:
            row = c.execute(select(api_client).where(api_client.c.client_id == client_id)).first()
        if row is None:
            _hasher.hash(secret)  # same cost as a real check: no timing oracle on client ids
            return None
        try:
            _hasher.verify(row.secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return None
        return _row_to_client(row) if row.active else None

    def set_active(self, client_id: str, active: bool) -> None:
        self.get(client_id)
        with self.engine.begin() as c:
            c.execute(update(api_client).where(api_client.c.client_id == client_id).values(active=active))

    def rotate(self, client_id: str) -> NewCredentials:
        client = self.get(client_id)
        secret = secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            c.execute(
                update(api_client)
                .where(api_client.c.client_id == client_id)
                .values(secret_hash=_hasher.hash(secret), rotated=utcnow())
            )
        return NewCredentials(client, secret)
