"""The water models against the database: features, training, scoring, patrols."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from gis_server.audit import Actor
from gis_server.audit import record as record_audit
from gis_server.errors import InvalidParameter, NotFound
from models.water import model as relapse
from models.water import patrols as pt
from models.water.features import FEATURES, SegmentState, segment_state
from models.water.network import Network, network_from_database
from models.water.settings import WaterSettings
from models.water.simulate import Readings, SimulatedCity
from models.water.standards import GRADE_NAMES
from models.water.store import PIVOT_INDICATORS

log = logging.getLogger("gis_server.models.water")

GB_NAMES = ("I", "II", "III", "IV", "V", "劣V")


def read_readings(
    engine: Engine, net: Network, now: dt.datetime, lookback_days: int
) -> Readings:
    """Samples of the network's stations in the look-back window, in wide form.

    Reads the pre-pivoted ``water_samples`` (one row per station and time,
    kept current by the observation ingest) and streams it as binary COPY of
    fixed-width float8 fields (missing = NaN), which numpy reads without a
    Python loop.
    """
    start = now - dt.timedelta(days=lookback_days)
    cols = ", ".join(f"coalesce(w.\"{k}\", 'NaN')" for k in PIVOT_INDICATORS)
    # the station list is small: number it, then range-scan each station's
    # window along the primary key
    sql = (
        f"COPY (SELECT s.idx::float8, extract(epoch FROM w.observed_at)::float8, "
        f"{cols} FROM unnest(%s::text[]) WITH ORDINALITY AS s(code, idx) "
        "JOIN water_samples w ON w.station_code = s.code "
        "WHERE w.observed_at >= %s AND w.observed_at < %s) "
        "TO STDOUT WITH (FORMAT binary)"
    )
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        buf = io.BytesIO()
        query = cur.mogrify(sql, (list(net.station_codes), start, now)).decode()
        cur.copy_expert(query, buf)
    finally:
        raw.close()
    table = _binary_copy_floats(buf.getvalue(), 2 + len(PIVOT_INDICATORS))
    t0 = start.timestamp()
    return Readings(
        station=table[:, 0].astype(np.int64) - 1,  # ordinality is 1-based
        day=(table[:, 1] - t0) / 86400,
        values={k: table[:, 2 + j] for j, k in enumerate(PIVOT_INDICATORS)},
        start=start,
    )


def _binary_copy_floats(data: bytes, fields: int) -> np.ndarray:
    """Rows of a binary COPY whose fields are all non-null float8, as an array.

    Layout (PostgreSQL docs, COPY binary format): 11-byte signature, int32
    flags, int32 extension length (+ extension); per row int16 field count and
    per field int32 length + 8 bytes; an int16 -1 trailer.
    """
    ext = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext : len(data) - 2]
    row = np.dtype(
        [("n", ">i2")]
        + [item for i in range(fields) for item in ((f"l{i}", ">i4"), (f"v{i}", ">f8"))]
    )
    if len(body) % row.itemsize:
        raise ValueError("unexpected binary COPY layout")
    rec = np.frombuffer(body, dtype=row)
    if len(rec) and (np.any(rec["n"] != fields) or np.any(rec["l0"] != 8)):
        raise ValueError("unexpected binary COPY layout")
    return (
        np.column_stack([rec[f"v{i}"].astype(float) for i in range(fields)])
        if len(rec)
        else np.zeros((0, fields))
    )


def compute_state(
    engine: Engine,
    settings: WaterSettings,
    now: dt.datetime,
    *,
    impervious: np.ndarray | None = None,
    rain_totals: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Network, SegmentState]:
    """Network and segment state (features, grades) from the database at ``now``."""
    net = network_from_database(engine)
    if len(net) == 0:
        raise NotFound("no river segments with a code are stored (layer rivers)")
    readings = read_readings(engine, net, now, settings.lookback_days)
    if rain_totals is None and np.isfinite(readings.values["rainfall"]).any():
        rain_totals = _rain_from_gauges(net, readings, settings.lookback_days)
    state = segment_state(
        net,
        readings,
        settings.lookback_days,
        settings,
        rain_totals=rain_totals,
        impervious=impervious,
    )
    return net, state


def _rain_from_gauges(net: Network, r: Readings, now_day: float):
    """Rain of the last 7 / 30 days per segment from rain-gauge readings.

    Segments without a gauge take the city median of gauged segments.
    """
    out = []
    for days in (7, 30):
        m = (r.day >= now_day - days) & np.isfinite(r.values["rainfall"])
        per_station = np.bincount(
            r.station[m], r.values["rainfall"][m], len(net.station_codes)
        )
        gauged = np.bincount(r.station[m], minlength=len(net.station_codes)) > 0
        seg = np.full(len(net), np.nan)
        np.fmax.at(seg, net.station_segment[gauged], per_station[gauged])
        seg[np.isnan(seg)] = np.nanmedian(seg) if np.isfinite(seg).any() else np.nan
        out.append(seg)
    return out[0], out[1]


def labels_from_patrols(
    engine: Engine, net: Network, now: dt.datetime, window_days: int
) -> np.ndarray:
    """Inspection labels: the latest judgement of each segment in the window."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("""
            SELECT DISTINCT ON (segment_code) segment_code, black_odorous
            FROM water_patrol_records
            WHERE black_odorous IS NOT NULL AND started_at >= :a AND started_at <= :b
            ORDER BY segment_code, started_at DESC"""),
            {
                "a": now - dt.timedelta(days=window_days),
                "b": now,
            },
        ).all()
    labels = np.full(len(net), -1, dtype=np.int64)
    idx = net.index
    for code, black in rows:
        if code in idx:
            labels[idx[code]] = int(bool(black))
    return labels


def raster_inputs(
    engine: Engine,
    settings: WaterSettings,
    *,
    impervious: Path | None = None,
    rain_7d: Path | None = None,
    rain_30d: Path | None = None,
) -> dict:
    """Zonal means of the given rasters per river buffer, as ``compute_state`` args."""
    if not (impervious or rain_7d or rain_30d):
        return {}
    from models.water.rasters import river_buffers, zonal_mean

    net = network_from_database(engine)
    zones = river_buffers(engine, net.codes, settings.buffer_m)
    out: dict = {}
    if impervious:
        out["impervious"] = zonal_mean(impervious, zones)
    if rain_7d or rain_30d:
        nan = np.full(len(net), np.nan)
        out["rain_totals"] = (
            zonal_mean(rain_7d, zones) if rain_7d else nan,
            zonal_mean(rain_30d, zones) if rain_30d else nan,
        )
    return out


def train_from_database(
    engine: Engine,
    settings: WaterSettings,
    now: dt.datetime,
    *,
    seed: int = 0,
    **rasters,
) -> tuple[relapse.RelapseModel, Path]:
    """Train on the stored data and inspection labels; save and register."""
    net, state = compute_state(engine, settings, now, **rasters)
    labels = labels_from_patrols(engine, net, now, settings.recent_days)
    model = relapse.train(state.features, labels, settings, seed=seed)
    path = relapse.save(model, settings.model_dir)
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO water_models
                (version, path, features, params, labelled, segments)
            VALUES (:v, :p, CAST(:f AS jsonb), CAST(:pa AS jsonb), :l, :s)"""),
            {
                "v": model.version,
                "p": str(path),
                "f": json.dumps(model.feature_names),
                "pa": json.dumps(model.params),
                "l": model.labelled,
                "s": model.segments,
            },
        )
    return model, path


