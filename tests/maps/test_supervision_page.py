"""The supervision page and its charts, on the demo city's inspections,
construction sites and provident-fund centres.

The module loads the demo inspections into the maps database, raises their
findings through the loop, issues half the notices and closes one problem;
it adds the sites' and the fund's demo records and raises their findings; the
page and the chart route are compared with what the loop stores, for an
anonymous reader and, signed in, for a housing officer and an analyst.
"""

from __future__ import annotations

import datetime as dt
import html as htmllib
import json
import re
import struct
import warnings as pywarnings
from collections import Counter, defaultdict

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from gis_server.audit import Actor
from gis_server.auth.principal import CURRENT, Principal
from gis_server.errors import InvalidParameter, NotFound
from ingest.crs import wgs84_to_gcj02
from layers.supervision.warnings import LEVEL_COLORS
from map_ui import charts
from map_ui.settings import MapSettings
from map_ui.supervision import (
    CHARTS,
    FUND_COLORS,
    FUND_METRICS,
    chart_png,
    fund_class,
    large_flow_rows,
    ranking_rows,
    supervision_page,
    warning_counts,
)

AS_OF = dt.date(2026, 11, 30)
TZ = dt.timezone(dt.timedelta(hours=8))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Source of the sites' and the fund's demo records this module loads.
DEMO = "test_supervision_page"


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


@pytest.fixture(scope="module")
def sites_fund(maps_engine, warnings):
    """The sites' and the fund's demo records and their warnings (removed
    after the module): warnings in several districts, per fund centre, and
    enterprises with credit records."""
    from ingest.feeds import load_feed
    from ingest.loader import load_batch
    from layers import get_layer
    from layers.feeds import get_feed
    from layers.supervision.fund import FEEDS as FUND_FEEDS
    from layers.supervision.sites import FEEDS as SITE_FEEDS
    from models.supervision import fund, loop, sites

    def wipe():
        with maps_engine.begin() as conn:
            conn.execute(text("DELETE FROM layer_supervision_warnings "
                              "WHERE domain IN ('sites', 'fund')"))
            conn.execute(text("DELETE FROM layer_fund_centres WHERE source = :s"),
                         {"s": DEMO})
            for spec in (*SITE_FEEDS, *FUND_FEEDS):
                conn.execute(text(f"DELETE FROM {spec.table} WHERE source = :s"),
                             {"s": DEMO})

    wipe()
    report = load_batch(maps_engine, get_layer("fund_centres"), fund.demo_centres(),
                        source=DEMO, strict=True)
    assert report.inserted == 21
    with maps_engine.connect() as conn:
        records = {**sites.demo_records(conn, seed=8, as_of=AS_OF),
                   **fund.demo_records(seed=8, as_of=AS_OF)}
    for feed, rows in records.items():
        assert load_feed(maps_engine, get_feed(feed), records=rows,
                         source=DEMO).rejected == 0, feed
    at = dt.datetime(2026, 11, 30, 20, tzinfo=TZ)
    with maps_engine.begin() as conn:
        found = [*sites.evaluate(conn, AS_OF), *fund.evaluate(conn, AS_OF)]
        loop.raise_findings(conn, found, Actor("system", "system"), at=at)
    assert {f.rule.split(".")[0] for f in found} == {"sites", "fund"}
    yield found
    wipe()


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


