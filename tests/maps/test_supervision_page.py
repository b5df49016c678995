"""The supervision page and its charts, on the demo city's inspections.

The module loads the demo inspections into the maps database, raises their
findings through the loop, issues half the notices and closes one problem;
the page and the chart route are compared with what the loop stores.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from gis_server.audit import Actor
from gis_server.errors import InvalidParameter
from ingest.crs import wgs84_to_gcj02
from layers.supervision.warnings import LEVEL_COLORS
from map_ui.settings import MapSettings
from map_ui.supervision import party_rows, supervision_page

AS_OF = dt.date(2026, 11, 30)
TZ = dt.timezone(dt.timedelta(hours=8))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def warnings(maps_engine, tmp_path_factory):
    """The demo inspections' warnings: raised, half dispatched, one closed."""
    from models.supervision import inspections as insp
    from models.supervision import loop
    from models.supervision.evidence import store_evidence
    from models.supervision.settings import LoopSettings

    reports = insp.load_demo(maps_engine, seed=11, as_of=AS_OF)
    assert all(r.rejected == 0 for r in reports.values())
    actor = Actor("inspector", "supervisor")
    at = dt.datetime(2026, 11, 30, 9, tzinfo=TZ)
    with maps_engine.begin() as conn:
        findings = insp.evaluate(conn, AS_OF)
        ids = loop.raise_findings(conn, findings, actor, at=at).ids
        for wid in ids[::2]:
            insp.issue_notice(conn, wid, actor, at=at)
        evidence = store_evidence(
            conn,
            b"%PDF-1.4 rectification report",
            "report.pdf",
            "application/pdf",
            LoopSettings(evidence_dir=tmp_path_factory.mktemp("evidence")),
        )
        loop.rectify(
            conn,
            ids[0],
            Actor("contractor"),
            "整改完成",
            [evidence],
            at=at + dt.timedelta(days=1),
        )
        loop.verify(conn, ids[0], actor, accept=True, at=at + dt.timedelta(days=2))
    assert len(ids) >= 20
    return ids


def _layer_data(html: str, layer_id: str, options: bool = False):
    """The FeatureCollection an inline layer embeds in the page (and options)."""
    call = f'GIS.geojsonLayer("{layer_id}",'
    rest = html[html.index(call) + len(call) :].lstrip()
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(rest)
    if not options:
        return data
    opts, _ = decoder.raw_decode(rest[end:].lstrip(" \n,"))
    return data, opts


def _stored(engine, **filters) -> list[dict]:
    from models.supervision import loop

    with engine.begin() as conn:
        return loop.list_warnings(conn, limit=10_000, **filters)


def test_page_embeds_every_warning_by_level_and_state(maps_engine, warnings):
    settings = MapSettings(basemap="none")
    html = supervision_page(maps_engine, settings, "zh")
    data = _layer_data(html, "supervision_warnings")
    stored = {r["id"]: r for r in _stored(maps_engine)}
    drawn = {f["id"]: f for f in data["features"]}
    assert set(drawn) == set(stored) and set(warnings) <= set(drawn)
    for wid, f in drawn.items():
        p, r = f["properties"], stored[wid]
        assert (p["level"], p["state"]) == (r["level"], r["state"])
        assert f["geometry"]["coordinates"] == pytest.approx([r["lon"], r["lat"]])
        assert "处置状态" in p["_popup"]
    closed = drawn[warnings[0]]["properties"]
    assert closed["state"] == "closed" and "已销号" in closed["_popup"]
    # coloured by level with the layer's palette
    _, opts = _layer_data(html, "supervision_warnings", options=True)
    assert opts["style"]["colorBy"] == "level"
    assert opts["style"]["palette"] == LEVEL_COLORS
    # the party list: open and overdue per party, as the loop counts them
    rows = re.findall(
        r'data-party="([^"]*)" data-open="(\d+)"\s+data-overdue="(\d+)"', html
    )
    expected = party_rows(list(stored.values()), "zh")
    assert [(n, int(o), int(d)) for n, o, d in rows] == [
        (p["name"], p["open"], p["overdue"]) for p in expected
    ]
    assert sum(int(o) for _, o, _ in rows) == sum(
        r["state"] != "closed" for r in stored.values()
    )
    for name in ("warnings_by_district", "warnings_by_state", "warnings_by_domain"):
        assert f'src="/maps/supervision/charts/{name}.png?lang=zh"' in html


def test_page_filters_and_refuses_unknown_values(maps_engine, warnings):
    settings = MapSettings(basemap="none")
    html = supervision_page(
        maps_engine, settings, "en", domain="inspections", state="dispatched"
    )
    data = _layer_data(html, "supervision_warnings")
    states = Counter(f["properties"]["state"] for f in data["features"])
    assert states and set(states) == {"dispatched"}
    assert len(data["features"]) == len(
        _stored(maps_engine, state="dispatched", domain="inspections")
    )
    assert "state=dispatched" in html and "Supervision warnings map" in html
    with pytest.raises(InvalidParameter):
        supervision_page(maps_engine, settings, "zh", state="lost")
    with pytest.raises(InvalidParameter):
        supervision_page(maps_engine, settings, "zh", domain="astrology")