def write_warnings(
    engine: Engine,
    net: Network,
    state: SegmentState,
    probability: np.ndarray,
    factors: list[list[dict]],
    model_version: str,
    settings: WaterSettings,
    now: dt.datetime,
) -> dict[str, int]:
    """Replace the water_quality_warnings layer; return counts per level."""
    levels, why = pt.levels_array(
        probability, state.grade, state.early_warning, settings
    )
    monitored = state.features[:, FEATURES.index("has_station")] > 0
    rows = []
    for i, code in enumerate(net.codes):
        rows.append(
            {
                "code": code,
                "level": levels[i],
                "p": float(probability[i]),
                # no station, no grade (unknown, not "none")
                "grade": GRADE_NAMES[int(state.grade[i])] if monitored[i] else None,
                "gb": GB_NAMES[int(state.gb3838[i])] if state.gb3838[i] >= 0 else None,
                "reasons": json.dumps(why[i] + state.reasons[i], ensure_ascii=False),
                "factors": json.dumps(factors[i], ensure_ascii=False),
                "chief": net.chief_id[i],
            }
        )
    payload = json.dumps(rows, ensure_ascii=False)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_water_quality_warnings"))
        conn.execute(
            text("""
            INSERT INTO layer_water_quality_warnings
                (source, source_id, segment_code, level, probability, grade,
                 gb3838_class, reasons, model_version, top_factors, chief_id,
                 computed_at, geom)
            SELECT 'water-model', j.code, j.code, j.level, j.p, j.grade, j.gb,
                   j.reasons::jsonb, :v, j.factors::jsonb, j.chief, :now, r.geom
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS j(
                code text, level text, p float8, grade text, gb text, reasons text,
                factors text, chief text)
            JOIN (SELECT DISTINCT ON (code) code, geom FROM layer_rivers
                  WHERE code IS NOT NULL ORDER BY code, id) r ON r.code = j.code"""),
            {"rows": payload, "v": model_version, "now": now},
        )
    counts = {lv: levels.count(lv) for lv in pt.LEVELS}
    log.info("warnings written", extra={"model_version": model_version, **counts})
    return counts


