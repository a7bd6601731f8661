"""Signed, expiring tokens that stand in for an API key where a header cannot be sent.

A WebSocket ticket (:class:`TicketSigner`) opens one socket of one job; a media link
(:class:`MediaSigner`) lets a browser's ``<audio>`` read one recording. Both are HMACs over
the user, the key that asked and an expiry, under the server's secret
(:func:`load_secret`), and both die with the key that issued them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragcast.auth import Principal, key_is_usable
from ragcast.errors import AuthError
from ragcast.store.models import ApiKey, WsTicket


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


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a verified ticket says: who, with which key, until when, and its nonce."""

    user_id: int
    key_id: int
    expires: int
    nonce: str


class TicketSigner:
    """HMAC-signed tickets naming one user, the key that asked, one job and an expiry.

    A ticket opens one socket (:func:`redeem_ticket` records its nonce), only while the
    key that issued it is still valid, and only within ``ttl_s`` of being issued.
    """

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:20]).decode().rstrip("=")

    def issue(self, user_id: int, job_id: str, key_id: int = 0) -> str:
        """A ticket for ``user_id`` (acting with key ``key_id``) to follow ``job_id``."""
        expires = int(time.time()) + self.ttl_s
        payload = f"{user_id}.{key_id}.{expires}.{secrets.token_hex(8)}"
        return f"{payload}.{self._mac(f'{payload}.{job_id}')}"

    def verify(self, token: str, job_id: str) -> Ticket:
        """The claims of a well-signed, unexpired ticket for ``job_id``; AuthError else."""
        try:
            user, key, expires, nonce, mac = token.split(".")
            ticket = Ticket(int(user), int(key), int(expires), nonce)
        except ValueError as exc:
            raise AuthError("Malformed ticket") from exc
        if not hmac.compare_digest(mac, self._mac(f"{user}.{key}.{expires}.{nonce}.{job_id}")):
            raise AuthError("Invalid ticket")
        if ticket.expires < time.time():
            raise AuthError("Ticket expired: ask GET /job/{job_id}/ticket for a fresh one")
        return ticket


def redeem_ticket(s: Session, signer: TicketSigner, token: str, job_id: str) -> int:
    """The user id of a valid, unused ticket whose key still works; AuthError otherwise.

    The nonce is recorded (in the shared store, or in memory for an embedded SQLite
    store, which one process serves), so a second use fails.
    """
    ticket = signer.verify(token, job_id)
    if not key_is_usable(s, ticket.key_id):
        raise AuthError("The API key that issued this ticket is revoked or expired")
    if s.get_bind().dialect.name == "sqlite":
        # One process serves an embedded store: its memory is the ledger, and the socket's
        # handshake never waits for SQLite's write lock.
        fresh = _USED_HERE.claim(ticket.nonce, ticket.expires)
    else:
        fresh = _claim_in_store(s, ticket)
    if not fresh:
        raise AuthError("Ticket already used: ask GET /job/{job_id}/ticket for a fresh one")
    return ticket.user_id


class _UsedTickets:
    """Nonces of tickets used by this process, kept until they expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[str, float] = {}

    def claim(self, nonce: str, expires: int) -> bool:
        now = time.time()
        with self._lock:
            if len(self._used) > 1024:
                self._used = {n: e for n, e in self._used.items() if e >= now}
            if nonce in self._used:
                return False
            self._used[nonce] = expires
            return True


_USED_HERE = _UsedTickets()


def _claim_in_store(s: Session, ticket: Ticket) -> bool:
    """Record the nonce in the shared store (unique), so every API process sees the use."""
    now = datetime.now(UTC)
    s.execute(delete(WsTicket).where(WsTicket.expires_at < now - timedelta(minutes=5)))
    try:
        with s.begin_nested():
            expires = datetime.fromtimestamp(ticket.expires, UTC)
            s.add(WsTicket(nonce=ticket.nonce, expires_at=expires))
    except IntegrityError:
        return False
    return True


# -- signed media links ---------------------------------------------------------------------


class MediaSigner:
    """HMAC-signed, expiring, read-only links to one content's recording.

    A link names the user, the key that asked for it, one content id and an expiry:
    ``user.key.expires.mac``, the MAC (HMAC-SHA256, 160 bits) over those and the content
    id, under a key derived from the server's secret (so a media link and a WebSocket
    ticket can never stand for each other). Unlike a ticket it may be used any number of
    times until it expires (a player asks for many ranges), and only while the key that
    asked for it is valid (:func:`redeem_media_link`): a revoked key's links die with it.
    """

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._key = hmac.new(secret, b"ragcast media links", hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:20]).decode().rstrip("=")

    def sign(
        self, user_id: int, key_id: int, content_id: str, *, expires: int | None = None
    ) -> str:
        """A link token for ``user_id`` (acting with key ``key_id``) to hear ``content_id``,
        valid for ``ttl_s`` seconds unless ``expires`` (a Unix time) says otherwise."""
        until = int(time.time()) + self.ttl_s if expires is None else expires
        payload = f"{user_id}.{key_id}.{until}"
        return f"{payload}.{self._mac(f'{payload}.{content_id}')}"

    def verify(self, token: str, content_id: str) -> tuple[int, int]:
        """``(user id, key id)`` of a well-signed, unexpired token for ``content_id``;
        AuthError else."""
        try:
            user, key, expires, mac = token.split(".")
            claims = (int(user), int(key), int(expires))
        except ValueError as exc:
            raise AuthError("Malformed media link: ask for a fresh one (search again)") from exc
        if not hmac.compare_digest(mac, self._mac(f"{user}.{key}.{expires}.{content_id}")):
            raise AuthError("Invalid media link")
        if claims[2] < time.time():
            raise AuthError("Media link expired: search again for a fresh one")
        return claims[0], claims[1]


def redeem_media_link(s: Session, signer: MediaSigner, token: str, content_id: str) -> Principal:
    """The principal a valid media link acts for; AuthError when it is bad or expired, or
    when the key that asked for it has since been revoked or has expired."""
    user_id, key_id = signer.verify(token, content_id)
    row = s.get(ApiKey, key_id)
    if row is None or row.user_id != user_id or not key_is_usable(s, key_id):
        raise AuthError("The API key that made this media link is revoked or expired")
    return Principal(
        user_id=row.user_id, name=row.user.name, is_admin=row.user.is_admin, key_id=row.id
    )