def _expected_parties(stored: list[dict]) -> list[tuple[str, int, int]]:
    """Open and overdue warnings per party, counted here from the stored list."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for w in stored:
        if w["state"] != "closed":
            counts[w.get("responsible") or ""][0] += 1
            counts[w.get("responsible") or ""][1] += bool(w["overdue"])
    return sorted(((n, o, d) for n, (o, d) in counts.items()),
                  key=lambda p: (-p[2], -p[1], p[0]))


def _party_rows(html: str) -> list[tuple[str, int, int]]:
    rows = re.findall(
        r'data-party="([^"]*)" data-open="(\d+)"\s+data-overdue="(\d+)"', html
    )
    return [(htmllib.unescape(n), int(o), int(d)) for n, o, d in rows]


def test_page_embeds_every_warning_by_level_and_state(maps_engine, warnings,
                                                      sites_fund):
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
    assert _party_rows(html) == _expected_parties(list(stored.values()))
    assert sum(o for _, o, _ in _party_rows(html)) == sum(
        r["state"] != "closed" for r in stored.values()
    )
    for name in ("warnings_by_district", "warnings_by_state", "warnings_by_domain",
                 "ranking_table", "warnings_by_centre", "fund_centres",
                 "fund_large_flows", "enterprise_credit", "enterprise_table"):
        assert f'src="/maps/supervision/charts/{name}.png?lang=zh' in html, name
    assert 'src="/maps/supervision/charts/ranking_table.png?lang=zh&amp;by=centre"' \
        in html
    # without the city-wide view, no enterprise ranking is linked
    narrow = supervision_page(maps_engine, settings, "zh", enterprises=False)
    assert "enterprise_credit" not in narrow


def test_counts_and_parties_cover_the_warnings_not_drawn(maps_engine, warnings,
                                                         sites_fund):
    """The page draws at most inline_max_features warnings; its totals and its
    party list count every warning, in SQL."""
    stored = _stored(maps_engine)
    assert len(stored) > 8
    html = supervision_page(maps_engine, MapSettings(basemap="none",
                                                     inline_max_features=8), "en")
    assert len(_layer_data(html, "supervision_warnings")["features"]) == 8
    counts = re.search(r'data-total="(\d+)"\s+data-open="(\d+)" '
                       r'data-overdue="(\d+)"', html)
    assert counts is not None
    assert tuple(map(int, counts.groups())) == (
        len(stored),
        sum(w["state"] != "closed" for w in stored),
        sum(w["state"] != "closed" and w["overdue"] for w in stored),
    )
    assert _party_rows(html) == _expected_parties(stored)
    assert f"showing 8 of {len(stored)}" in html
    # filtered: the counts are the filter's
    dispatched = _stored(maps_engine, state="dispatched")
    with maps_engine.connect() as conn:
        c = warning_counts(conn, "en", state="dispatched")
    assert (c["total"], c["open"]) == (len(dispatched), len(dispatched))
    assert sum(p["open"] for p in c["parties"]) == len(dispatched)


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


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_MAGIC
    return struct.unpack(">II", png[16:24])


def test_chart_route(maps_server, warnings, sites_fund):
    base = maps_server + "/maps/supervision/charts/"
    queries = {name: ["lang=zh", "lang=zh&domain=inspections", "lang=en"]
               for name in CHARTS}
    queries["ranking_table"] += ["lang=zh&by=centre", "lang=en&by=district"]
    queries["fund_large_flows"] += ["lang=zh&months=3"]
    queries["trend"] = [f"centre=441500&metric={m}&lang=zh" for m in FUND_METRICS]
    queries["trend"].append("centre=441500")
    for name, qs in queries.items():
        for q in qs:
            r = httpx.get(f"{base}{name}.png?{q}", timeout=60)
            assert r.status_code == 200, (name, q, r.text[:200])
            assert r.headers["content-type"] == "image/png"
            assert r.content[:8] == PNG_MAGIC and len(r.content) < 150_000
            assert _png_size(r.content)[0] == 640, (name, q)
    assert httpx.get(base + "nothing.png").status_code == 404
    assert httpx.get(base + "warnings_by_state.png?state=lost").status_code == 400
    assert httpx.get(base + "trend.png").status_code == 400
    assert httpx.get(base + "ranking_table.png?by=planet").status_code == 400
    assert httpx.get(base + "trend.png?centre=441500&metric=mood",
                     timeout=60).status_code == 400
    assert httpx.get(base + "fund_large_flows.png?months=0").status_code in (400, 422)
    # a trend of a subject that does not exist is absent, never a server error
    for query in ("building=B1&kind=settlement_mm", "centre=000000"):
        assert httpx.get(f"{base}trend.png?{query}", timeout=60).status_code in (
            200,
            404,
        )


def test_rankings_per_district_leave_the_fund_centres_out(maps_engine, warnings,
                                                          sites_fund):
    stored = _stored(maps_engine)
    fund = [w for w in stored if w["domain"] == "fund"]
    others = [w for w in stored if w["domain"] != "fund"]
    assert fund and others
    with maps_engine.connect() as conn:
        per_district = ranking_rows(conn, "district")
        per_centre = ranking_rows(conn, "centre")
        fund_only = ranking_rows(conn, "district", domain="fund")
        sites_centre = ranking_rows(conn, "centre", domain="sites")
    by_district = Counter(w["district"] for w in others)
    assert {r["key"]: r["total"] for r in per_district} == dict(by_district)
    by_centre = Counter(w["district"] for w in fund)
    assert {r["key"]: r["total"] for r in per_centre} == dict(by_centre)
    assert "深圳" in by_centre and not fund_only and not sites_centre
    opens = [(r["open"], r["overdue"], r["total"]) for r in per_district]
    assert opens == sorted(opens, reverse=True)
    # one warning per centre and standing rule, whatever the months
    keys = Counter((w["rule"], w["subject_id"]) for w in fund
                   if w["rule"] != "fund.large_flow")
    assert keys and max(keys.values()) == 1


def test_large_flow_bands_and_enterprise_ranking(maps_engine, sites_fund):
    from models.supervision.fund import DEMO_BIG_FLOW

    with maps_engine.connect() as conn:
        rows, bands = large_flow_rows(conn, "en", 1)
        year, _ = large_flow_rows(conn, "zh", 12)
        with pytest.raises(InvalidParameter):
            large_flow_rows(conn, "en", 0)
    assert bands == ["500-1000", "1000-1500", "1500-2000", ">= 2000"]
    by_name = {r["key"]: r for r in rows}
    # the demo's last month: Shenzhen's 2 300 and Huizhou's 1 200 thousand yuan
    assert by_name["Shenzhen"][">= 2000"] == 1 and by_name["Huizhou"]["1000-1500"] == 1
    assert set(DEMO_BIG_FLOW) and all(r["months"] <= 1 for r in rows)
    assert all(r["months"] <= 12 for r in year) and "深圳" in {r["key"] for r in year}


def test_chinese_labels_render_with_a_cjk_font(maps_engine, warnings, sites_fund):
    """The charts are labelled in Chinese with a font that has the glyphs (the
    system install provides one: scripts/install-system.sh)."""
    if charts.cjk_font() is None:
        pytest.fail("no CJK font: apt-get install fonts-wqy-microhei "
                    "(scripts/install-system.sh installs it)")
    assert charts.chart_lang("zh") == "zh"
    for name, kw in [(n, {}) for n in CHARTS] + [
            ("trend", {"centre": "441500", "metric": m}) for m in FUND_METRICS]:
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            png = chart_png(maps_engine, name, "zh", **kw)
        missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
        assert not missing, (name, missing[:2])
        assert png != chart_png(maps_engine, name, "en", **kw), name  # not English


def test_page_in_the_browser(browser, maps_server, maps_engine, warnings, sites_fund,
                             artifacts):
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
        assert len(sizes) >= 10 and all(ok and w == 640 for ok, w in sizes)
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
         "deposit_balance": 1000.0, "loan_balance": ratio * 1000.0,
         "deposits": 100.0, "withdrawals": 80.0, "loans_issued": 50.0,
         "principal_repaid": 20.0, "overdue_loan_balance": ratio * 0.5}
        for m, ratio in ((8, 0.70), (9, 0.80), (10, 0.90))])
    assert report.rejected == 0
    yield "449999"
    wipe()


def test_fund_class_puts_the_liquidity_level_first():
    assert [fund_class(0.92, 2, 0.85), fund_class(0.87, 1, 0.85),
            fund_class(0.87, 0, 0.85), fund_class(0.87, 0, 0.90)] == [
        "level2", "level1", "alert", "normal"]
    # levels 1 and 2 (85-90 %, 90-95 %) no longer look the same
    assert len({FUND_COLORS[f"level{n}"] for n in (1, 2, 3)}) == 3


def test_fund_centres_choropleth_and_trend(maps_engine, maps_server, warnings,
                                           fund_centre, sites_fund):
    html = supervision_page(maps_engine, MapSettings(basemap="none"), "zh")
    data, opts = _layer_data(html, "fund_centres", options=True)
    by_code = {f["properties"]["code"]: f["properties"] for f in data["features"]}
    centre = by_code[fund_centre]
    # October (the demo's last month too): 90 % is level 2; net flow
    # 100 + 20 - 80 - 50 = -10
    assert (centre["fund_class"], centre["liquidity_level"]) == ("level2", 2)
    popup = centre["_popup"]
    for text_ in ("流动性风险等级", "2级", "90.0%", "-10 千元", "逾期率", "0.50 ‰",
                  "2026-10"):
        assert text_ in popup, text_
    for metric in FUND_METRICS:
        assert f"metric={metric}" in popup
    assert opts["style"]["colorBy"] == "fund_class"
    assert opts["style"]["palette"] == FUND_COLORS
    # the demo centres: level 3 Shanwei, level 1 Meizhou, level 0 Guangzhou
    assert by_code["441500"]["fund_class"] == "level3"
    assert by_code["441400"]["fund_class"] == "level1"
    assert by_code["440100"]["fund_class"] in ("low", "normal")
    # the legend names the levels and the loan-ratio classes, in either language
    def in_legend(page: str, entry: str) -> bool:  # the legend is JSON in a script
        return json.dumps(entry)[1:-1] in page

    assert in_legend(html, "流动性风险等级 1级 (85%–90%, 净流量连续3个月为负)")
    assert in_legend(html, "个贷率 ≥ 85%, 未达流动性风险等级")
    english = supervision_page(maps_engine, MapSettings(basemap="none"), "en")
    assert in_legend(english, "Liquidity level 3 (≥ 95%)")
    assert in_legend(english, "Loan ratio 75%–85%")
    assert "Overdue rate" in _layer_data(english, "fund_centres")["features"][0][
        "properties"]["_popup"]
    for metric in FUND_METRICS:
        r = httpx.get(f"{maps_server}/maps/supervision/charts/trend.png",
                      params={"centre": fund_centre, "metric": metric}, timeout=60)
        assert r.status_code == 200 and r.content[:8] == PNG_MAGIC, metric
    missing = httpx.get(f"{maps_server}/maps/supervision/charts/trend.png",
                        params={"centre": "000000"}, timeout=60)
    assert missing.status_code == 404


# -- scope: a housing officer's charts count only their district ----------------


@pytest.fixture(scope="module")
def scoped_server(maps_db_settings, maps_engine, sites_fund, serve_app):
    """The maps database served with sign-in required; an API key each for a
    housing officer of the district with most warnings and for an analyst."""
    from gis_server.app import create_app
    from gis_server.auth import accounts
    from gis_server.auth.settings import AuthSettings
    from gis_server.limits import LimitSettings
    from gis_server.settings import ServerSettings

    with maps_engine.begin() as conn:
        district = conn.execute(text(
            "SELECT district FROM layer_supervision_warnings WHERE domain = 'sites' "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")).scalar_one()
        keys = {}
        for name, role, extra in (
            ("sup-housing", "housing_officer", {"district": district}),
            ("sup-analyst", "analyst", {}),
        ):
            try:
                accounts.get_user(conn, name)
            except NotFound:
                accounts.add_user(conn, name, role, f"{name}-password", **extra)
            keys[role] = accounts.create_key(conn, name, "charts")
    app = create_app(db=maps_db_settings, server=ServerSettings(log_requests=False),
                     auth=AuthSettings(), limits=LimitSettings(rate_limit=False))
    app.state.map_settings = MapSettings(basemap="none")
    server, thread, url = serve_app(app)
    yield url, district, keys
    server.should_exit = True
    thread.join(timeout=10)


def _as(principal: Principal, draw):
    token = CURRENT.set(principal)
    try:
        return draw()
    finally:
        CURRENT.reset(token)


def test_a_housing_officers_charts_count_only_their_district(maps_engine,
                                                             scoped_server):
    url, district, keys = scoped_server
    base = f"{url}/maps/supervision/charts/"
    officer = Principal("sup-housing", "housing_officer", district=district,
                        via="key")

    def get(name: str, role: str, **params):
        return httpx.get(f"{base}{name}.png", params={"lang": "zh", **params},
                         headers={"X-API-Key": keys[role]}, timeout=60)

    # the officer's connection sees their district's warnings only
    with maps_engine.connect() as conn:
        every = ranking_rows(conn, "district")
    mine = _as(officer, lambda: _ranked(maps_engine))
    assert len(every) > 1 and [r["key"] for r in mine] == [district]
    assert mine[0]["total"] == next(r["total"] for r in every
                                    if r["key"] == district)
    for name in ("warnings_by_district", "warnings_by_state", "warnings_by_domain",
                 "ranking_table", "warnings_by_centre"):
        theirs, analysts = get(name, "housing_officer"), get(name, "analyst")
        assert theirs.status_code == analysts.status_code == 200, name
        assert theirs.content[:8] == PNG_MAGIC
        # the same bytes as the chart drawn in the officer's scope here
        expected = _as(officer, lambda n=name: chart_png(maps_engine, n, "zh"))
        assert theirs.content == expected, name
        if name != "warnings_by_centre":  # the officer sees no fund warning
            assert theirs.content != analysts.content, name
    # what is not theirs to see: fund centres, the city-wide enterprise ranking
    for name, params in (("fund_centres", {}), ("fund_large_flows", {}),
                         ("enterprise_credit", {}), ("enterprise_table", {}),
                         ("trend", {"centre": "441500"})):
        assert get(name, "housing_officer", **params).status_code == 404, name
        r = get(name, "analyst", **params)
        assert r.status_code == 200 and r.content[:8] == PNG_MAGIC, name
    # the page links only what the officer may open, and counts their warnings
    page = httpx.get(f"{url}/maps/supervision", headers={"X-API-Key":
                     keys["housing_officer"]}, timeout=60)
    assert page.status_code == 200
    assert "enterprise_credit" not in page.text and "fund_centres.png" not in page.text
    counts = re.search(r'data-total="(\d+)"', page.text)
    assert counts is not None and int(counts.group(1)) == mine[0]["total"]
    # the ranked JSON of the enterprises: worst first, with ranks
    r = httpx.get(f"{url}/supervision/enterprises", params={"as-of": "2026-11-30"},
                  headers={"X-API-Key": keys["analyst"]}, timeout=60)
    assert r.status_code == 200
    ranked = r.json()["enterprises"]
    assert ranked and [e["rank"] for e in ranked] == sorted(e["rank"] for e in ranked)
    assert ranked[0]["rank"] == 1
    flags = [e["blacklisted"] for e in ranked]
    assert flags == sorted(flags, reverse=True)  # blacklisted first
    scores = [e["score"] for e in ranked if not e["blacklisted"]]
    assert scores == sorted(scores)


def _ranked(engine):
    with engine.connect() as conn:
        return ranking_rows(conn, "district")
