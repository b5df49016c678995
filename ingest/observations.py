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

import csv
import datetime as dt
import io
import json
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gis_server.errors import IngestError, StrictIngestFailed
from ingest.loader import Issue

log = logging.getLogger("gis_server.ingest.observations")

#: Canonical indicators: unit, accepted units with their factor to the canonical
#: unit, allowed range, and source names matched to them (compared after
#: lower-casing and dropping ``-``, ``_`` and spaces).
INDICATORS: dict[str, dict[str, Any]] = {
    "transparency": {"unit": "cm", "units": {"cm": 1.0, "m": 100.0, "mm": 0.1},
                     "range": (0.0, 1000.0), "aliases": ("transparency", "sd", "透明度")},
    "do": {"unit": "mg/L", "units": {"mg/l": 1.0}, "range": (0.0, 30.0),
           "aliases": ("do", "dissolvedoxygen", "溶解氧")},
    "orp": {"unit": "mV", "units": {"mv": 1.0, "v": 1000.0}, "range": (-1000.0, 1000.0),
            "aliases": ("orp", "eh", "redox", "氧化还原电位")},
    "nh3n": {"unit": "mg/L", "units": {"mg/l": 1.0}, "range": (0.0, 500.0),
             "aliases": ("nh3n", "nh3", "ammonia", "ammonianitrogen", "氨氮")},
    "cod": {"unit": "mg/L", "units": {"mg/l": 1.0}, "range": (0.0, 5000.0),
            "aliases": ("cod", "codcr", "化学需氧量")},
    "codmn": {"unit": "mg/L", "units": {"mg/l": 1.0}, "range": (0.0, 500.0),
              "aliases": ("codmn", "permanganateindex", "高锰酸盐指数")},
    "bod5": {"unit": "mg/L", "units": {"mg/l": 1.0}, "range": (0.0, 2000.0),
             "aliases": ("bod5", "bod", "五日生化需氧量")},
    "tp": {"unit": "mg/L", "units": {"mg/l": 1.0}, "range": (0.0, 100.0),
           "aliases": ("tp", "totalphosphorus", "总磷")},
    "turbidity": {"unit": "NTU", "units": {"ntu": 1.0}, "range": (0.0, 10000.0),
                  "aliases": ("turbidity", "浊度")},
    "ph": {"unit": "", "units": {"": 1.0, "ph": 1.0}, "range": (0.0, 14.0),
           "aliases": ("ph",)},
    "depth": {"unit": "cm", "units": {"cm": 1.0, "m": 100.0}, "range": (0.0, 10000.0),
              "aliases": ("depth", "waterdepth", "水深")},
}

STATION_ALIASES = ("station", "stationcode", "station_code", "code", "站点", "站点编码")
TIME_ALIASES = ("observedat", "time", "timestamp", "datetime", "date", "sampledat",
                "监测时间", "采样时间")
INDICATOR_ALIASES = ("indicator", "parameter", "variable", "指标", "监测指标")
VALUE_ALIASES = ("value", "reading", "值", "监测值")
UNIT_ALIASES = ("unit", "units", "单位")


def _norm(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in "-_ :")


_INDICATOR_BY_ALIAS = {_norm(a): k for k, spec in INDICATORS.items() for a in spec["aliases"]}


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


