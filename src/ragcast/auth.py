"""API keys (hashed at rest) and signed, job-scoped WebSocket tickets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ragcast.errors import AuthError, NotFoundError
from ragcast.store.models import ApiKey, User

KEY_PREFIX = "rc_"
PREFIX_LEN = 11  # "rc_" + 8 characters: enough to find a key without a scan


def hash_key(key: str) -> str:
    """SHA-256 of a key: keys carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The user an authenticated request acts for."""

    user_id: int
    name: str
    is_admin: bool


def create_key(s: Session, user_name: str, *, admin: bool = False) -> tuple[str, ApiKey]:
    """Create a key (and the user when new); the plain key is returned once only."""
    user = s.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name, is_admin=admin)
        s.add(user)
        s.flush()
    elif admin and not user.is_admin:
        user.is_admin = True
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user.id, prefix=key[:PREFIX_LEN], key_hash=hash_key(key))
    s.add(row)
    s.flush()
    return key, row


def revoke_key(s: Session, prefix: str) -> int:
    """Revoke every active key starting with ``prefix``; returns how many."""
    if len(prefix) < PREFIX_LEN:
        raise NotFoundError(f"give at least the first {PREFIX_LEN} characters of the key")
    rows = s.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix[:PREFIX_LEN], ApiKey.revoked_at.is_(None))
    ).all()
    matched = [r for r in rows if len(prefix) == PREFIX_LEN or r.key_hash == hash_key(prefix)]
    for r in matched:
        r.revoked_at = datetime.now(UTC)
    return len(matched)


def authenticate(s: Session, key: str | None) -> Principal:
    """The principal of an API key; raises AuthError for a missing or bad key."""
    if not key:
        raise AuthError("Missing API key: send 'Authorization: Bearer <key>'")
    if not key.startswith(KEY_PREFIX) or len(key) < PREFIX_LEN + 8:
        raise AuthError("Invalid API key")
    digest = hash_key(key)
    found: ApiKey | None = None
    for row in s.scalars(select(ApiKey).where(ApiKey.prefix == key[:PREFIX_LEN])).all():
        if hmac.compare_digest(row.key_hash, digest):
            found = row
    if found is None or found.revoked_at is not None:
        raise AuthError("Invalid or revoked API key")
    return Principal(user_id=found.user_id, name=found.user.name, is_admin=found.user.is_admin)


def load_secret(explicit: str | None, data_dir: Path) -> bytes:
    """The server's signing secret: the setting, or one kept in the data dir."""
    if explicit:
        return explicit.encode()
    path = data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip().encode()


class TicketSigner:
    """HMAC-signed tickets naming one user, one job and an expiry."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:20]).decode().rstrip("=")

    def issue(self, user_id: int, job_id: str) -> str:
        """A ticket for ``user_id`` to follow ``job_id``."""
        expires = int(time.time()) + self.ttl_s
        payload = f"{user_id}.{expires}"
        return f"{payload}.{self._mac(f'{payload}.{job_id}')}"

    def verify(self, token: str, job_id: str) -> int:
        """The user id of a valid ticket for ``job_id``; raises AuthError otherwise."""
        try:
            user, expires, mac = token.split(".")
            user_id, exp = int(user), int(expires)
        except ValueError as exc:
            raise AuthError("Malformed ticket") from exc
        if not hmac.compare_digest(mac, self._mac(f"{user}.{expires}.{job_id}")):
            raise AuthError("Invalid ticket")
        if exp < time.time():
            raise AuthError("Ticket expired")
        return user_id