def score_database(
    engine: Engine,
    settings: WaterSettings,
    now: dt.datetime,
    *,
    version: str | None = None,
    **rasters,
) -> dict[str, int]:
    """Score every segment with the saved model and write the warnings layer."""
    model = relapse.load(settings.model_dir, version)
    net, state = compute_state(engine, settings, now, **rasters)
    proba, factors = model.predict(state.features, top=settings.top_factors)
    return write_warnings(
        engine, net, state, proba, factors, model.version, settings, now
    )


def segment_chief(engine: Engine, segment_code: str) -> str | None:
    """The chief of river segment ``segment_code`` (None: no such segment,
    or one outside the caller's scope: the query runs under it)."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT chief_id FROM layer_rivers WHERE code = :c ORDER BY id LIMIT 1"
            ),
            {"c": segment_code},
        ).scalar()


def check_patrol(
    settings: WaterSettings,
    *,
    started_at: dt.datetime,
    duration_min: float,
    distance_km: float,
    now: dt.datetime | None = None,
) -> None:
    """Refuse a patrol record that cannot be true (see :func:`record_patrol`).

    >>> s = WaterSettings()
    >>> t = dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC)
    >>> check_patrol(s, started_at=t, duration_min=30, distance_km=2, now=t)
    >>> check_patrol(s, started_at=t, duration_min=-1, distance_km=2, now=t)
    Traceback (most recent call last):
    ...
    gis_server.errors.InvalidParameter: duration_min must be between 0 and 1440 min
    """
    now = now or dt.datetime.now(dt.UTC)
    if started_at.tzinfo is None:
        raise InvalidParameter("started_at needs a time zone (or an offset)")
    skew = dt.timedelta(minutes=settings.patrol_clock_skew_minutes)
    if started_at > now + skew:
        raise InvalidParameter(
            f"started_at {started_at.isoformat()} is in the future (more than "
            f"{settings.patrol_clock_skew_minutes:g} min after the server's "
            "clock): record a patrol once it has happened"
        )
    for name, value, limit, unit in (
        ("duration_min", duration_min, settings.patrol_max_minutes, "min"),
        ("distance_km", distance_km, settings.patrol_max_km, "km"),
    ):
        if not (math.isfinite(value) and 0 <= value <= limit):
            raise InvalidParameter(f"{name} must be between 0 and {limit:g} {unit}")


def record_patrol(
    engine: Engine,
    settings: WaterSettings,
    *,
    chief_id: str,
    segment_code: str,
    started_at: dt.datetime,
    duration_min: float,
    distance_km: float,
    black_odorous: bool | None = None,
    problems: str | None = None,
    actor: Actor | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Record a completed patrol; say whether it meets the 10 min / 1 km standard.

    Refuses (:class:`InvalidParameter`) a start later than now (beyond
    ``patrol_clock_skew_minutes``) and a duration or distance that is
    negative, not a number, or over ``patrol_max_minutes`` /
    ``patrol_max_km``. With ``actor`` the record is also written to the
    audit log (same transaction). Under a river chief's database role the
    row-level policy admits only their own id and segments.
    """
    check_patrol(
        settings,
        started_at=started_at,
        duration_min=duration_min,
        distance_km=distance_km,
        now=now,
    )
    meets = (
        duration_min >= settings.patrol_min_minutes
        and distance_km >= settings.patrol_min_km
    )
    with engine.begin() as conn:
        pid = conn.execute(
            text("""
            INSERT INTO water_patrol_records (chief_id, segment_code, started_at,
                duration_min, distance_km, black_odorous, problems, meets_standard)
            VALUES (:c, :s, :t, :d, :k, :b, :p, :m) RETURNING id"""),
            {
                "c": chief_id,
                "s": segment_code,
                "t": started_at,
                "d": duration_min,
                "k": distance_km,
                "b": black_odorous,
                "p": problems,
                "m": meets,
            },
        ).scalar()
        if actor is not None:
            record_audit(
                conn,
                actor,
                "patrol.record",
                "patrol",
                str(pid),
                after={
                    "chief_id": chief_id,
                    "segment_code": segment_code,
                    "started_at": started_at.isoformat(),
                    "duration_min": duration_min,
                    "distance_km": distance_km,
                    "black_odorous": black_odorous,
                    "problems": problems,
                    "meets_standard": meets,
                },
            )
    return {"id": pid, "meets_standard": meets}


