"""a sub-word field beside the lexical word index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 15:00:00

Every indexed chunk gains its words' character trigrams (see ``retrieval/subword.py``):
on SQLite a second FTS5 table ``lexical_grams`` (its vocabulary ``lexical_gram_vocab``,
and a trigger that drops a chunk's row with the chunk), on PostgreSQL a ``grams``
tsvector with its length and a GIN index on ``lexical_terms`` (whose rows already go
with their chunk). Chunks indexed before this revision get theirs from their text.
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

BATCH = 1000

# The terms and trigrams exactly as this revision indexes them (retrieval/tokenize.py and
# retrieval/subword.py of its release): a migration carries what it needs, so later
# changes to the live index cannot change how an old data dir upgrades. Trigrams are
# cut from words of spaced scripts only, so how unspaced scripts are cut does not matter.
_UNSPACED = (
    "\u0e00-\u0eff"
    "\u1000-\u109f"
    "\u1780-\u17ff"
    "\u3040-\u30ff"
    "\u3400-\u4dbf"
    "\u4e00-\u9fff"
    "\uac00-\ud7af"
    "\uf900-\ufaff"
    "\U00020000-\U0002ffff"
)
_RUN = re.compile(rf"[{_UNSPACED}]+|[^\W_{_UNSPACED}]+")
_IS_UNSPACED = re.compile(rf"[{_UNSPACED}]")
_MAX_TERM = 40


def _grams(user_id: int, text: str) -> list[str]:
    """A chunk's trigrams, owned by its user (``u17_und``)."""
    out: list[str] = []
    before = ""
    for run in _RUN.findall(unicodedata.normalize("NFKC", text).casefold()):
        if _IS_UNSPACED.match(run):
            before = ""  # unspaced runs are n-grams already; a join across one is none
            continue
        if len(run) > _MAX_TERM:  # not a term: the words around it stand side by side
            continue
        if len(run) >= 3:
            padded = f"_{run}_"
            out.extend(padded[n : n + 3] for n in range(len(padded) - 2))
        if before:
            joined = before[-2:] + run[:2]
            out.extend(joined[n : n + 3] for n in range(len(joined) - 2))
        before = run
    return [f"u{user_id}_{g}" for g in out]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE lexical_grams USING fts5("
            "terms, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")"
        )
        op.execute("CREATE VIRTUAL TABLE lexical_gram_vocab USING fts5vocab(lexical_grams, 'row')")
        op.execute(
            "CREATE TRIGGER chunks_lexical_grams_delete AFTER DELETE ON chunks BEGIN "
            "DELETE FROM lexical_grams WHERE rowid = old.id; END"
        )
    else:
        op.add_column(
            "lexical_terms",
            sa.Column(
                "grams",
                sa.dialects.postgresql.TSVECTOR(),
                nullable=False,
                server_default=sa.text("''::tsvector"),
            ),
        )
        op.add_column(
            "lexical_terms",
            sa.Column("gram_length", sa.Integer(), nullable=False, server_default="0"),
        )
    _backfill(bind)
    if bind.dialect.name != "sqlite":
        op.execute("CREATE INDEX ix_lexical_terms_grams ON lexical_terms USING gin (grams)")
        # Rows inserted since the last vacuum wait in a GIN index's pending list, which
        # every search reads whole (4 MB by default: 8 ms a search, measured); a smaller
        # list is merged sooner and bounds what a search pays for recent inserts.
        for index in ("ix_lexical_terms_terms", "ix_lexical_terms_grams"):
            op.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = 256)")
        _stored_counts()


#: each field's terms with a count per row: ``{rows}`` is a transition table
_TERMS = (
    "SELECT t AS term, 0 AS field, {sign} AS n FROM {rows}, unnest(tsvector_to_array(terms)) t"
    " UNION ALL"
    " SELECT g, 1, {sign} FROM {rows}, unnest(tsvector_to_array(grams)) g"
)
_SIZES = (
    "SELECT user_id, {sign} * count(*) AS chunks, {sign} * sum(length) AS length,"
    " {sign} * sum(gram_length) AS gram_length FROM {rows} GROUP BY user_id"
)


def _apply(terms: str, sizes: str, users: str) -> str:
    """PL/pgSQL that adds the signed counts ``terms`` and ``sizes`` to the stored ones,
    under each of ``users``' advisory locks (taken in user order: no deadlock)."""
    return (
        f"PERFORM pg_advisory_xact_lock(1818588020, u) FROM ({users}) x(u) ORDER BY u;"
        " INSERT INTO lexical_df (term, field, df)"
        f" SELECT term, field, sum(n) FROM ({terms}) d GROUP BY term, field"
        " HAVING sum(n) <> 0 ORDER BY term, field"
        " ON CONFLICT (term, field) DO UPDATE SET df = lexical_df.df + EXCLUDED.df;"
        " INSERT INTO lexical_sizes (user_id, chunks, length, gram_length)"
        " SELECT user_id, sum(chunks), sum(length), sum(gram_length)"
        f" FROM ({sizes}) z GROUP BY user_id ORDER BY user_id"
        " ON CONFLICT (user_id) DO UPDATE SET chunks = lexical_sizes.chunks + EXCLUDED.chunks,"
        " length = lexical_sizes.length + EXCLUDED.length,"
        " gram_length = lexical_sizes.gram_length + EXCLUDED.gram_length;"
    )


