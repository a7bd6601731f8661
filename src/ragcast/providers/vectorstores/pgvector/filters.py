"""Filter translation for the pgvector backend: a ``where`` of the contract as a SQL
condition and its named parameters.

``content_id`` and ``chunk_index`` are columns (the btree covers them); every other key is
read from the ``metadata`` jsonb: equality as ``@>``, ``in`` as ``-> … = ANY``, ``contains``
as ``@>`` of a one-element array, and a range
only on numbers (text never reaches the cast).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ragcast.providers.vectorstores.base import Condition, conditions

COLUMNS = ("content_id", "chunk_index")  # filters on these use columns, others the jsonb


def where_clause(where: dict[str, Any] | None) -> tuple[sql.Composable, dict[str, Any]]:
    """A SQL condition and its parameters: columns for ids, jsonb for the rest."""
    parts: list[sql.Composable] = [sql.SQL("TRUE")]
    params: dict[str, Any] = {}
    for n, c in enumerate(conditions(where)):
        part, values = _condition(c, f"w{n}")
        parts.append(part)
        params.update(values)
    return sql.SQL(" AND ").join(parts), params


def _condition(c: Condition, p: str) -> tuple[sql.Composable, dict[str, Any]]:
    """One condition, its placeholders named ``p…``."""
    if c.kind == "range":
        return _range(c, p)
    if c.key in COLUMNS:
        col = sql.Identifier(c.key)
        if c.kind == "in":
            return sql.SQL("{} = ANY({})").format(col, sql.Placeholder(p)), {p: list(c.values)}
        return sql.SQL("{} = {}").format(col, sql.Placeholder(p)), {p: c.value}
    if c.kind == "in":
        part = sql.SQL("metadata -> {} = ANY({}::jsonb[])").format(
            sql.Literal(c.key), sql.Placeholder(p)
        )
        return part, {p: [Jsonb(v) for v in c.values]}
    if c.kind == "contains":  # a jsonb array holding the value
        return sql.SQL("metadata @> {}").format(sql.Placeholder(p)), {p: Jsonb({c.key: [c.value]})}
    return sql.SQL("metadata @> {}").format(sql.Placeholder(p)), {p: Jsonb({c.key: c.value})}


def _range(c: Condition, p: str) -> tuple[sql.Composable, dict[str, Any]]:
    """``gte``/``lte`` on a column, or on a number in ``metadata`` (other types never
    match: the ``CASE`` keeps text from reaching the cast)."""
    value: sql.Composable = sql.Identifier(c.key)
    if c.key not in COLUMNS:
        value = sql.SQL(
            "(CASE WHEN jsonb_typeof(metadata -> {k}) = 'number'"
            " THEN (metadata ->> {k})::double precision END)"
        ).format(k=sql.Literal(c.key))
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    for op, bound, suffix in ((">=", c.gte, "a"), ("<=", c.lte, "b")):
        if bound is not None:
            parts.append(
                sql.SQL("{} {} {}").format(value, sql.SQL(op), sql.Placeholder(p + suffix))
            )
            params[p + suffix] = bound
    return sql.SQL(" AND ").join(parts), params