def plan_patrols(
    engine: Engine,
    settings: WaterSettings,
    now: dt.datetime,
    *,
    period_start: dt.date,
    period_end: dt.date,
) -> list[pt.PatrolTask]:
    """Rebuild the patrol_tasks layer from the warnings and the patrol records.

    Segments whose patrol is overdue get (at least) the overdue warning level in
    water_quality_warnings, with the reason.
    """
    with engine.connect() as conn:
        segs = conn.execute(
            text("""
            SELECT r.code, r.chief_id, r.chief_level, coalesce(w.level, 'none'),
                   coalesce(w.probability, 0), coalesce(w.reasons, '[]'::jsonb)
            FROM (SELECT DISTINCT ON (code) code, chief_id, chief_level
                  FROM layer_rivers WHERE code IS NOT NULL ORDER BY code, id) r
            LEFT JOIN layer_water_quality_warnings w ON w.segment_code = r.code
            WHERE r.chief_id IS NOT NULL""")
        ).all()
        recs = conn.execute(
            text("""
            SELECT chief_id, segment_code, started_at FROM water_patrol_records
            WHERE meets_standard AND started_at <= :now"""),
            {"now": now},
        ).all()
    done: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for chief, seg, t in recs:
        done[(chief, seg)].append(t)
    segments = [
        {
            "code": c,
            "chief_id": ch,
            "chief_level": lv,
            "level": level,
            "probability": p,
            "reasons": [r for r in reasons if "patrol" not in r],
        }
        for c, ch, lv, level, p, reasons in segs
    ]
    tasks = pt.plan_tasks(
        segments,
        done,
        now=now,
        period_start=period_start,
        period_end=period_end,
        settings=settings,
    )
    rows = [
        {
            "chief": t.chief_id,
            "clevel": t.chief_level,
            "code": t.segment_code,
            "p0": t.period_start.isoformat(),
            "p1": t.period_end.isoformat(),
            "level": t.level,
            "interval": t.interval_days,
            "req": t.patrols_required,
            "done": t.patrols_done,
            "rank": t.urgency_rank,
            "reason": t.reason,
            "last": t.last_patrol_at.isoformat() if t.last_patrol_at else None,
            "due": t.due_at.isoformat(),
            "overdue": t.overdue,
            "late": t.overdue_days,
        }
        for t in tasks
    ]
    overdue = pt.overdue_warnings(tasks, settings)
    lv = settings.overdue_patrol_level
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_patrol_tasks"))
        conn.execute(
            text("""
            INSERT INTO layer_patrol_tasks
                (source, source_id, chief_id, chief_level, segment_code, period_start,
                 period_end, level, interval_days, patrols_required, patrols_done,
                 urgency_rank, reason, last_patrol_at, due_at, overdue, overdue_days,
                 geom)
            SELECT 'patrol-plan', j.chief || ':' || j.code || ':' || j.p0, j.chief,
                   j.clevel, j.code, j.p0::date, j.p1::date, j.level, j.interval, j.req,
                   j.done, j.rank, j.reason, j.last::timestamptz, j.due::timestamptz,
                   j.overdue, j.late, r.geom
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS j(
                chief text, clevel text, code text, p0 text, p1 text, level text,
                interval float8, req int, done int, rank int, reason text, last text,
                due text, overdue bool, late float8)
            JOIN (SELECT DISTINCT ON (code) code, geom FROM layer_rivers
                  WHERE code IS NOT NULL ORDER BY code, id) r ON r.code = j.code"""),
            {"rows": json.dumps(rows, ensure_ascii=False)},
        )
        if overdue:
            # an overdue patrol is itself a warning: raise the level, say why
            conn.execute(
                text("""
                UPDATE layer_water_quality_warnings w
                SET level = CASE WHEN array_position(ARRAY['none','yellow','orange',
                                     'red'], w.level) < array_position(ARRAY['none',
                                     'yellow','orange','red'], :lv)
                                 THEN :lv ELSE w.level END,
                    reasons = coalesce(w.reasons, '[]'::jsonb) || to_jsonb(o.reason)
                FROM jsonb_each_text(CAST(:o AS jsonb)) AS o(code, reason)
                WHERE w.segment_code = o.code"""),
                {"lv": lv, "o": json.dumps(overdue, ensure_ascii=False)},
            )
            # segments never scored get a warning row of their own
            conn.execute(
                text("""
                INSERT INTO layer_water_quality_warnings
                    (source, source_id, segment_code, level, reasons, chief_id,
                     computed_at, geom)
                SELECT 'patrol-plan', o.code, o.code, :lv, jsonb_build_array(o.reason),
                       r.chief_id, :now, r.geom
                FROM jsonb_each_text(CAST(:o AS jsonb)) AS o(code, reason)
                JOIN (SELECT DISTINCT ON (code) code, geom, chief_id FROM layer_rivers
                      WHERE code IS NOT NULL ORDER BY code, id) r ON r.code = o.code
                WHERE NOT EXISTS (SELECT 1 FROM layer_water_quality_warnings w
                                  WHERE w.segment_code = o.code)"""),
                {"lv": lv, "now": now, "o": json.dumps(overdue, ensure_ascii=False)},
            )
    log.info(
        "patrol tasks planned", extra={"tasks": len(tasks), "overdue": len(overdue)}
    )
    return tasks


