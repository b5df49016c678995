"""Load a :class:`FeatureBatch` into a layer table: check, map, COPY, upsert.

One batch is one transaction. Rows are reprojected to WGS84, their geometry
checked and repaired where ``make_valid`` can, their properties mapped and
coerced; the good rows are streamed with ``COPY`` into a temporary table and
upserted on (``source``, ``source_id``, ``source_part``) in one statement, so
re-running a file changes nothing and a failure leaves nothing half-loaded.
With ``strict=True`` a single rejected row means nothing is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from sqlalchemy import Engine

from gis_server.errors import StrictIngestFailed
from ingest.batch import FeatureBatch
from ingest.crs import normalise_crs, to_wgs84
from ingest.fields import CoercionError, coerce, jsonable, map_fields, normalise_name
from ingest.geometry import REJECTED, REPAIRED, check_geometries
from layers.base import LayerSpec, Prop

log = logging.getLogger("gis_server.ingest")

#: Source id fields that are the same thing as our ``source_id`` and so are
#: not repeated in ``extra``.
_ID_KEYS = {"id", "fid", "sourceid"}

_SQL_TYPES = {
    "text": "text",
    "int": "integer",
    "float": "double precision",
    "bool": "boolean",
    "date": "date",
    "datetime": "timestamptz",
    "json": "jsonb",
}


@dataclass
class Issue:
    """One row the report mentions."""

    row: int
    source_id: str | None
    action: str  # "rejected", "repaired" or "warning"
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "source_id": self.source_id,
            "action": self.action,
            "reason": self.reason,
        }


@dataclass
class IngestReport:
    """What one ingest did; ``summary()`` is the one-line version."""

    layer: str
    source: str
    origin: str = ""
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    repaired: int = 0
    rejected: int = 0
    warnings: int = 0
    seconds: float = 0.0
    committed: bool = False
    crs: str | None = None
    field_mapping: dict[str, str] = field(default_factory=dict)
    kept_in_extra: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: seconds spent in each step (prepare, copy, upsert, index), for tuning
    phases: dict[str, float] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def summary(self) -> str:
        state = "" if self.committed else " (nothing committed)"
        deleted = f" / deleted {self.deleted:,}" if self.deleted else ""
        return (
            f"{self.layer}: read {self.read:,} / inserted {self.inserted:,} / "
            f"updated {self.updated:,} / unchanged {self.unchanged:,}{deleted} / "
            f"repaired {self.repaired:,} / rejected {self.rejected:,} "
            f"in {self.seconds:.1f} s{state}"
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "issues"}
        out["issues"] = [i.as_dict() for i in self.issues]
        return out


def write_report(report: Any, path: Path | None, *, directory: Path, stem: str) -> Path:
    """Save an ingest report: JSON (everything) or, for a ``.csv`` path, the issues.

    Without ``path`` the report goes to ``directory/<stem>-<timestamp>.json``.
    Works for any report with ``issues`` and ``as_dict()`` (layers, readings).
    """
    if path is None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, ["row", "source_id", "action", "reason"])
            writer.writeheader()
            writer.writerows(issue.as_dict() for issue in report.issues)
    else:
        path.write_text(
            json.dumps(report.as_dict(), ensure_ascii=False, indent=2, default=str),
            encoding="utf-8",
        )
    return path


def occurrence_numbers(ids: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows share its id (0 for the first).

    >>> occurrence_numbers(np.array(["a", "b", "a", "a"], dtype=object)).tolist()
    [0, 0, 1, 2]
    """
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(ids.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sorted_groups = inverse[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    out = np.empty(len(ids), dtype=np.int64)
    out[order] = np.arange(len(order)) - group_start
    return out


def _source_ids(batch: FeatureBatch, wkb: list[bytes | None]) -> np.ndarray:
    """The source's ids as text; rows without one get a content hash."""
    n = len(batch)
    out = np.empty(n, dtype=object)
    raw = batch.ids if batch.ids is not None else [None] * n
    for i, value in enumerate(raw):
        if type(value) is str and value.strip():
            out[i] = value
            continue
        value = jsonable(value)
        if value is None or (isinstance(value, str) and not value.strip()):
            digest = hashlib.sha1(wkb[i] or b"").hexdigest()[:16]
            out[i] = f"sha1:{digest}"
        elif isinstance(value, float) and value.is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def _coerce_column(
    values: Any, prop: Prop, keep: np.ndarray
) -> tuple[list, dict[int, str]]:
    """Coerce one column; returns values and {row index: error} for failures.

    Typed numeric arrays and plain strings take fast paths; anything else
    goes value by value through :func:`ingest.fields.coerce`.
    """
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    errors: dict[int, str] = {}
    if prop.type in ("int", "float") and arr.dtype.kind in "iuf":
        as_float = arr.astype(float)
        finite = np.isfinite(as_float)
        bad = np.zeros(len(arr), dtype=bool)
        if prop.non_negative:
            bad |= finite & (as_float < 0)
        if prop.type == "int":
            bad |= finite & (as_float != np.round(as_float))
        cast = (
            arr.astype(np.int64)
            if prop.type == "int" and arr.dtype.kind in "iu"
            else (as_float)
        )
        out: list = cast.tolist()
        if prop.type == "int" and arr.dtype.kind == "f":
            out = [int(v) if f else None for v, f in zip(out, finite, strict=True)]
        elif not finite.all():
            out = [v if f else None for v, f in zip(out, finite, strict=True)]
        for i in np.flatnonzero(bad & keep):
            errors[int(i)] = "negative" if as_float[i] < 0 else "not a whole number"
            out[i] = None
        return out, errors
    out = [None] * len(arr)
    if prop.type == "text":
        canonical = {c.casefold(): c for c in prop.choices} if prop.choices else None
        for i in np.flatnonzero(keep):
            value = arr[i]
            if type(value) is not str:
                try:
                    out[i] = coerce(value, prop)
                except CoercionError as exc:
                    errors[int(i)] = str(exc)
                continue
            value = value.strip()
            if not value:
                continue
            if canonical is not None:
                match = canonical.get(value.casefold())
                if match is None:
                    errors[int(i)] = f"not one of {'/'.join(prop.choices)}"
                    continue
                value = match
            out[i] = value
        return out, errors
    for i in np.flatnonzero(keep):
        try:
            out[i] = coerce(arr[i], prop)
        except CoercionError as exc:
            errors[int(i)] = str(exc)
    return out, errors


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


def copy_text(values: list, prop_type: str) -> list[str]:
    """Values as fields of PostgreSQL's COPY text format (``\\N`` for null)."""
    if prop_type == "text":
        present = [v for v in values if v is not None]
        joined = "".join(present)
        if not any(c in joined for c in "\\\t\n\r"):
            return [_NULL if v is None else v for v in values]
        return [_NULL if v is None else v.translate(_COPY_ESCAPES) for v in values]
    if prop_type == "json":
        return [
            _NULL
            if v is None
            else json.dumps(v, ensure_ascii=False).translate(_COPY_ESCAPES)
            for v in values
        ]
    if prop_type == "bool":
        return [_NULL if v is None else ("t" if v else "f") for v in values]
    if prop_type in ("date", "datetime"):
        return [_NULL if v is None else v.isoformat() for v in values]
    if prop_type == "float":
        return [_NULL if v is None else repr(float(v)) for v in values]
    return [_NULL if v is None else str(v) for v in values]


def _promotion_sql(spec: LayerSpec, expr: str) -> str:
    """SQL turning single parts into the layer's multi type where needed."""
    singles = [
        g[len("Multi") :].upper()
        for g in spec.geometry_types
        if g.startswith("Multi") and g[len("Multi") :] not in spec.geometry_types
    ]
    if not singles:
        return expr
    listed = ", ".join(f"'{s}'" for s in singles)
    return (
        f"CASE WHEN GeometryType({expr}) IN ({listed}) "
        f"THEN ST_Multi({expr}) ELSE {expr} END"
    )


def upsert_sql(spec: LayerSpec, *, sync: bool, fresh: bool = False) -> str:
    """The statement that moves staged rows into the layer table.

    ``fresh``: the table has no row of this source yet, so a plain insert
    does (no conflict checks, no comparisons).
    """
    props = [p.name for p in spec.properties]
    cols = ", ".join(f'"{c}"' for c in props)
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in props)
    old = ", ".join(f't."{c}"' for c in props)
    new = ", ".join(f'EXCLUDED."{c}"' for c in props)
    geom = _promotion_sql(spec, "ST_SetSRID(s.geom, 4326)")
    comma = ", " if props else ""
    deleted = ""
    if sync:
        deleted = f""",
    gone AS (
        DELETE FROM {spec.table} t
        WHERE t.source = %(source)s
          AND NOT EXISTS (SELECT 1 FROM stage s WHERE s.source_id = t.source_id
                          AND s.source_part = t.source_part)
        RETURNING 1)"""
    conflict = (
        ""
        if fresh
        else f"""ON CONFLICT (source, source_id, source_part) DO UPDATE
        SET {sets}{comma}extra = EXCLUDED.extra, geom = EXCLUDED.geom,
            updated_at = now()
        WHERE ({old}{comma}t.extra, t.geom)
              IS DISTINCT FROM ({new}{comma}EXCLUDED.extra, EXCLUDED.geom)"""
    )
    return f"""
    WITH up AS (
        INSERT INTO {spec.table} AS t (source, source_id, source_part{comma}{cols},
                                       extra, geom)
        SELECT %(source)s, s.source_id, s.source_part{comma}{
        ", ".join(f's."{c}"' for c in props)
    }, s.extra, {geom}
        FROM stage s
        {conflict}
        RETURNING (xmax = 0) AS inserted){deleted}
    SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted),
           {"(SELECT count(*) FROM gone)" if sync else "0"}
    FROM up
    """


def _drop_secondary_indexes(
    cur, spec: LayerSpec, rows: int, bulk_rows: int, fresh: bool
) -> list[str]:
    """Drop the indexes a bulk load would update row by row; return their DDL.

    Only for a new source bringing at least ``bulk_rows`` rows and at least as
    many as the table holds: then building each index once, sorted, after the
    insert beats a million insertions into it. Indexes behind the primary key
    and the upsert key stay.
    """
    if not fresh or rows < bulk_rows:
        return []
    cur.execute(
        "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (spec.table,)
    )
    if rows < max(cur.fetchone()[0], 0):
        return []
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT x.indisunique AND NOT x.indisprimary",
        (spec.table,),
    )
    found = cur.fetchall()
    for name, _ in found:
        cur.execute(f'DROP INDEX "{name}"')
    log.debug(
        "bulk load: secondary indexes dropped",
        extra={"layer": spec.id, "indexes": len(found)},
    )
    return [definition for _, definition in found]


@contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, description=None: bar.update(
            task, advance=done, **({"description": description} if description else {})
        )


def load_batch(
    engine: Engine,
    spec: LayerSpec,
    batch: FeatureBatch,
    *,
    source: str,
    field_map: dict[str, str] | None = None,
    strict: bool = False,
    sync: bool = False,
    progress: bool = False,
    chunk_size: int = 50_000,
    bulk_rows: int = 200_000,
) -> IngestReport:
    """Check, map and upsert a batch into ``spec``'s table in one transaction.

    Parameters
    ----------
    source : the source name that, with each row's source id and part number,
        keys the upsert (by convention the file name).
    field_map : explicit source field -> property mappings (``--field``).
    strict : write nothing if any row is rejected; raise StrictIngestFailed.
    sync : also delete this source's features that are not in the batch.
    bulk_rows : from this many rows of a new source, when the batch is at
        least as large as the table, the secondary indexes are dropped and
        rebuilt around the insert (a sorted build beats a million index
        insertions); the layer is locked meanwhile, as in any bulk load.
    """
    started = time.perf_counter()
    crs = normalise_crs(batch.crs)
    report = IngestReport(
        layer=spec.id,
        source=source,
        origin=batch.origin,
        read=len(batch),
        crs=crs or "EPSG:4326 (assumed)",
    )
    report.notes.extend(batch.warnings)
    n = len(batch)

    geoms = to_wgs84(np.asarray(batch.geometries, dtype=object), crs)
    checked = check_geometries(geoms, spec)
    status = checked.status.copy()
    reasons = list(checked.reasons)
    for row_index, why in batch.errors.items():
        status[row_index] = REJECTED
        reasons[row_index] = why
    keep = status != REJECTED
    wkb: list[bytes | None] = [None] * n
    kept_idx = np.flatnonzero(keep)
    for i, blob in zip(
        kept_idx, shapely.to_wkb(checked.geometries[kept_idx]), strict=True
    ):
        wkb[i] = blob
    source_ids = _source_ids(batch, wkb)
    parts = occurrence_numbers(source_ids)
    rows = batch.row_numbers

    for i in np.flatnonzero(status == REJECTED):
        report.issues.append(Issue(int(rows[i]), source_ids[i], "rejected", reasons[i]))
    for i in np.flatnonzero(status == REPAIRED):
        report.issues.append(Issue(int(rows[i]), source_ids[i], "repaired", reasons[i]))
    report.rejected = int((status == REJECTED).sum())
    report.repaired = int((status == REPAIRED).sum())

    ignore = (
        [batch.id_field]
        if batch.id_field and normalise_name(batch.id_field) in _ID_KEYS
        else []
    )
    mapping = map_fields(spec, list(batch.columns), field_map, ignore=ignore)
    report.field_mapping = dict(mapping.to_prop)
    report.kept_in_extra = list(mapping.unmapped)

    extras: list[dict[str, Any] | None] = [None] * n
    prop_values: dict[str, list] = {}
    for source_field, prop_name in mapping.to_prop.items():
        prop = spec.prop_by_name[prop_name]
        values, errors = _coerce_column(batch.columns[source_field], prop, keep)
        prop_values[prop_name] = values
        raw = batch.columns[source_field]
        for i, why in errors.items():
            report.issues.append(
                Issue(
                    int(rows[i]),
                    source_ids[i],
                    "warning",
                    f"{source_field}={jsonable(raw[i])!r} is not a valid {prop_name} "
                    f"({why}); kept in extra",
                )
            )
            extras[i] = extras[i] or {}
            extras[i][source_field] = jsonable(raw[i])
        report.warnings += len(errors)
    for source_field in mapping.unmapped:
        column = batch.columns[source_field]
        for i in kept_idx:
            value = jsonable(column[i])
            if value is not None:
                extras[i] = extras[i] or {}
                extras[i][source_field] = value

    report.issues.sort(key=lambda issue: issue.row)
    if strict and report.rejected:
        report.seconds = time.perf_counter() - started
        raise StrictIngestFailed(
            f"--strict: {report.rejected} of {n} rows rejected; nothing was written"
        ).with_report(report)

    # COPY text fields, column by column (much cheaper than row by row).
    fields = [[source_ids[i] for i in kept_idx], [str(parts[i]) for i in kept_idx]]
    for prop in spec.properties:
        values = prop_values.get(prop.name)
        fields.append(
            [_NULL] * len(kept_idx)
            if values is None
            else copy_text([values[i] for i in kept_idx], prop.type)
        )
    fields.append(
        [
            "{}"
            if extras[i] is None
            else json.dumps(extras[i], ensure_ascii=False).translate(_COPY_ESCAPES)
            for i in kept_idx
        ]
    )
    fields.append([wkb[i].hex() for i in kept_idx])
    stage_cols = ", ".join(
        ["source_id text", "source_part integer"]
        + [f'"{p.name}" {_SQL_TYPES[p.type]}' for p in spec.properties]
        + ["extra jsonb", "geom geometry"]
    )
    total = len(kept_idx)
    with (
        engine.begin() as conn,
        _progress(progress, total, f"loading {spec.id}") as tick,
    ):
        report.phases["prepare"] = round(time.perf_counter() - started, 2)
        mark = time.perf_counter()
        cur = conn.connection.driver_connection.cursor()
        cur.execute(f"CREATE TEMP TABLE stage ({stage_cols}) ON COMMIT DROP")
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            chunk = zip(*(f[start:stop] for f in fields), strict=True)
            lines = "\n".join(map("\t".join, chunk))
            cur.copy_expert("COPY stage FROM STDIN", io.StringIO(lines + "\n"))
            if tick:
                tick(stop - start)
        if tick:
            tick(0, f"upserting {spec.id}")
        report.phases["copy"] = round(time.perf_counter() - mark, 2)
        mark = time.perf_counter()
        # under row-level security (a scoped --as account) rows of the
        # source outside the scope are invisible: never take it for fresh
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM " + spec.table + " WHERE source = %s) "
            "OR row_security_active(%s)",
            (source, spec.table),
        )
        fresh = not cur.fetchone()[0]
        rebuild = _drop_secondary_indexes(cur, spec, total, bulk_rows, fresh)
        cur.execute(upsert_sql(spec, sync=sync, fresh=fresh), {"source": source})
        inserted, updated, deleted = cur.fetchone()
        report.phases["upsert"] = round(time.perf_counter() - mark, 2)
        mark = time.perf_counter()
        for statement in rebuild:
            if tick:
                tick(0, f"indexing {spec.id}")
            cur.execute(statement)
        if rebuild:
            report.phases["index"] = round(time.perf_counter() - mark, 2)
        cur.close()
    report.inserted, report.updated, report.deleted = (
        int(inserted),
        int(updated),
        int(deleted),
    )
    report.unchanged = len(kept_idx) - report.inserted - report.updated
    report.committed = True
    report.seconds = time.perf_counter() - started
    log.info(
        "ingest done",
        extra={
            "layer": spec.id,
            "source": source,
            "read": report.read,
            "inserted": report.inserted,
            "updated": report.updated,
            "rejected": report.rejected,
            "seconds": round(report.seconds, 2),
            **{f"{k}_s": v for k, v in report.phases.items()},
        },
    )
    return report
