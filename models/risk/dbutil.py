"""Small helpers over raw psycopg2 connections (COPY, JSON cells)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if type(value) in (int, float):
        return str(value)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = str(value)
    return (text.replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def copy_rows(cur, table: str, columns: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> None:
    """COPY ``rows`` into ``table`` (lists and dicts are written as JSON)."""
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(_cell(v) for v in row))
        buf.write("\n")
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buf)


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys: equal values give equal text."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def raw_connection(engine):
    """A pooled DBAPI connection in transaction mode (temp tables live until
    commit), whatever an earlier borrower left it in."""
    conn = engine.raw_connection()
    if conn.driver_connection.autocommit:
        conn.driver_connection.autocommit = False
    return conn
