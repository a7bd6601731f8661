"""``ragcast keys``: create, rotate, list and revoke API keys in the local store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ragcast.cli.common import err, local_store, out

if TYPE_CHECKING:
    from ragcast.context import Context

keys_app = typer.Typer(help="Create, list and revoke API keys (acts on the local store).")


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="User the key acts for (created if new).")],
    admin: Annotated[
        bool, typer.Option("--admin", help="Make the user an admin.", metavar="")
    ] = False,
    expires_in: Annotated[
        str | None,
        typer.Option("--expires-in", help="Lifetime: 90d, 24h, 30m or 45s (default: none)."),
    ] = None,
) -> None:
    """Create an API key; it is printed once and cannot be shown again."""
    from ragcast.auth import create_key

    lifetime = _duration(expires_in) if expires_in else None
    with local_store() as ctx, ctx.db.session() as s:
        key, row = create_key(s, user, admin=admin, expires_in=lifetime)
        prefix, expires = row.prefix, row.expires_at
    typer.echo(key)
    role = "admin " if admin else ""
    until = f", valid until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
    err.print(f"Created {role}key {prefix}… for user {escape(user)}{until}; it is shown only once.")


def _duration(text: str) -> timedelta:
    """A ``90d``-style duration, or a clear error and exit 2."""
    from ragcast.auth import parse_duration
    from ragcast.errors import ValidationError

    try:
        return parse_duration(text)
    except ValidationError as exc:
        err.print(f"[red]Error: {escape(exc.issue)}[/]")
        raise typer.Exit(2) from exc


@keys_app.command("rotate")
def keys_rotate(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (rc_ + 8 characters) or key.")],
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old key keeps working: 24h, 7d, 0s…")
    ] = "24h",
) -> None:
    """Issue a new key for the same user; the old one stops working after --grace."""
    from ragcast.auth import rotate_key
    from ragcast.errors import NotFoundError

    period = timedelta(0) if grace.strip() in ("0", "0s") else _duration(grace)
    try:
        with local_store() as ctx:
            with ctx.db.session() as s:
                key, row, old = rotate_key(s, prefix, grace=period)
                new_prefix, old_prefix, until = row.prefix, old.prefix, old.expires_at
            _announce_key_change(ctx)
    except NotFoundError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(1) from None
    typer.echo(key)
    err.print(
        f"New key {new_prefix}… (shown only once); {old_prefix}… stops working at "
        f"{until:%Y-%m-%d %H:%M:%S} UTC."
    )


def _announce_key_change(ctx: Context) -> None:
    """Tell running API processes that share Redis to forget the keys they remember."""
    from ragcast.auth import announce_key_change

    announce_key_change(ctx.settings.redis_url, ctx.settings.redis_key_prefix)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (their prefixes; keys themselves are not stored)."""
    from sqlalchemy import select

    from ragcast.auth import aware
    from ragcast.store.models import ApiKey as ApiKeyRow
    from ragcast.store.models import User

    table = Table("Prefix", "User", "Admin", "Created", "Expires", "Last used", "Revoked")
    now = datetime.now(UTC)
    with local_store() as ctx, ctx.db.session() as s:
        rows = s.execute(
            select(ApiKeyRow, User)
            .join(User, User.id == ApiKeyRow.user_id)
            .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        ).all()
        for key, user in rows:
            revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
            expires = aware(key.expires_at)
            expired = expires is not None and expires <= now
            table.add_row(
                key.prefix,
                escape(user.name),
                "yes" if user.is_admin else "",
                f"{key.created_at:%Y-%m-%d %H:%M}",
                (f"{expires:%Y-%m-%d %H:%M}" + (" (expired)" if expired else ""))
                if expires
                else "",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
                revoked,
                style="dim" if revoked or expired else None,
            )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (rc_ + 8 characters) or key.")],
) -> None:
    """Revoke the active keys matching PREFIX."""
    from ragcast.auth import revoke_key
    from ragcast.errors import NotFoundError

    try:
        with local_store() as ctx:
            with ctx.db.session() as s:
                count = revoke_key(s, prefix)
            if count:
                _announce_key_change(ctx)
    except NotFoundError as exc:
        err.print(f"[red]Error: {escape(exc.message)}[/]")
        raise typer.Exit(1) from None
    if not count:
        err.print(f"[red]Error: no active key matches {escape(prefix)}[/]")
        raise typer.Exit(1)
    out.print(f"Revoked {count} key{'s' if count > 1 else ''}.")