def test_page_shifts_embedded_warnings_to_gcj02(maps_engine, warnings):
    html = supervision_page(maps_engine, MapSettings(basemap="amap"), "zh")
    data = _layer_data(html, "supervision_warnings")
    stored = {r["id"]: r for r in _stored(maps_engine)}
    f = data["features"][0]
    r = stored[f["id"]]
    expected = wgs84_to_gcj02(np.array([[r["lon"], r["lat"]]]))[0]
    assert f["geometry"]["coordinates"] == pytest.approx(list(expected), abs=1e-6)
    assert "autonavi" in html


def test_chart_route(maps_server, warnings):
    base = maps_server + "/maps/supervision/charts/"
    for name in ("warnings_by_district", "warnings_by_state", "warnings_by_domain"):
        r = httpx.get(f"{base}{name}.png?lang=zh&domain=inspections", timeout=60)
        assert r.status_code == 200, name
        assert r.headers["content-type"] == "image/png"
        assert r.content[:8] == PNG_MAGIC and len(r.content) < 100_000
    assert httpx.get(base + "nothing.png").status_code == 404
    assert httpx.get(base + "warnings_by_state.png?state=lost").status_code == 400
    assert httpx.get(base + "trend.png").status_code == 400
    # a trend of a domain not installed is absent, never a server error
    for query in ("building=B1&kind=settlement_mm", "centre=440100"):
        assert httpx.get(f"{base}trend.png?{query}", timeout=60).status_code in (
            200,
            404,
        )


def test_page_in_the_browser(browser, maps_server, maps_engine, warnings, artifacts):
    from test_maps_pages import PageRun

    run = PageRun(browser)
    try:
        run.open(f"{maps_server}/maps/supervision")
        run.check_clean()
        stored = _stored(maps_engine)
        assert run.evaluate(
            "() => GIS.layers.supervision_warnings.featureCount()"
        ) == len(stored)
        # every chart image loaded and decoded
        sizes = run.evaluate("""() => Array.from(document.querySelectorAll(
            'img.gis-chart')).map(i => [i.complete, i.naturalWidth])""")
        assert len(sizes) == 3 and all(ok and w == 640 for ok, w in sizes)
        # a party row zooms to one of its warnings and opens its popup
        run.page.click("#gis-parties tr.gis-row >> nth=0")
        run.page.wait_for_selector(
            ".leaflet-popup-content table.gis-popup", timeout=5000
        )
        popup = run.page.inner_text(".leaflet-popup-content")
        assert "处置状态" in popup
        # the domain filter reloads the page with only that domain
        run.page.select_option("select[name=state]", "dispatched")
        run.page.click("#gis-filter button")
        run.page.wait_for_function("window.GIS && window.GIS.map")
        run.page.wait_for_load_state("networkidle")
        assert run.evaluate("""() => Array.from(document.querySelectorAll(
            'img.gis-chart')).every(i => i.complete && i.naturalWidth === 640)""")
        states = run.evaluate("""() => GIS.layers.supervision_warnings.getLayers()
            .map(l => l.feature.properties.state)""")
        assert states and set(states) == {"dispatched"}
        run.page.screenshot(path=str(artifacts / "supervision.png"))
        run.check_clean()
    finally:
        run.close()


@pytest.fixture
def fund_centre(maps_engine):
    """One provident-fund centre with three months of metrics (removed after)."""
    from ingest.feeds import load_feed
    from layers.feeds import get_feed

    def wipe():
        with maps_engine.begin() as conn:
            conn.execute(text("DELETE FROM layer_fund_centres WHERE source = 'test'"))
            conn.execute(text("DELETE FROM feed_fund_metrics WHERE source = 'test'"))

    wipe()
    with maps_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO layer_fund_centres (source, source_id, source_part, code, "
            "name, name_zh, geom) VALUES ('test', '449999', 0, '449999', 'Test', "
            "'测试中心', ST_Multi(ST_MakeEnvelope(113.2, 23.0, 113.4, 23.2, 4326)))"))
    report = load_feed(maps_engine, get_feed("fund_metrics"), source="test", records=[
        {"centre_code": "449999", "month": f"2026-{m:02d}-01",
         "deposit_balance": 1000.0, "loan_balance": ratio * 1000.0}
        for m, ratio in ((9, 0.70), (10, 0.80), (11, 0.90))])
    assert report.rejected == 0
    yield "449999"
    wipe()


def test_fund_centres_choropleth_and_trend(maps_engine, maps_server, warnings,
                                           fund_centre):
    from map_ui.supervision import loan_ratio_color

    html = supervision_page(maps_engine, MapSettings(basemap="none"), "zh")
    data, opts = _layer_data(html, "fund_centres", options=True)
    (centre,) = [f for f in data["features"]
                 if f["properties"]["code"] == fund_centre]
    assert centre["properties"]["ratio_class"] == loan_ratio_color(0.90)
    assert "90.0%" in centre["properties"]["_popup"]
    assert opts["style"]["colorBy"] == "ratio_class"
    r = httpx.get(f"{maps_server}/maps/supervision/charts/trend.png",
                  params={"centre": fund_centre}, timeout=60)
    assert r.status_code == 200 and r.content[:8] == PNG_MAGIC
    missing = httpx.get(f"{maps_server}/maps/supervision/charts/trend.png",
                        params={"centre": "000000"}, timeout=60)
    assert missing.status_code == 404