def tasks_for_chief(engine: Engine, chief_id: str) -> list[dict]:
    """A chief's current tasks, most urgent first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text("""
            SELECT urgency_rank, segment_code, level, interval_days, patrols_required,
                   patrols_done, due_at, overdue, overdue_days, reason,
                   period_start, period_end
            FROM layer_patrol_tasks WHERE chief_id = :c ORDER BY urgency_rank"""),
                {"c": chief_id},
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def write_simulation(
    engine: Engine, city: SimulatedCity, *, label_fraction: float, seed: int = 0
) -> dict[str, int]:
    """Store a simulated city's readings and inspection labels (synthetic data).

    Readings go through the observation ingest (a wide CSV in a temporary
    folder); a ``label_fraction`` of segments gets an inspection patrol record
    in the last recent window, judged with the simulator's held-back truth.
    """
    import tempfile

    from ingest.observations import load_observations
    from models.water.simulate import label_segments, write_wide_csv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "simulated_readings.csv"
        write_wide_csv(city, path)
        report = load_observations(
            engine, path, source=f"simulation:{city.seed}", check_stations=False
        )
    labels = label_segments(city, label_fraction, seed=seed)
    net = city.network
    rng = np.random.default_rng(seed)
    rows = []
    for i in np.flatnonzero(labels >= 0):
        if not net.chief_id[i]:
            continue
        t = city.now - dt.timedelta(days=float(rng.uniform(0.5, 5)))
        rows.append(
            {
                "c": net.chief_id[i],
                "s": net.codes[i],
                "t": t,
                "d": float(rng.uniform(12, 40)),
                "k": float(rng.uniform(1, 3)),
                "b": bool(labels[i]),
            }
        )
    with engine.begin() as conn:
        if rows:
            conn.execute(
                text("""
                INSERT INTO water_patrol_records (chief_id, segment_code, started_at,
                    duration_min, distance_km, black_odorous, meets_standard)
                VALUES (:c, :s, :t, :d, :k, :b, true)"""),
                rows,
            )
    return {"readings": report.inserted, "labels": len(rows)}
