"""Named leases in the job store: one holder at a time across every process.

A lease is taken by inserting its row, or by taking over a row whose holder let it expire,
in one conditional statement; the database decides the race, so two schedulers started
together never both hold it. The holder renews it before it runs out.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ragcast.store.models import Lease, utcnow


def acquire(s: Session, name: str, holder: str, ttl_s: float) -> bool:
    """Take or renew lease ``name`` for ``holder`` until ``ttl_s`` from now; True if held.

    Commits: the lease must be visible to other processes at once.
    """
    now = utcnow()
    until = now + timedelta(seconds=ttl_s)
    taken = s.execute(
        update(Lease)
        .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
        .values(holder=holder, expires_at=until)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        s.commit()
        return True
    if s.get(Lease, name) is not None:
        s.rollback()
        return False
    try:
        s.add(Lease(name=name, holder=holder, expires_at=until))
        s.commit()
    except IntegrityError:  # another process inserted it first
        s.rollback()
        return False
    return True


def release(s: Session, name: str, holder: str) -> None:
    """Give lease ``name`` up if ``holder`` holds it (commits)."""
    s.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    s.commit()