def _stored_counts() -> None:
    """``lexical_df`` and ``lexical_sizes`` (see ``retrieval/lexical/postgres.py``), filled
    from the rows there are and kept by statement triggers from now on."""
    op.create_table(
        "lexical_df",
        sa.Column("term", sa.Text(), primary_key=True),
        sa.Column("field", sa.SmallInteger(), primary_key=True),
        sa.Column("df", sa.Integer(), nullable=False),
    )
    op.create_table(
        "lexical_sizes",
        sa.Column("user_id", sa.Integer(), primary_key=True),
        sa.Column("chunks", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("gram_length", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO lexical_df (term, field, df) SELECT term, field, sum(n)"
        f" FROM ({_TERMS.format(sign=1, rows='lexical_terms')}) d GROUP BY term, field"
    )
    op.execute(
        "INSERT INTO lexical_sizes (user_id, chunks, length, gram_length)"
        f" {_SIZES.format(sign=1, rows='lexical_terms')}"
    )
    added = _apply(
        _TERMS.format(sign=1, rows="new_rows"),
        _SIZES.format(sign=1, rows="new_rows"),
        "SELECT DISTINCT user_id FROM new_rows",
    )
    removed = _apply(
        _TERMS.format(sign=-1, rows="old_rows"),
        _SIZES.format(sign=-1, rows="old_rows"),
        "SELECT DISTINCT user_id FROM old_rows",
    )
    changed = _apply(
        _TERMS.format(sign=1, rows="new_rows")
        + " UNION ALL "
        + _TERMS.format(sign=-1, rows="old_rows"),
        _SIZES.format(sign=1, rows="new_rows")
        + " UNION ALL "
        + _SIZES.format(sign=-1, rows="old_rows"),
        "SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows",
    )
    op.execute(
        "CREATE FUNCTION lexical_counts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" IF TG_OP = 'INSERT' THEN {added}"
        f" ELSIF TG_OP = 'DELETE' THEN {removed}"
        " DELETE FROM lexical_df d USING (SELECT DISTINCT t FROM old_rows,"
        " unnest(tsvector_to_array(terms) || tsvector_to_array(grams)) t) x"
        " WHERE d.term = x.t AND d.df <= 0;"
        f" ELSE {changed} END IF; RETURN NULL; END $$"
    )
    for event, tables in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER lexical_counts_{event.lower()} AFTER {event} ON lexical_terms"
            f" REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION lexical_counts()"
        )


def _backfill(bind: sa.Connection) -> None:
    """Cut the trigrams of the chunks the word index holds."""
    sqlite = bind.dialect.name == "sqlite"
    indexed = "SELECT rowid FROM lexical_fts" if sqlite else "SELECT chunk_id FROM lexical_terms"
    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.text, j.user_id FROM chunks c JOIN items i ON i.id = c.item_id"
            f" JOIN jobs j ON j.id = i.job_pk WHERE c.id IN ({indexed}) ORDER BY c.id"
        )
    ).all()
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        grams = [(int(cid), _grams(int(user), str(body))) for cid, body, user in batch]
        if sqlite:
            bind.execute(
                sa.text("INSERT INTO lexical_grams (rowid, terms) VALUES (:id, :terms)"),
                [{"id": cid, "terms": " ".join(g)} for cid, g in grams],
            )
        else:
            bind.execute(
                sa.text(
                    "UPDATE lexical_terms SET grams = array_to_tsvector(CAST(:grams AS text[])),"
                    " gram_length = :length WHERE chunk_id = :id"
                ),
                [{"id": cid, "grams": sorted(set(g)), "length": len(g)} for cid, g in grams],
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS chunks_lexical_grams_delete")
        op.execute("DROP TABLE IF EXISTS lexical_gram_vocab")
        op.execute("DROP TABLE IF EXISTS lexical_grams")
    else:
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS lexical_counts_{event} ON lexical_terms")
        op.execute("DROP FUNCTION IF EXISTS lexical_counts()")
        op.drop_table("lexical_sizes")
        op.drop_table("lexical_df")
        op.execute("DROP INDEX IF EXISTS ix_lexical_terms_grams")
        op.drop_column("lexical_terms", "gram_length")
        op.drop_column("lexical_terms", "grams")
