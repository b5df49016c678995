"""Ingest of supervision record feeds (CSV / TSV / JSON / JSON Lines).

``gis-server ingest feed FEED FILE`` and :func:`load_feed` read a file of
records (or take them as dicts from code), match its fields to the feed's
declared columns by name and alias exactly as a layer ingest does, coerce each
value, and upsert the valid records on the feed's natural key in one
transaction: ``COPY`` into a staging table, then one ``INSERT ... ON CONFLICT
(key) DO UPDATE ... WHERE changed``.

Bad rows follow the layer rules: a row without a key or required column, or
whose required value does not coerce, is rejected with its row number and the
reason; a value of an optional column that does not coerce is kept in
``extra`` (the column left empty) and reported as a warning; fields the feed
does not declare are kept in ``extra``. ``strict=True`` writes nothing when
any row is rejected. A record whose key repeats within the file is loaded
once (the last wins) and the earlier rows are reported.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from gis_server.errors import IngestError, InvalidParameter, StrictIngestFailed
from ingest.fields import CoercionError, coerce, jsonable, map_fields
from ingest.loader import Issue, copy_text
from ingest.records import Record, rows_from_file
from layers.feeds import FeedSpec

log = logging.getLogger("gis_server.ingest.feeds")

#: Zone of date-times given without one: the feeds come from Guangdong systems.
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class FeedIngestReport:
    """What one feed ingest did; ``summary()`` is the one-line version."""

    feed: str
    source: str
    origin: str = ""
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    warnings: int = 0
    seconds: float = 0.0
    committed: bool = False
    field_mapping: dict[str, str] = field(default_factory=dict)
    kept_in_extra: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def summary(self) -> str:
        state = "" if self.committed else " (nothing committed)"
        return (
            f"{self.feed}: read {self.read:,} / inserted {self.inserted:,} / "
            f"updated {self.updated:,} / unchanged {self.unchanged:,} / "
            f"rejected {self.rejected:,} / warnings {self.warnings:,} "
            f"in {self.seconds:.1f} s{state}"
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "issues"}
        out["issues"] = [i.as_dict() for i in self.issues]
        return out


def _records_from_dicts(
    records: Iterable[Mapping[str, Any]],
) -> tuple[list[str], list[tuple[int, Record]]]:
    rows = list(records)
    header: list[str] = []
    for rec in rows:
        header += [k for k in rec if k not in header]
    return header, [(i, [rec.get(h) for h in header]) for i, rec in enumerate(rows, 1)]


def load_feed(
    engine: Engine,
    spec: FeedSpec,
    path: Path | None = None,
    *,
    records: Iterable[Mapping[str, Any]] | None = None,
    source: str | None = None,
    field_map: dict[str, str] | None = None,
    strict: bool = False,
    tz: dt.tzinfo = DEFAULT_TZ,
) -> FeedIngestReport:
    """Load a file (or ``records``) into a feed's table; see the module doc.

    Returns the report; raises :class:`StrictIngestFailed` (nothing written)
    when ``strict`` and a row was rejected, :class:`IngestError` when the file
    cannot be read or lacks a key column altogether.
    """
    start = time.perf_counter()
    if (path is None) == (records is None):
        raise InvalidParameter("give a file or records, not both or neither")
    if path is not None:
        if not path.is_file():
            raise IngestError(f"no such file: {path}")
        header, rows = rows_from_file(path, list_keys=("records", "data", spec.id))
        origin = str(path)
    else:
        header, rows = _records_from_dicts(records or ())
        origin = "records"
    report = FeedIngestReport(
        feed=spec.id, source=source or (path.name if path else "api"), origin=origin
    )
    mapping = map_fields(spec, header, field_map)  # type: ignore[arg-type]
    report.field_mapping = dict(mapping.to_prop)
    report.kept_in_extra = list(mapping.unmapped)
    by_prop = {prop: src for src, prop in mapping.to_prop.items()}
    absent = [k for k in spec.must_have if k not in by_prop]
    if absent:
        raise IngestError(
            f"{spec.id}: the file has no column for {', '.join(absent)} "
            f"(columns: {', '.join(header) or 'none'}; map one with --field "
            "SOURCE=COLUMN)"
        )
    index = {h: i for i, h in enumerate(header)}
    columns = list(spec.columns)
    kept: dict[tuple, tuple[int, list[Any], dict[str, Any]]] = {}
    for row_no, row in rows:
        report.read += 1
        if isinstance(row, str):
            report.issues.append(Issue(row_no, None, "rejected", row))
            continue
        values: list[Any] = []
        extra = {
            name: jsonable(row[index[name]])
            for name in mapping.unmapped
            if row[index[name]] not in (None, "")
        }
        reason = None
        warnings: list[str] = []
        for prop in columns:
            src = by_prop.get(prop.name)
            raw = row[index[src]] if src is not None else None
            try:
                value = coerce(raw, prop, tz)
            except CoercionError as exc:
                if prop.name in spec.must_have:
                    reason = f"{prop.name}={raw!r}: {exc}"
                    break
                extra[src or prop.name] = jsonable(raw)
                warnings.append(f"{prop.name}={raw!r} kept in extra: {exc}")
                value = None
            if value is None and prop.name in spec.must_have:
                reason = f"{prop.name} is missing"
                break
            values.append(value)
        if reason is None and spec.row_check is not None:
            reason = spec.row_check(dict(zip(spec.prop_by_name, values, strict=True)))
        key_text = None
        if reason is None:
            key = tuple(values[columns.index(spec.prop_by_name[k])] for k in spec.key)
            key_text = "/".join(str(k) for k in key)
        if reason is not None:
            report.issues.append(Issue(row_no, key_text, "rejected", reason))
            continue
        for w in warnings:
            report.issues.append(Issue(row_no, key_text, "warning", w))
        if key in kept:
            earlier = kept[key][0]
            report.issues.append(
                Issue(
                    earlier,
                    key_text,
                    "warning",
                    f"same key as row {row_no} later in the file: that row is kept",
                )
            )
        kept[key] = (row_no, values, extra)
    report.rejected = sum(1 for i in report.issues if i.action == "rejected")
    report.warnings = sum(1 for i in report.issues if i.action == "warning")
    if strict and report.rejected:
        report.seconds = time.perf_counter() - start
        raise StrictIngestFailed(
            f"{spec.id}: {report.rejected} row(s) rejected; --strict: nothing written"
        ).with_report(report)
    if kept:
        with engine.begin() as conn:
            counts = _upsert(conn, spec, list(kept.values()), report.source)
        report.inserted, report.updated = counts
        report.unchanged = len(kept) - sum(counts)
    report.committed = True
    report.seconds = time.perf_counter() - start
    log.info(
        "feed loaded",
        extra={
            "feed": spec.id,
            "source": report.source,
            "read": report.read,
            "inserted": report.inserted,
            "updated": report.updated,
            "rejected": report.rejected,
        },
    )
    return report


def _upsert(
    conn, spec: FeedSpec, rows: list[tuple[int, list[Any], dict[str, Any]]], source: str
) -> tuple[int, int]:
    """COPY the rows into a staging table and upsert them; (inserted, updated)."""
    names = [c.name for c in spec.columns]
    cols = [*names, "source", "extra"]
    fields = [
        copy_text([r[1][i] for r in rows], c.type) for i, c in enumerate(spec.columns)
    ]
    fields.append(copy_text([source] * len(rows), "text"))
    fields.append(copy_text([r[2] for r in rows], "json"))
    buf = io.StringIO("\n".join("\t".join(t) for t in zip(*fields, strict=True)) + "\n")
    quoted = ", ".join(f'"{c}"' for c in cols)
    conn.execute(
        text(
            f"CREATE TEMP TABLE _feed_stage ON COMMIT DROP AS "
            f"SELECT {quoted} FROM {spec.table} WITH NO DATA"
        )
    )
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY _feed_stage ({quoted}) FROM STDIN", buf)
    key = ", ".join(f'"{k}"' for k in spec.key)
    updates = [c for c in cols if c not in spec.key]
    assignments = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
    changed = " OR ".join(
        f'{spec.table}."{c}" IS DISTINCT FROM EXCLUDED."{c}"'
        for c in updates
        if c != "source"
    )
    result = conn.execute(
        text(
            f"INSERT INTO {spec.table} AS {spec.table} ({quoted}) "
            f"SELECT {quoted} FROM _feed_stage "
            f"ON CONFLICT ({key}) DO UPDATE SET {assignments}, loaded_at = now() "
            f"WHERE {changed} RETURNING (xmax = 0) AS inserted"
        )
    ).all()
    inserted = sum(1 for r in result if r.inserted)
    return inserted, len(result) - inserted
