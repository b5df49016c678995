"""Observation ingest: bad rows reported, duplicates counted once."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text

from gis_server.errors import StrictIngestFailed
from ingest.observations import load_observations, query_station
from models.water.store import PIVOT_INDICATORS


@pytest.fixture
def clean(engine):
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM water_observations WHERE station_code LIKE 'T%'")
        )
        conn.execute(text("DELETE FROM water_samples WHERE station_code LIKE 'T%'"))
    yield


def _assert_samples_match_pivot(engine):
    """water_samples equals the GROUP BY pivot of water_observations (T stations)."""
    cols = ", ".join(f'"{k}"' for k in PIVOT_INDICATORS)
    aggs = ", ".join(
        f"max(value) FILTER (WHERE indicator = '{k}')" for k in PIVOT_INDICATORS
    )
    with engine.connect() as conn:
        pivot = conn.execute(
            text(
                f"SELECT station_code, observed_at, {aggs} FROM water_observations "
                "WHERE station_code LIKE 'T%' GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ).all()
        samples = conn.execute(
            text(
                f"SELECT station_code, observed_at, {cols} FROM water_samples "
                "WHERE station_code LIKE 'T%' ORDER BY 1, 2"
            )
        ).all()
    assert pivot, "no readings stored"
    assert [tuple(r) for r in samples] == [tuple(r) for r in pivot]


def _count(engine, station):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT count(*) FROM water_observations WHERE station_code = :s"),
            {"s": station},
        ).scalar()


def test_long_csv_with_bad_rows_and_duplicates(engine, clean, tmp_path):
    path = tmp_path / "readings.csv"
    path.write_text(
        "station_code,observed_at,indicator,value,unit\n"
        "T1,2026-05-01T09:00:00,DO,3.2,mg/L\n"  # 2 ok
        "T1,2026-05-01T09:00:00,氨氮,1.5,mg/L\n"  # 3 ok (alias)
        "T1,2026-05-01T09:00:00,DO,3.2,mg/L\n"  # 4 duplicate in file
        "T1,2026-05-01T09:00:00,transparency,0.3,m\n"  # 5 ok, m -> 30 cm
        "T1,not a time,DO,3.0,mg/L\n"  # 6 bad time
        "T1,2026-05-02T09:00:00,DO,abc,mg/L\n"  # 7 bad number
        "T1,2026-05-02T09:00:00,colour,3,\n"  # 8 unknown indicator
        "T1,2026-05-02T09:00:00,DO,3,g/L\n"  # 9 bad unit
        "T1,2026-05-02T09:00:00,DO,-1,mg/L\n"  # 10 out of range
        ",2026-05-02T09:00:00,DO,3,mg/L\n"  # 11 no station
        "T1,2026-05-02T09:00:00,DO\n",  # 12 short row
        encoding="utf-8",
    )
    report = load_observations(engine, path, check_stations=False)
    assert report.layout == "long"
    assert report.read == 11
    assert report.rejected == 7
    assert sorted(i.row for i in report.issues) == [6, 7, 8, 9, 10, 11, 12]
    assert report.inserted == 3 and report.duplicates == 1
    assert _count(engine, "T1") == 3
    rows = query_station(
        engine,
        "T1",
        dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 5, 2, tzinfo=dt.UTC),
    )
    assert ("transparency", 30.0, "cm") in [(r[1], r[2], r[3]) for r in rows]
    # times without a zone are China Standard Time: 09:00+08 is 01:00 UTC
    assert rows[0][0] == dt.datetime(2026, 5, 1, 1, tzinfo=dt.UTC)

    # loading the same file again adds nothing; everything valid is a duplicate
    again = load_observations(engine, path, check_stations=False)
    assert again.inserted == 0 and again.duplicates == 4
    assert _count(engine, "T1") == 3
    _assert_samples_match_pivot(engine)


def test_update_replaces_values(engine, clean, tmp_path):
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            {
                "readings": [
                    {
                        "station": "T2",
                        "time": "2026-05-01T00:00:00Z",
                        "indicator": "do",
                        "value": 1.0,
                    }
                ]
            }
        )
    )
    assert load_observations(engine, path, check_stations=False).inserted == 1
    path.write_text(
        json.dumps(
            [
                {
                    "station": "T2",
                    "time": "2026-05-01T00:00:00Z",
                    "indicator": "do",
                    "value": 2.0,
                }
            ]
        )
    )
    kept = load_observations(engine, path, check_stations=False)
    assert kept.duplicates == 1
    updated = load_observations(engine, path, check_stations=False, update=True)
    assert updated.updated == 1
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT value FROM water_observations WHERE station_code = 'T2'")
            ).scalar()
            == 2.0
        )
    _assert_samples_match_pivot(engine)


def test_wide_csv_and_strict(engine, clean, tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(
        "station,time,do,nh3n,depth_m,ph\n"
        "T3,2026-05-01 09:00,3.1,1.2,0.4,7.1\n"
        "T3,2026-05-02 09:00,2.9,,0.5,7.0\n"
        "T3,2026-05-03 09:00,2.7,1.0,0.5,15\n",
        encoding="utf-8",
    )
    with pytest.raises(StrictIngestFailed):
        load_observations(engine, path, check_stations=False, strict=True)
    assert _count(engine, "T3") == 0
    report = load_observations(engine, path, check_stations=False)
    assert report.layout == "wide"
    assert report.rejected == 1  # pH 15
    assert report.inserted == 10
    with engine.connect() as conn:
        depth = conn.execute(
            text(
                "SELECT value FROM water_observations WHERE station_code = 'T3' "
                "AND indicator = 'depth' ORDER BY observed_at LIMIT 1"
            )
        ).scalar()
    assert depth == pytest.approx(40.0)
    _assert_samples_match_pivot(engine)


def test_each_load_is_recorded_with_its_report(engine, clean, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text(
        "station,time,indicator,value\nT4,2026-05-01T09:00,do,3\n"
        "T4,2026-05-01T09:00,do,x\n",
        encoding="utf-8",
    )
    report = load_observations(engine, path, source="lab-A", check_stations=False)
    with engine.connect() as conn:
        source, rep = conn.execute(
            text("SELECT source, report FROM water_observation_loads WHERE id = :i"),
            {"i": report.load_id},
        ).one()
        load_id = conn.execute(
            text("SELECT load_id FROM water_observations WHERE station_code = 'T4'")
        ).scalar()
    assert source == "lab-A" and load_id == report.load_id
    assert rep["inserted"] == 1 and rep["rejected"] == 1


@pytest.mark.parametrize("update", [False, True])
def test_small_chunks_give_the_same_counts(engine, clean, tmp_path, update):
    path = tmp_path / "chunks.csv"
    lines = ["station,time,indicator,value"]
    for day in range(1, 8):
        lines.append(f"T5,2026-05-0{day}T09:00,do,{day}")
    lines.append("T5,2026-05-01T09:00,do,9")  # repeats day 1 in a later chunk
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = load_observations(
        engine, path, check_stations=False, chunk_size=3, update=update
    )
    assert report.valid == 8
    assert report.inserted == 7
    assert report.inserted + report.updated + report.duplicates == 8
    with engine.connect() as conn:
        first = conn.execute(
            text(
                "SELECT value FROM water_observations WHERE station_code = 'T5' "
                "ORDER BY observed_at LIMIT 1"
            )
        ).scalar()
    assert first == (9.0 if update else 1.0)
    _assert_samples_match_pivot(engine)


@pytest.mark.parametrize("update", [False, True])
def test_samples_follow_duplicates_and_updates(engine, clean, tmp_path, update):
    """Repeats in a chunk, across chunks and against stored readings."""
    first = tmp_path / "first.csv"
    first.write_text(
        "station,time,indicator,value\n"
        "T6,2026-05-01T09:00,do,1\n"
        "T6,2026-05-01T09:00,nh3n,2\n"
        "T6,2026-05-02T09:00,do,3\n"
        "T6,2026-05-02T09:00,bod5,4\n",
        encoding="utf-8",
    )
    load_observations(engine, first, check_stations=False)
    _assert_samples_match_pivot(engine)
    second = tmp_path / "second.csv"
    second.write_text(
        "station,time,indicator,value\n"
        "T6,2026-05-01T09:00,do,5\n"  # repeats a stored reading
        "T6,2026-05-01T09:00,do,6\n"  # ... twice in the same chunk
        "T6,2026-05-01T09:00,tp,0.4\n"  # new indicator of a stored sample
        "T6,2026-05-03T09:00,ph,7\n"
        "T6,2026-05-03T09:00,ph,8\n"  # repeat inside a new sample
        "T6,2026-05-03T09:00,do,4\n"
        "T6,2026-05-02T09:00,do,7\n"
        "T6,2026-05-03T09:00,ph,9\n",  # repeat in a later chunk
        encoding="utf-8",
    )
    report = load_observations(
        engine, second, check_stations=False, update=update, chunk_size=7
    )
    assert report.inserted == 3
    _assert_samples_match_pivot(engine)
    with engine.connect() as conn:
        do, nh3n, tp = conn.execute(
            text(
                "SELECT \"do\", nh3n, tp FROM water_samples WHERE station_code = 'T6' "
                "ORDER BY observed_at LIMIT 1"
            )
        ).one()
    assert (do, nh3n, tp) == ((6.0 if update else 1.0), 2.0, 0.4)
