"""chunk text joined as its script writes it, Chinese folded in the lexical index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 15:00:00

Releases before this one joined a recording's words with spaces, so Chinese and Japanese
chunks read ``廣 州 市``. A chunk's text was its units joined by single spaces, so taking
out each single space between two CJK characters gives exactly the text the chunker now
makes (``廣州市``); only recordings' chunks are touched (a document keeps its spaces).
Each changed chunk of an indexed item gets its lexical row again, as does every chunk
whose text has traditional Chinese characters (the index now folds them to simplified).
A changed chunk that was embedded is listed in ``reembed_chunks``: a migration cannot
load the job's model, so the workers embed it again and rewrite its vector at start-up
(ragcast.pipeline.repairs), then take it off the list.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 1000

# The script rule and lexical terms exactly as this revision wrote them (ragcast/text.py
# and retrieval/tokenize.py of its release): a migration carries what it needs.
_TIGHT = (
    "\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3000-\u303f"
    "\u3040-\u30ff\u3100-\u312f\u31f0-\u31ff\u3200-\u33ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff"
)
_SPACE_IN_SCRIPT = re.compile(f"(?<=[{_TIGHT}]) (?=[{_TIGHT}])")
_TIGHT_CHAR = re.compile(f"[{_TIGHT}]")
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


@cache
def _folding() -> dict[int, str]:
    """Traditional → simplified, character by character (OpenCC's TSCharacters)."""
    table: dict[int, str] = {}
    source = resources.files("opencc") / "dictionary" / "TSCharacters.txt"
    for line in source.read_text(encoding="utf-8").splitlines():
        key, _, values = line.partition("\t")
        if len(key) == 1 and values.split():
            table[ord(key)] = values.split()[0]
    return table


def _joined(text: str) -> str:
    """A recording's chunk text as this revision writes it."""
    return _SPACE_IN_SCRIPT.sub("", text)


def _join_segments(texts: list[str]) -> str:
    out: list[str] = []
    for text in texts:
        if out and not (_TIGHT_CHAR.match(out[-1][-1]) and _TIGHT_CHAR.match(text[0])):
            out.append(" ")
        out.append(text)
    return "".join(out)


def _folds(text: str) -> bool:
    """Whether folding Chinese changes the terms of ``text``."""
    normal = unicodedata.normalize("NFKC", text).casefold()
    return normal.translate(_folding()) != normal


def _terms(user_id: int, text: str) -> list[str]:
    """A chunk's terms, owned by its user (``u17_tide``), Chinese folded, CJK as bigrams."""
    out: list[str] = []
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_folding())
    for run in _RUN.findall(folded):
        if _IS_UNSPACED.match(run):
            out.extend([run] if len(run) == 1 else [run[n : n + 2] for n in range(len(run) - 1)])
        elif len(run) <= _MAX_TERM:
            out.append(run)
    return [f"u{user_id}_{t}" for t in out]


def upgrade() -> None:
    op.create_table(
        "reembed_chunks",
        sa.Column(
            "chunk_id",
            sa.Integer(),
            sa.ForeignKey("chunks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    bind = op.get_bind()
    _rejoin_chunks(bind)
    _rejoin_transcripts(bind)


def _rejoin_chunks(bind: sa.Connection) -> None:
    """Rejoin recordings' chunks, list the embedded ones, rebuild their lexical rows."""
    after = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT c.id, c.text, c.embedding IS NOT NULL, i.stage, j.user_id,"
                " t.source FROM chunks c JOIN items i ON i.id = c.item_id"
                " JOIN jobs j ON j.id = i.job_pk"
                " LEFT JOIN transcripts t ON t.item_id = i.id"
                " WHERE c.id > :after ORDER BY c.id LIMIT :batch"
            ),
            {"after": after, "batch": BATCH},
        ).all()
        if not rows:
            return
        after = int(rows[-1][0])
        changed: list[dict[str, Any]] = []
        embedded: list[dict[str, Any]] = []
        lexical: list[tuple[int, int, str]] = []
        for cid, body, has_vector, stage, user, source in rows:
            text = _joined(str(body)) if source == "asr" else str(body)
            if text != body:
                changed.append({"id": int(cid), "text": text})
                if has_vector:
                    embedded.append({"id": int(cid)})
            if stage == "indexed" and (text != body or _folds(text)):
                lexical.append((int(cid), int(user), text))
        if changed:
            bind.execute(sa.text("UPDATE chunks SET text = :text WHERE id = :id"), changed)
        if embedded:
            bind.execute(sa.text("INSERT INTO reembed_chunks (chunk_id) VALUES (:id)"), embedded)
        _reindex(bind, lexical)


def _reindex(bind: sa.Connection, chunks: list[tuple[int, int, str]]) -> None:
    """Replace the lexical rows of ``(chunk id, user id, text)``."""
    if not chunks:
        return
    owned = [(cid, user, _terms(user, text)) for cid, user, text in chunks]
    if bind.dialect.name == "sqlite":
        bind.execute(
            sa.text("DELETE FROM lexical_fts WHERE rowid = :id"), [{"id": c} for c, _, _ in owned]
        )
        bind.execute(
            sa.text("INSERT INTO lexical_fts (rowid, terms) VALUES (:id, :terms)"),
            [{"id": cid, "terms": " ".join(t)} for cid, _, t in owned],
        )
        return
    bind.execute(
        sa.text(
            "INSERT INTO lexical_terms (chunk_id, user_id, terms, length) VALUES"
            " (:id, :user, array_to_tsvector(CAST(:terms AS text[])), :length)"
            " ON CONFLICT (chunk_id) DO UPDATE SET terms = excluded.terms,"
            " length = excluded.length"
        ),
        [
            {"id": cid, "user": user, "terms": sorted(set(t)), "length": len(t)}
            for cid, user, t in owned
        ],
    )


def _rejoin_transcripts(bind: sa.Connection) -> None:
    """A recording's stored transcript text: its segments joined by the script rule."""
    after = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT item_id, data, text FROM transcripts WHERE source = 'asr'"
                " AND item_id > :after ORDER BY item_id LIMIT :batch"
            ),
            {"after": after, "batch": BATCH},
        ).all()
        if not rows:
            return
        after = int(rows[-1][0])
        updates = []
        for item_id, data, old in rows:
            body = json.loads(data) if isinstance(data, str) else dict(data)
            texts = [str(s.get("text") or "").strip() for s in body.get("segments") or []]
            text = _join_segments([t for t in texts if t])
            if text != old:
                updates.append({"id": int(item_id), "text": text})
        if updates:
            bind.execute(
                sa.text("UPDATE transcripts SET text = :text WHERE item_id = :id"), updates
            )


def downgrade() -> None:
    # Texts stay as this revision joined them: the earlier release reads them as they are.
    op.drop_table("reembed_chunks")
