"""The generic feed ingest (``ingest/feeds.py``) and ``gis-server ingest feed``.

Generic on purpose: it runs against the first declared feed (whichever
domain declares it), with sample values made from the feed's own column
types, so it checks the loader rather than one domain's records.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import typer
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from gis_server.cli_supervision import ingest_feed_command
from gis_server.errors import IngestError, StrictIngestFailed
from gis_server.settings import database_settings, ingest_settings
from ingest.feeds import load_feed
from layers.base import Prop
from layers.feeds import FeedSpec, all_feeds
from layers.tables import feed_table

SOURCE = "testfeeds"
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def spec() -> FeedSpec:
    feeds = all_feeds()
    if not feeds:
        pytest.fail("no feed declared")
    return feeds[0]


@pytest.fixture(autouse=True)
def _clean(engine, spec):
    yield
    with engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {spec.table} WHERE source LIKE 'testfeeds%'"))


def sample(prop: Prop, i: int) -> Any:
    """A valid value of ``prop``, different for each ``i`` (unless choices)."""
    if prop.choices:
        return prop.choices[i % len(prop.choices)]
    return {
        "text": f"TF-{prop.name}-{i}",
        "int": i + 1,
        "float": 1.5 + i,
        "bool": i % 2 == 0,
        "date": dt.date(1999, 1, 1) + dt.timedelta(days=i),
        "datetime": dt.datetime(1999, 1, 1, 8, tzinfo=CST) + dt.timedelta(hours=i),
        "json": {"i": i},
    }[prop.type]


def records(spec: FeedSpec, n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {c.name: sample(c, i) for c in spec.columns} for i in range(start, start + n)
    ]


def stored(engine, spec: FeedSpec, source: str = SOURCE) -> int:
    table = feed_table(spec.id)
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(table.c.source == source)
        ).scalar_one()


def test_upsert_on_the_key(engine, spec):
    rows = records(spec, 3)
    first = load_feed(engine, spec, records=rows, source=SOURCE)
    assert (first.read, first.inserted, first.rejected) == (3, 3, 0)
    assert first.committed and stored(engine, spec) == 3
    again = load_feed(engine, spec, records=rows, source=SOURCE)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    changeable = [
        c
        for c in spec.columns
        if c.name not in spec.key and sample(c, 0) != sample(c, 1)
    ]
    if changeable:
        col = changeable[0]
        rows[0][col.name] = sample(col, 1)
        changed = load_feed(engine, spec, records=rows, source=SOURCE)
        assert (changed.inserted, changed.updated, changed.unchanged) == (0, 1, 2)
    assert stored(engine, spec) == 3


def test_bad_rows_rejected_with_row_numbers_and_strict(engine, spec):
    rows = records(spec, 3)
    key = spec.key[0]
    rows[1][key] = None
    with pytest.raises(StrictIngestFailed) as err:
        load_feed(engine, spec, records=rows, source=SOURCE, strict=True)
    assert err.value.report.rejected == 1
    assert stored(engine, spec) == 0  # strict: nothing written
    report = load_feed(engine, spec, records=rows, source=SOURCE)
    assert (report.inserted, report.rejected) == (2, 1)
    issue = next(i for i in report.issues if i.action == "rejected")
    assert issue.row == 2 and key in issue.reason


def test_unknown_fields_go_to_extra_and_repeated_keys_keep_the_last(engine, spec):
    rows = records(spec, 2)
    rows[0]["备注_testfeeds"] = "现场核实"
    rows.append(dict(rows[1]))
    report = load_feed(engine, spec, records=rows, source=SOURCE)
    assert report.kept_in_extra == ["备注_testfeeds"]
    assert report.inserted == 2 and report.warnings == 1
    assert "same key as row 3" in report.issues[0].reason
    table = feed_table(spec.id)
    with engine.connect() as conn:
        extras = conn.execute(
            select(table.c.extra).where(table.c.source == SOURCE)
        ).scalars()
        assert {"备注_testfeeds": "现场核实"} in list(extras)


def test_missing_key_column_is_an_error(engine, spec):
    rows = [{k: v for k, v in r.items() if k != spec.key[0]} for r in records(spec, 1)]
    with pytest.raises(IngestError, match=spec.key[0]):
        load_feed(engine, spec, records=rows, source=SOURCE)


def _csv(spec: FeedSpec, rows: list[dict[str, Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, dict):
            return '"' + json.dumps(v).replace('"', '""') + '"'
        if isinstance(v, dt.date | dt.datetime):
            return v.isoformat()
        return str(v).lower() if isinstance(v, bool) else str(v)

    names = [c.name for c in spec.columns]
    lines = [",".join(names)] + [",".join(cell(r[n]) for n in names) for r in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture
def cli_env(db_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_settings.effective_url())
    monkeypatch.setenv("GIS_INGEST_REPORT_DIR", str(tmp_path / "reports"))
    database_settings.cache_clear()
    ingest_settings.cache_clear()
    yield
    database_settings.cache_clear()
    ingest_settings.cache_clear()


def test_cli_ingest_feed_gb18030_csv(engine, spec, cli_env, tmp_path):
    app = typer.Typer()
    app.command()(ingest_feed_command)
    path = tmp_path / "records.csv"
    path.write_bytes(_csv(spec, records(spec, 4)).encode("gb18030"))
    report = tmp_path / "report.json"
    runner = CliRunner()
    res = runner.invoke(
        app, [spec.id, str(path), "--source", SOURCE, "--report", str(report)]
    )
    assert res.exit_code == 0, res.output
    assert "inserted 4" in " ".join(res.output.split())
    assert json.loads(report.read_text(encoding="utf-8"))["inserted"] == 4
    assert stored(engine, spec) == 4
    res = runner.invoke(app, ["no_such_feed", str(path)])
    assert res.exit_code == 1 and "unknown feed" in res.output
    bad = tmp_path / "bad.csv"
    rows = records(spec, 2, start=10)
    rows[0][spec.key[0]] = ""
    bad.write_text(_csv(spec, rows), encoding="utf-8")
    res = runner.invoke(app, [spec.id, str(bad), "--source", SOURCE, "--strict"])
    assert res.exit_code == 1 and "nothing written" in res.output
    assert stored(engine, spec) == 4
