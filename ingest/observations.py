"""Ingest of water-quality readings from CSV or JSON into ``water_observations``.

Two layouts are understood, recognised from the header:

- *long*: one reading per row -- station, time, indicator, value, optional unit;
- *wide*: one sample per row -- station, time and one column per indicator
  (``do``, ``nh3n``, ``transparency``...; units are the canonical ones, or
  taken from the column name, e.g. ``depth_m``).

Valid rows are streamed with COPY into a temporary staging table in chunks,
then moved with one ``INSERT ... ON CONFLICT`` on (station, time, indicator):
a repeated reading (in the file or already stored) is counted once, as a
duplicate, or replaces the stored value with ``update=True``. Bad rows are
reported (row number, reason) and skipped, or abort everything with
``strict=True``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gis_server.errors import IngestError, StrictIngestFailed
from ingest.loader import Issue
from ingest.records import Record, rows_from_file
from models.water.store import PIVOT_INDICATORS

log = logging.getLogger("gis_server.ingest.observations")

#: Canonical indicators: unit, accepted units with their factor to the canonical
#: unit, allowed range, and source names matched to them (compared after
#: lower-casing and dropping ``-``, ``_`` and spaces).
INDICATORS: dict[str, dict[str, Any]] = {
    "transparency": {
        "unit": "cm",
        "units": {"cm": 1.0, "m": 100.0, "mm": 0.1},
        "range": (0.0, 1000.0),
        "aliases": ("transparency", "sd", "透明度"),
    },
    "do": {
        "unit": "mg/L",
        "units": {"mg/l": 1.0},
        "range": (0.0, 30.0),
        "aliases": ("do", "dissolvedoxygen", "溶解氧"),
    },
    "orp": {
        "unit": "mV",
        "units": {"mv": 1.0, "v": 1000.0},
        "range": (-1000.0, 1000.0),
        "aliases": ("orp", "eh", "redox", "氧化还原电位"),
    },
    "nh3n": {
        "unit": "mg/L",
        "units": {"mg/l": 1.0},
        "range": (0.0, 500.0),
        "aliases": ("nh3n", "nh3", "ammonia", "ammonianitrogen", "氨氮"),
    },
    "cod": {
        "unit": "mg/L",
        "units": {"mg/l": 1.0},
        "range": (0.0, 5000.0),
        "aliases": ("cod", "codcr", "化学需氧量"),
    },
    "codmn": {
        "unit": "mg/L",
        "units": {"mg/l": 1.0},
        "range": (0.0, 500.0),
        "aliases": ("codmn", "permanganateindex", "高锰酸盐指数"),
    },
    "bod5": {
        "unit": "mg/L",
        "units": {"mg/l": 1.0},
        "range": (0.0, 2000.0),
        "aliases": ("bod5", "bod", "五日生化需氧量"),
    },
    "tp": {
        "unit": "mg/L",
        "units": {"mg/l": 1.0},
        "range": (0.0, 100.0),
        "aliases": ("tp", "totalphosphorus", "总磷"),
    },
    "turbidity": {
        "unit": "NTU",
        "units": {"ntu": 1.0},
        "range": (0.0, 10000.0),
        "aliases": ("turbidity", "浊度"),
    },
    "ph": {
        "unit": "",
        "units": {"": 1.0, "ph": 1.0},
        "range": (0.0, 14.0),
        "aliases": ("ph",),
    },
    "rainfall": {
        "unit": "mm",
        "units": {"mm": 1.0},
        "range": (0.0, 1000.0),
        "aliases": ("rainfall", "rain", "precipitation", "降雨量", "降水量"),
    },
    "depth": {
        "unit": "cm",
        "units": {"cm": 1.0, "m": 100.0},
        "range": (0.0, 10000.0),
        "aliases": ("depth", "waterdepth", "水深"),
    },
}

STATION_ALIASES = ("station", "stationcode", "station_code", "code", "站点", "站点编码")
TIME_ALIASES = (
    "observedat",
    "time",
    "timestamp",
    "datetime",
    "date",
    "sampledat",
    "监测时间",
    "采样时间",
)
INDICATOR_ALIASES = ("indicator", "parameter", "variable", "指标", "监测指标")
VALUE_ALIASES = ("value", "reading", "值", "监测值")
UNIT_ALIASES = ("unit", "units", "单位")


def _norm(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in "-_ :")


_INDICATOR_BY_ALIAS = {
    _norm(a): k for k, spec in INDICATORS.items() for a in spec["aliases"]
}


def _find(header: list[str], aliases: tuple[str, ...]) -> str | None:
    wanted = {_norm(a) for a in aliases}
    return next((h for h in header if _norm(h) in wanted), None)


def _wide_column(name: str) -> tuple[str, str] | None:
    """Indicator and unit of a wide-layout column (``do``, ``depth_m``)."""
    n = _norm(name)
    if n in _INDICATOR_BY_ALIAS:
        ind = _INDICATOR_BY_ALIAS[n]
        return ind, INDICATORS[ind]["unit"]
    for ind, spec in INDICATORS.items():
        for unit in spec["units"]:
            if unit and any(n == _norm(a) + _norm(unit) for a in spec["aliases"]):
                return ind, unit
    return None


@dataclass
class ObservationIngestReport:
    """What one observation ingest did."""

    origin: str
    layout: str = ""
    #: id of the row in water_observation_loads (the readings keep it)
    load_id: int | None = None
    read: int = 0
    valid: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    committed: bool = False
    notes: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def summary(self) -> str:
        state = "" if self.committed else " (nothing committed)"
        return (
            f"observations: read {self.read:,} readings / inserted {self.inserted:,} / "
            f"updated {self.updated:,} / duplicates {self.duplicates:,} / "
            f"rejected {self.rejected:,} in {self.seconds:.1f} s{state}"
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "issues"}
        out["issues"] = [i.as_dict() for i in self.issues]
        return out


class _Normaliser:
    """Checks readings and turns them into COPY lines (or reasons)."""

    def __init__(self, default_tz: dt.tzinfo, stations: set[str] | None) -> None:
        self.tz = default_tz
        self.stations = stations
        self._times: dict[str, str | None] = {}
        self._ok_stations: set[str] = set()

    def time(self, raw: Any) -> str | None:
        key = raw if isinstance(raw, str) else str(raw)
        hit = self._times.get(key, "")
        if hit != "":
            return hit
        try:
            t = dt.datetime.fromisoformat(key.strip().replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=self.tz)
            out: str | None = t.isoformat()
        except ValueError:
            out = None
        if len(self._times) > 500_000:
            self._times.clear()
        self._times[key] = out
        return out

    def sample(self, station: Any, when: Any) -> tuple[str, str] | str:
        """Station code and normalised time of a sample, or why not."""
        station = "" if station is None else str(station).strip()
        if station not in self._ok_stations:
            if not station:
                return "no station code"
            if "\t" in station or "\\" in station or "\n" in station:
                return f"bad station code {station!r}"
            if self.stations is not None and station not in self.stations:
                return f"unknown station {station!r}"
            self._ok_stations.add(station)
        if when is None or str(when).strip() == "":
            return "no observation time"
        ts = self.time(when)
        if ts is None:
            return f"unreadable time {when!r}"
        return station, ts


class _Column:
    """Checks and converts values of one indicator in one unit."""

    __slots__ = ("factor", "hi", "indicator", "lo", "unit")

    def __init__(self, indicator: str, unit: Any) -> None:
        spec = INDICATORS[indicator]
        self.indicator = indicator
        self.unit = spec["unit"]
        u = _norm(str(unit)) if unit not in (None, "") else _norm(spec["unit"])
        self.factor = spec["units"].get(u)
        self.lo, self.hi = spec["range"]

    def value(self, raw: Any) -> str | float:
        """The value in the canonical unit (float), or why not (str)."""
        try:
            v = float(raw)
        except (TypeError, ValueError):
            return f"{self.indicator}: not a number {raw!r}"
        if not math.isfinite(v):
            return f"{self.indicator}: not a finite number"
        if self.factor != 1.0:
            v *= self.factor
        if not self.lo <= v <= self.hi:
            return (
                f"{self.indicator}: {v:g} {self.unit} outside "
                f"[{self.lo:g}, {self.hi:g}]"
            )
        return v


def _readings(
    header: list[str],
    rows: Iterable[tuple[int, Record]],
    norm: _Normaliser,
    report: ObservationIngestReport,
) -> Iterator[tuple[int, str, bool]]:
    """(row, COPY line or reason, ok) for every reading in the rows."""
    pos = {h: i for i, h in enumerate(header)}
    station_col = _find(header, STATION_ALIASES)
    time_col = _find(header, TIME_ALIASES)
    ind_col = _find(header, INDICATOR_ALIASES)
    value_col = _find(header, VALUE_ALIASES)
    unit_col = _find(header, UNIT_ALIASES)
    if station_col is None or time_col is None:
        raise IngestError(f"no station or time column in {header!r}")
    si, ti = pos[station_col], pos[time_col]
    if ind_col and value_col:
        report.layout = "long"
        ii, vi = pos[ind_col], pos[value_col]
        ui = pos[unit_col] if unit_col else None
        columns: dict[tuple[str, Any], _Column | None] = {}
        for row, rec in rows:
            if isinstance(rec, str):
                yield row, rec, False
                continue
            raw_ind, unit = rec[ii], (rec[ui] if ui is not None else None)
            col = columns.get((raw_ind, unit), False)
            if col is False:
                ind = _INDICATOR_BY_ALIAS.get(_norm(str(raw_ind))) if raw_ind else None
                col = _Column(ind, unit) if ind else None
                columns[(raw_ind, unit)] = col
            if col is None:
                yield row, f"unknown indicator {raw_ind!r}", False
                continue
            if col.factor is None:
                yield (
                    row,
                    (
                        f"{col.indicator}: unit {unit!r} not one of "
                        f"{sorted(INDICATORS[col.indicator]['units'])}"
                    ),
                    False,
                )
                continue
            sample = norm.sample(rec[si], rec[ti])
            if isinstance(sample, str):
                yield row, sample, False
                continue
            v = col.value(rec[vi])
            if isinstance(v, str):
                yield row, v, False
                continue
            yield (
                row,
                f"{sample[0]}\t{sample[1]}\t{col.indicator}\t{v!r}\t{col.unit}",
                True,
            )
        return
    wide = [
        (pos[h], _wide_column(h)) for h in header if h not in (station_col, time_col)
    ]
    wide = [(i, _Column(*w)) for i, w in wide if w is not None]
    if not wide:
        raise IngestError(
            f"neither an indicator/value pair nor indicator columns in {header!r}"
        )
    report.layout = "wide"
    report.notes.append(
        "wide layout: "
        + ", ".join(f"{header[i]} -> {c.indicator} ({c.unit})" for i, c in wide)
    )
    for row, rec in rows:
        if isinstance(rec, str):
            yield row, rec, False
            continue
        sample = norm.sample(rec[si], rec[ti])
        if isinstance(sample, str):
            yield row, sample, False
            continue
        prefix = f"{sample[0]}\t{sample[1]}\t"
        for i, col in wide:
            raw = rec[i]
            if raw is None or raw == "" or (isinstance(raw, str) and not raw.strip()):
                continue  # not measured in this sample
            v = col.value(raw)
            if isinstance(v, str):
                yield row, v, False
            else:
                yield row, f"{prefix}{col.indicator}\t{v!r}\t{col.unit}", True


def _move_chunk(
    cur, buf: io.StringIO, load_id: int, update: bool, counts: list[int]
) -> None:
    """COPY one chunk into staging and merge it into ``water_observations``
    and its wide form ``water_samples`` (same transaction).

    With ``update`` a key repeated inside the chunk keeps its last reading
    (DISTINCT ON over COPY order: DO UPDATE may not touch a row twice in one
    command); a key repeated across chunks is inserted, then updated. Without
    it, DO NOTHING keeps the first reading of a key, stored or in the file.
    """
    buf.seek(0)
    cur.copy_expert("COPY water_obs_staging FROM STDIN", buf)
    if update:
        cur.execute(
            """
            WITH moved AS (
                INSERT INTO water_observations AS o
                    (station_code, observed_at, indicator, value, unit, load_id)
                SELECT DISTINCT ON (station_code, observed_at, indicator)
                       station_code, observed_at, indicator, value, unit, %s
                FROM water_obs_staging
                ORDER BY station_code, observed_at, indicator, ctid DESC
                ON CONFLICT (station_code, observed_at, indicator) DO UPDATE
                SET value = EXCLUDED.value, unit = EXCLUDED.unit,
                    load_id = EXCLUDED.load_id
                WHERE o.value IS DISTINCT FROM EXCLUDED.value
                RETURNING (xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted),
                   count(*) FILTER (WHERE NOT inserted)
            FROM moved
            """,
            (load_id,),
        )
        ins, upd = cur.fetchone()
    else:
        # NOTE: ON CONFLICT is ~60 % of the database time of a load (measured
        # on 1.56 M new readings: 13 s with it, 5 s for a plain INSERT; an
        # anti-join pre-filter helps re-loads only). A plain-INSERT fast path
        # with a savepoint fallback on unique violation would need the chunk
        # deduplicated first; not done yet.
        cur.execute(
            """
            INSERT INTO water_observations
                (station_code, observed_at, indicator, value, unit, load_id)
            SELECT station_code, observed_at, indicator, value, unit, %s
            FROM water_obs_staging
            ON CONFLICT (station_code, observed_at, indicator) DO NOTHING
            """,
            (load_id,),
        )
        ins, upd = cur.rowcount, 0
    cur.execute(_samples_merge_sql(update))
    cur.execute("TRUNCATE water_obs_staging")
    counts[0] += int(ins)
    counts[1] += int(upd)


def _samples_merge_sql(update: bool) -> str:
    """Upsert of the chunk's (station, time) rows into ``water_samples``.

    Mirrors what the merge into ``water_observations`` kept: with ``update``
    the last reading of a key in the chunk wins and replaces the stored one;
    without it the first reading in the chunk is inserted and a stored value
    is kept. An indicator absent from the chunk leaves the stored one as is; a
    sample that would not change is not rewritten (a re-load of a file).
    """
    cols = ", ".join(f'"{k}"' for k in PIVOT_INDICATORS)
    aggs = ", ".join(
        f"max(value) FILTER (WHERE indicator = '{k}')" for k in PIVOT_INDICATORS
    )
    new, old = ("EXCLUDED", "w") if update else ("w", "EXCLUDED")
    sets = ", ".join(
        f'"{k}" = coalesce({new}."{k}", {old}."{k}")' for k in PIVOT_INDICATORS
    )
    merged = ", ".join(f'coalesce({new}."{k}", {old}."{k}")' for k in PIVOT_INDICATORS)
    stored = ", ".join(f'w."{k}"' for k in PIVOT_INDICATORS)
    order = "DESC" if update else "ASC"
    return f"""
        INSERT INTO water_samples AS w (station_code, observed_at, {cols})
        SELECT station_code, observed_at, {aggs}
        FROM (SELECT DISTINCT ON (station_code, observed_at, indicator)
                     station_code, observed_at, indicator, value
              FROM water_obs_staging
              ORDER BY station_code, observed_at, indicator, ctid {order}) k
        GROUP BY station_code, observed_at
        ON CONFLICT (station_code, observed_at) DO UPDATE SET {sets}
        WHERE ({merged}) IS DISTINCT FROM ({stored})
        """


STAGING_DDL = """
CREATE TEMP TABLE water_obs_staging (
    station_code text, observed_at timestamptz, indicator text,
    value double precision, unit text
) ON COMMIT DROP
"""


def known_stations(engine: Engine) -> set[str] | None:
    """Station codes of the monitoring-stations layer; None when it is empty."""
    with engine.connect() as conn:
        codes = {
            r[0]
            for r in conn.execute(
                text(
                    "SELECT code FROM layer_monitoring_stations WHERE code IS NOT NULL"
                )
            )
        }
    return codes or None


def load_observations(
    engine: Engine,
    path: Path | str,
    *,
    source: str | None = None,
    update: bool = False,
    strict: bool = False,
    check_stations: bool = True,
    default_tz: dt.tzinfo | None = None,
    chunk_size: int = 500_000,
    max_issues: int = 10_000,
) -> ObservationIngestReport:
    """Load readings from a CSV / JSON file into ``water_observations``.

    Parameters
    ----------
    engine
        Database to load into.
    path
        ``.csv`` / ``.tsv`` / ``.json`` / ``.jsonl`` file, long or wide layout.
    source
        Recorded with each reading (default: the file name).
    update
        Replace the stored value of a repeated (station, time, indicator);
        by default the stored reading is kept and the new one counted as a
        duplicate.
    strict
        Commit nothing when any row is rejected (raises StrictIngestFailed).
    check_stations
        Reject readings of stations missing from ``monitoring_stations`` (only
        when that layer has stations).
    default_tz
        Zone of times given without one (default China Standard Time, UTC+8).
    chunk_size
        Readings per COPY chunk.
    max_issues
        Bad rows listed individually in the report (all are counted).
    """
    path = Path(path)
    started = time.perf_counter()
    report = ObservationIngestReport(origin=path.name)
    header, rows = rows_from_file(path)
    if not header:
        report.notes.append("empty file")
        return report
    stations = known_stations(engine) if check_stations else None
    if check_stations and stations is None:
        report.notes.append("monitoring_stations is empty: station codes not checked")
    norm = _Normaliser(default_tz or dt.timezone(dt.timedelta(hours=8)), stations)
    src = source or path.name
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "INSERT INTO water_observation_loads (source, origin) VALUES (%s, %s) "
            "RETURNING id",
            (src, str(path)),
        )
        load_id = report.load_id = cur.fetchone()[0]
        cur.execute(STAGING_DDL)
        # chunks move in a worker thread (COPY to staging, then INSERT ... ON
        # CONFLICT, then empty the staging table) while the next chunk is
        # parsed: psycopg2 releases the GIL during COPY and statements.
        counts = [0, 0]
        mover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="obs-copy")
        moving = None
        buf = io.StringIO()
        pending = 0
        try:
            for row, out, ok in _readings(header, rows, norm, report):
                report.read += 1
                if not ok:
                    report.rejected += 1
                    if len(report.issues) < max_issues:
                        report.issues.append(Issue(row, None, "rejected", out))
                    continue
                buf.write(out)
                buf.write("\n")
                pending += 1
                if pending >= chunk_size:
                    if moving is not None:
                        moving.result()
                    moving = mover.submit(
                        _move_chunk, cur, buf, load_id, update, counts
                    )
                    report.valid += pending
                    buf, pending = io.StringIO(), 0
            if moving is not None:
                moving.result()
            if pending:
                _move_chunk(cur, buf, load_id, update, counts)
                report.valid += pending
        finally:
            mover.shutdown(wait=True)
        if strict and report.rejected:
            raw.rollback()
            report.seconds = time.perf_counter() - started
            raise StrictIngestFailed(
                f"{report.rejected} of {report.read} readings rejected; nothing loaded"
            )
        inserted, updated = counts
        report.inserted, report.updated = int(inserted), int(updated)
        report.duplicates = report.valid - report.inserted - report.updated
        report.seconds = time.perf_counter() - started
        cur.execute(
            "UPDATE water_observation_loads SET report = %s::jsonb WHERE id = %s",
            (
                json.dumps(
                    {k: v for k, v in report.as_dict().items() if k != "issues"},
                    default=str,
                ),
                load_id,
            ),
        )
        raw.commit()
    except StrictIngestFailed:
        raise
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    report.committed = True
    report.seconds = time.perf_counter() - started
    log.info(
        "observations loaded",
        extra={
            "origin": report.origin,
            "read": report.read,
            "inserted": report.inserted,
            "updated": report.updated,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "seconds": round(report.seconds, 2),
        },
    )
    return report


def query_station(
    engine: Engine,
    station: str,
    start: dt.datetime,
    end: dt.datetime,
    indicators: Iterable[str] | None = None,
) -> list[tuple]:
    """Readings of one station in ``[start, end)``, by time then indicator."""
    sql = (
        "SELECT observed_at, indicator, value, unit FROM water_observations "
        "WHERE station_code = :s AND observed_at >= :a AND observed_at < :b"
    )
    params: dict[str, Any] = {"s": station, "a": start, "b": end}
    if indicators is not None:
        sql += " AND indicator = ANY(:i)"
        params["i"] = list(indicators)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql + " ORDER BY 1, 2"), params)]