def _rows_from_file(path: Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """Header and (row number, record) pairs of a CSV or JSON file."""
    suffix = path.suffix.lower()
    if suffix in {".csv", ".txt", ".tsv"}:
        fh = path.open(newline="", encoding="utf-8-sig")
        dialect = "excel-tab" if suffix == ".tsv" else "excel"
        reader = csv.reader(fh, dialect=dialect)
        try:
            header = next(reader)
        except StopIteration:
            fh.close()
            return [], iter(())

        def gen() -> Iterator[tuple[int, dict]]:
            with fh:
                for i, row in enumerate(reader, start=2):  # row 1 is the header
                    yield i, dict(zip(header, row, strict=False)) if len(row) == len(
                        header) else {"__bad__": f"{len(row)} fields, header has "
                                      f"{len(header)}"}

        return header, gen()
    if suffix in {".json", ".geojson"}:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IngestError(f"{path.name}: not readable JSON ({exc})") from exc
        if isinstance(data, dict):
            data = data.get("readings") or data.get("observations") or data.get("data")
        if not isinstance(data, list):
            raise IngestError(f"{path.name}: expected a list of readings")
        header: list[str] = []
        for rec in data[:1000]:
            if isinstance(rec, dict):
                header += [k for k in rec if k not in header]
        return header, ((i, rec if isinstance(rec, dict) else
                          {"__bad__": "not an object"}) for i, rec in enumerate(data, 1))
    if suffix in {".jsonl", ".ndjson"}:
        def gen_lines() -> Iterator[tuple[int, dict]]:
            with path.open(encoding="utf-8") as fh:
                for i, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            yield i, json.loads(line)
                        except ValueError as exc:
                            yield i, {"__bad__": f"bad JSON ({exc})"}
        first = next(gen_lines(), (0, {}))[1]
        return list(first), gen_lines()
    raise IngestError(f"{path.name}: unsupported observation format {suffix!r} "
                      "(use .csv, .tsv, .json or .jsonl)")


class _Normaliser:
    """Checks one reading and turns it into a COPY line (or a reason)."""

    def __init__(self, default_tz: dt.tzinfo, stations: set[str] | None) -> None:
        self.tz = default_tz
        self.stations = stations
        self._times: dict[str, str | None] = {}

    def time(self, raw: Any) -> str | None:
        key = str(raw).strip()
        hit = self._times.get(key, "")
        if hit != "":
            return hit
        try:
            t = dt.datetime.fromisoformat(key.replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=self.tz)
            out: str | None = t.isoformat()
        except ValueError:
            out = None
        if len(self._times) < 200_000:
            self._times[key] = out
        return out

    def reading(self, station: Any, when: Any, indicator: str | None, value: Any,
                unit: Any) -> tuple[str, str] | str:
        station = "" if station is None else str(station).strip()
        if not station:
            return "no station code"
        if self.stations is not None and station not in self.stations:
            return f"unknown station {station!r}"
        if when is None or str(when).strip() == "":
            return "no observation time"
        ts = self.time(when)
        if ts is None:
            return f"unreadable time {when!r}"
        if indicator is None:
            return "unknown indicator"
        spec = INDICATORS[indicator]
        try:
            v = float(value)
        except (TypeError, ValueError):
            return f"{indicator}: not a number {value!r}"
        if not math.isfinite(v):
            return f"{indicator}: not a finite number"
        u = "" if unit is None else _norm(str(unit))
        factor = spec["units"].get(u if u else _norm(spec["unit"]))
        if factor is None:
            return f"{indicator}: unit {unit!r} not one of {sorted(spec['units'])}"
        v *= factor
        lo, hi = spec["range"]
        if not lo <= v <= hi:
            return f"{indicator}: {v:g} {spec['unit']} outside [{lo:g}, {hi:g}]"
        return station, f"{station}\t{ts}\t{indicator}\t{v!r}\t{spec['unit']}"


def _readings(header: list[str], rows: Iterable[tuple[int, dict]], norm: _Normaliser,
              report: ObservationIngestReport) -> Iterator[tuple[int, Any]]:
    """(row, COPY line or reason) for every reading in the rows."""
    station_col = _find(header, STATION_ALIASES)
    time_col = _find(header, TIME_ALIASES)
    ind_col = _find(header, INDICATOR_ALIASES)
    value_col = _find(header, VALUE_ALIASES)
    unit_col = _find(header, UNIT_ALIASES)
    if station_col is None or time_col is None:
        raise IngestError(f"no station or time column in {header!r}")
    if ind_col and value_col:
        report.layout = "long"
        for row, rec in rows:
            if "__bad__" in rec:
                yield row, rec["__bad__"]
                continue
            raw_ind = rec.get(ind_col)
            ind = _INDICATOR_BY_ALIAS.get(_norm(str(raw_ind))) if raw_ind else None
            if ind is None:
                yield row, f"unknown indicator {raw_ind!r}"
                continue
            yield row, norm.reading(rec.get(station_col), rec.get(time_col), ind,
                                    rec.get(value_col),
                                    rec.get(unit_col) if unit_col else None)
        return
    wide = {h: _wide_column(h) for h in header if h not in (station_col, time_col)}
    wide = {h: v for h, v in wide.items() if v is not None}
    if not wide:
        raise IngestError("neither an indicator/value pair nor indicator columns "
                          f"in {header!r}")
    report.layout = "wide"
    report.notes.append("wide layout: " + ", ".join(f"{h} -> {i} ({u})"
                                                    for h, (i, u) in wide.items()))
    for row, rec in rows:
        if "__bad__" in rec:
            yield row, rec["__bad__"]
            continue
        for col, (ind, unit) in wide.items():
            value = rec.get(col)
            if value is None or (isinstance(value, str) and value.strip() == ""):
                continue  # not measured in this sample
            yield row, norm.reading(rec.get(station_col), rec.get(time_col), ind,
                                    value, unit)


STAGING_DDL = """
CREATE TEMP TABLE water_obs_staging (
    station_code text, observed_at timestamptz, indicator text,
    value double precision, unit text
) ON COMMIT DROP
"""


def known_stations(engine: Engine) -> set[str] | None:
    """Station codes of the monitoring-stations layer; None when it is empty."""
    with engine.connect() as conn:
        codes = {r[0] for r in conn.execute(text(
            "SELECT code FROM layer_monitoring_stations WHERE code IS NOT NULL"))}
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
    header, rows = _rows_from_file(path)
    if not header:
        report.notes.append("empty file")
        return report
    stations = known_stations(engine) if check_stations else None
    if check_stations and stations is None:
        report.notes.append("monitoring_stations is empty: station codes not checked")
    norm = _Normaliser(default_tz or dt.timezone(dt.timedelta(hours=8)), stations)
    src = (source or path.name).replace("\t", " ").replace("\n", " ")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(STAGING_DDL)
        buf = io.StringIO()
        pending = 0
        for row, out in _readings(header, rows, norm, report):
            report.read += 1
            if isinstance(out, str):
                report.rejected += 1
                if len(report.issues) < max_issues:
                    report.issues.append(Issue(row, None, "rejected", out))
                continue
            buf.write(out[1])
            buf.write("\n")
            pending += 1
            if pending >= chunk_size:
                buf.seek(0)
                cur.copy_expert("COPY water_obs_staging FROM STDIN", buf)
                report.valid += pending
                buf, pending = io.StringIO(), 0
        if pending:
            buf.seek(0)
            cur.copy_expert("COPY water_obs_staging FROM STDIN", buf)
            report.valid += pending
        if strict and report.rejected:
            raw.rollback()
            report.seconds = time.perf_counter() - started
            raise StrictIngestFailed(
                f"{report.rejected} of {report.read} readings rejected; nothing loaded"
            )
        conflict = (
            "DO UPDATE SET value = EXCLUDED.value, unit = EXCLUDED.unit, "
            "source = EXCLUDED.source WHERE water_observations.value "
            "IS DISTINCT FROM EXCLUDED.value"
            if update else "DO NOTHING"
        )
        # DISTINCT ON keeps the last reading of a key repeated inside the file
        # (ctid order is COPY order within one transaction's staging table).
        cur.execute(
            f"""
            WITH moved AS (
                INSERT INTO water_observations AS o
                    (station_code, observed_at, indicator, value, unit, source)
                SELECT DISTINCT ON (station_code, observed_at, indicator)
                       station_code, observed_at, indicator, value, unit, %s
                FROM water_obs_staging
                ORDER BY station_code, observed_at, indicator, ctid DESC
                ON CONFLICT (station_code, observed_at, indicator) {conflict}
                RETURNING (xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
            FROM moved
            """,
            (src,),
        )
        inserted, updated = cur.fetchone()
        raw.commit()
    except StrictIngestFailed:
        raise
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    report.inserted, report.updated = int(inserted), int(updated)
    report.duplicates = report.valid - report.inserted - report.updated
    report.committed = True
    report.seconds = time.perf_counter() - started
    log.info("observations loaded", extra={
        "origin": report.origin, "read": report.read, "inserted": report.inserted,
        "updated": report.updated, "duplicates": report.duplicates,
        "rejected": report.rejected, "seconds": round(report.seconds, 2)})
    return report


def query_station(engine: Engine, station: str, start: dt.datetime, end: dt.datetime,
                  indicators: Iterable[str] | None = None) -> list[tuple]:
    """Readings of one station in ``[start, end)``, by time then indicator."""
    sql = ("SELECT observed_at, indicator, value, unit FROM water_observations "
           "WHERE station_code = :s AND observed_at >= :a AND observed_at < :b")
    params: dict[str, Any] = {"s": station, "a": start, "b": end}
    if indicators is not None:
        sql += " AND indicator = ANY(:i)"
        params["i"] = list(indicators)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql + " ORDER BY 1, 2"), params)]
