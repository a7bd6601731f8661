"""API keys (hashed at rest, with expiry and rotation), single-use WebSocket tickets and
signed media links."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url, select, update
from sqlalchemy.orm import Session

from ragcast.errors import AuthError, NotFoundError, ValidationError
from ragcast.store.models import ApiKey, User

log = logging.getLogger(__name__)

KEY_PREFIX = "rc_"
PREFIX_LEN = 11  # "rc_" + 8 characters: enough to find a key without a scan
#: ``last_used_at`` is written at most this often per key
LAST_USED_EVERY = timedelta(minutes=1)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``24h``, ``30m``, ``45s`` (a bare number is seconds); ValidationError else."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if match is None or int(match.group(1)) <= 0:
        raise ValidationError(
            "duration", f"{text[:40]!r} is not a duration such as 90d, 24h or 30m"
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])


def aware(moment: datetime | None) -> datetime | None:
    """A stored time as UTC-aware (SQLite hands them back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def hash_key(key: str) -> str:
    """SHA-256 of a key: keys carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """The user an authenticated request acts for."""

    user_id: int
    name: str
    is_admin: bool
    #: the key the request came with (0 when not known)
    key_id: int = 0


def create_key(
    s: Session, user_name: str, *, admin: bool = False, expires_in: timedelta | None = None
) -> tuple[str, ApiKey]:
    """Create a key (and the user when new); the plain key is returned once only."""
    user = s.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name, is_admin=admin)
        s.add(user)
        s.flush()
    elif admin and not user.is_admin:
        user.is_admin = True
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + expires_in if expires_in is not None else None
    row = ApiKey(
        user_id=user.id, prefix=key[:PREFIX_LEN], key_hash=hash_key(key), expires_at=expires
    )
    s.add(row)
    s.flush()
    return key, row


def _matching(s: Session, prefix: str) -> list[ApiKey]:
    """Active keys that ``prefix`` (the 11-character prefix, or the whole key) names."""
    if len(prefix) < PREFIX_LEN:
        raise NotFoundError(f"give at least the first {PREFIX_LEN} characters of the key")
    rows = s.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix[:PREFIX_LEN], ApiKey.revoked_at.is_(None))
    ).all()
    return [r for r in rows if len(prefix) == PREFIX_LEN or r.key_hash == hash_key(prefix)]


def rotate_key(s: Session, prefix: str, *, grace: timedelta) -> tuple[str, ApiKey, ApiKey]:
    """A new key for the same user; the old one stops working after ``grace``.

    Returns the new plain key, its row, and the old row (its ``expires_at`` set).
    """
    matched = _matching(s, prefix)
    if len(matched) != 1:
        raise NotFoundError(
            f"no active key matches {prefix[:PREFIX_LEN]!r}"
            if not matched
            else f"{prefix[:PREFIX_LEN]!r} names {len(matched)} keys: give the whole key"
        )
    old = matched[0]
    key, row = create_key(s, old.user.name)
    cutoff = datetime.now(UTC) + grace
    current = aware(old.expires_at)
    old.expires_at = cutoff if current is None else min(current, cutoff)
    keys_changed(s)
    return key, row, old


def revoke_key(s: Session, prefix: str) -> int:
    """Revoke every active key starting with ``prefix``; returns how many."""
    matched = _matching(s, prefix)
    for r in matched:
        r.revoked_at = datetime.now(UTC)
    if matched:
        keys_changed(s)
    return len(matched)


# -- what API processes remember of checked keys -------------------------------------------


def key_stamp_path(database_url: str) -> Path | None:
    """The file whose replacement tells processes on this machine that keys changed.

    It lies beside an SQLite store's file (every process of an embedded service shares
    that file); None for other stores, where ``ragcast keys`` announces a change over
    Redis (:func:`announce_key_change`) and a cached key otherwise lives out its time.
    """
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database)).with_name(Path(str(url.database)).name + "-keys")


class _KeyChanges:
    """How many key changes this process has made (a count that caches compare)."""

    def __init__(self) -> None:
        self.count = 0

    def changed(self, stamp: Path | None) -> None:
        self.count += 1
        if stamp is not None:
            try:
                tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
                tmp.write_text(secrets.token_hex(8))
                tmp.replace(stamp)  # a new file: its inode and time both change
            except OSError as exc:
                log.warning("could not mark the key change in %s: %s", stamp, exc)


_KEY_CHANGES = _KeyChanges()
#: the Redis channel on which key changes are announced to API processes
KEYS_CHANNEL = "{prefix}:keys"


def keys_changed(s: Session) -> None:
    """Make API processes forget what they remember of keys once ``s`` commits.

    Called by :func:`revoke_key` and :func:`rotate_key`. This process forgets at once
    and again at the commit; processes sharing an SQLite store see the stamp file
    (:func:`key_stamp_path`) change at the commit.
    """
    stamp = key_stamp_path(str(s.get_bind().engine.url))
    _KEY_CHANGES.changed(None)
    event.listen(s, "after_commit", lambda _s: _KEY_CHANGES.changed(stamp), once=True)


def announce_key_change(redis_url: str | None, prefix: str) -> None:
    """Tell the API processes sharing ``redis_url`` that keys changed: they forget theirs.

    Called after a revocation or rotation has committed (``ragcast keys``); nothing
    without Redis.
    """
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.publish(KEYS_CHANNEL.format(prefix=prefix), "changed")
    except redis.RedisError as exc:
        log.warning("key change not announced over Redis: %s", exc)
    finally:
        client.close()


class KeyCache:
    """Principals of keys checked in the last ``ttl_s`` seconds, by the key's hash.

    An entry is used only while its key has not expired (its ``expires_at`` is kept),
    no key change was committed in this process, and the store's stamp file (processes
    sharing an SQLite store) is the one seen when the key was read from the store; a
    change announced by another process empties it (:meth:`clear`). Otherwise a key is
    read from the store again after ``ttl_s`` seconds, so a key revoked elsewhere is
    refused within that time at the latest. ``ttl_s`` 0 turns the cache off.
    """

    MAX_ENTRIES = 4096

    def __init__(self, database_url: str, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._stamp = key_stamp_path(database_url)
        self._entries: dict[str, tuple[Principal, float, float, tuple[Any, ...]]] = {}
        self._cleared = 0
        self._lock = threading.Lock()

    def _token(self) -> tuple[Any, ...]:
        """What must not change while an entry is used."""
        if self._stamp is None:
            return (_KEY_CHANGES.count, self._cleared)
        try:
            st = os.stat(self._stamp)
        except OSError:
            return (_KEY_CHANGES.count, self._cleared)
        return (_KEY_CHANGES.count, self._cleared, st.st_ino, st.st_mtime_ns)

    def lookup(self, key: str | None) -> Principal | None:
        """The remembered principal of ``key``; None when it must be read from the store."""
        if not key or self.ttl_s <= 0:
            return None
        digest = hash_key(key)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, read_at, expires, token = entry
        if (
            time.monotonic() - read_at >= self.ttl_s
            or time.time() >= expires
            or token != self._token()
        ):
            self._entries.pop(digest, None)
            return None
        return principal

    def authenticate(self, s: Session, key: str | None) -> Principal:
        """:func:`authenticate` against the store, remembering the answer."""
        token = self._token()  # before the read: a change during it voids the entry
        read_at = time.monotonic()
        principal, expires = _authenticate(s, key)
        if self.ttl_s > 0 and key:
            until = expires.timestamp() if expires is not None else float("inf")
            with self._lock:
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.pop(next(iter(self._entries)), None)
                self._entries[hash_key(key)] = (principal, read_at, until, token)
        return principal

    def clear(self) -> None:
        """Forget every entry (a key changed in another process)."""
        with self._lock:
            self._cleared += 1
            self._entries.clear()


def authenticate(s: Session, key: str | None) -> Principal:
    """The principal of an API key; raises AuthError for a missing or bad key."""
    return _authenticate(s, key)[0]


def _authenticate(s: Session, key: str | None) -> tuple[Principal, datetime | None]:
    """The principal of an API key and when the key expires; AuthError for a bad key."""
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
    now = datetime.now(UTC)
    expires = aware(found.expires_at)
    if expires is not None and expires <= now:
        raise AuthError(f"API key expired at {expires:%Y-%m-%d %H:%M} UTC: ask for a new one")
    _LAST_USED.touch(s, found.id, aware(found.last_used_at), now)
    principal = Principal(
        user_id=found.user_id,
        name=found.user.name,
        is_admin=found.user.is_admin,
        key_id=found.id,
    )
    return principal, expires


class _LastUsed:
    """Writes ``last_used_at`` at most once a minute a key, off the request's path.

    The write runs on one background thread in its own session, so a request never waits
    for the store's write lock (SQLite holds it while a worker commits); a write that
    fails is tried again a minute later.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[int, datetime] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragcast-key-use")

    def touch(self, s: Session, key_id: int, stored: datetime | None, now: datetime) -> None:
        with self._lock:
            last = max(filter(None, (stored, self._written.get(key_id))), default=None)
            if last is not None and now - last < LAST_USED_EVERY:
                return
            self._written[key_id] = now
        self._pool.submit(self._write, s.get_bind(), key_id, now)

    @staticmethod
    def _write(bind: Any, key_id: int, now: datetime) -> None:
        try:
            with Session(bind) as s, s.begin():
                s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
        except Exception as exc:  # noqa: BLE001 - bookkeeping only: retried next minute
            log.debug("last_used_at of key %s not written: %s", key_id, exc)


_LAST_USED = _LastUsed()


def key_is_usable(s: Session, key_id: int) -> bool:
    """Whether key ``key_id`` exists, is not revoked and has not expired."""
    row = s.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    expires = aware(row.expires_at)
    return expires is None or expires > datetime.now(UTC)


LOCAL_USER = "local"


def local_key(s: Session, data_dir: Path) -> str:
    """The embedded commands' own key, kept in the data dir and reused run after run.

    A new one is made (and the old file replaced) only when the stored key is missing,
    revoked or expired, so ``keys list`` does not fill with a key per run.
    """
    path = data_dir / "local.key"
    if path.is_file():
        key = path.read_text().strip()
        try:
            authenticate(s, key)
            return key
        except AuthError:
            pass
    key, _ = create_key(s, LOCAL_USER)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
