"""The three map pages in a real browser (headless Debian chromium).

Every page must load with no console error and no request leaving the
machine; what is drawn and listed is compared with the database.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from ingest.crs import wgs84_to_gcj02
from layers import all_layers
from layers.catalog import SAFETY_GRADE_COLORS
from layers.water import WARNING_COLORS
from models.risk.service import local_today
from models.supervision.buildings import hazard_list

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


class PageRun:
    """A browser page that records console errors and outside requests."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.context.route("**/*", self._route)

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        host = urlparse(url).hostname
        if url.startswith("data:") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, url: str) -> None:
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        self.page.wait_for_function("window.GIS && window.GIS.map")
        self.page.wait_for_load_state("networkidle")

    def open_plain(self, url: str) -> None:
        """A page without a map."""
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url

    def evaluate(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def check_clean(self) -> None:
        assert self.outside == [], f"requests left the machine: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def run(browser):
    page_run = PageRun(browser)
    yield page_run
    page_run.close()


def _busiest_chief(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT chief_id FROM layer_patrol_tasks GROUP BY chief_id "
            "ORDER BY count(*) DESC, chief_id LIMIT 1")).scalar_one()


# -- assets ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/maps/housing", "/maps/analyst"])
def test_pages_link_only_local_assets(maps_server, path):
    html = httpx.get(maps_server + path, timeout=60).text
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and not [r for r in refs if re.match(r"(https?:)?//", r)]
    assert "cdn" not in html.lower()
    for ref in refs:
        if ref.startswith("/static/"):
            assert httpx.get(maps_server + ref).status_code == 200, ref


def test_static_refuses_paths_outside_its_folder(maps_server):
    assert httpx.get(maps_server + "/static/../settings.py").status_code == 404
    assert httpx.get(maps_server + "/static/%2e%2e/settings.py").status_code == 404
    leaflet = httpx.get(maps_server + "/static/vendor/leaflet/leaflet.js")
    assert leaflet.status_code == 200 and "Leaflet" in leaflet.text[:500]


# -- river chief ----------------------------------------------------------------------


def test_river_chief_page(run, maps_server, maps_engine, artifacts):
    chief = _busiest_chief(maps_engine)
    with maps_engine.connect() as conn:
        segments = dict(conn.execute(text(
            "SELECT r.code, coalesce(w.level, 'none') FROM layer_rivers r "
            "LEFT JOIN layer_water_quality_warnings w ON w.segment_code = r.code "
            "WHERE r.chief_id = :c"), {"c": chief}).all())
        stations = conn.execute(text(
            "SELECT count(*) FROM layer_monitoring_stations s JOIN layer_rivers r "
            "ON s.river_code = r.code WHERE r.chief_id = :c"), {"c": chief}).scalar()
        tasks = conn.execute(text(
            "SELECT segment_code FROM layer_patrol_tasks WHERE chief_id = :c "
            "ORDER BY urgency_rank, due_at NULLS LAST, id"), {"c": chief}
        ).scalars().all()
    assert tasks and stations

    run.open(f"{maps_server}/maps/river-chief?chief={chief}")
    run.check_clean()
    drawn = run.evaluate("""() => GIS.layers.segments.getLayers().map(
        l => [l.feature.properties.code, l.options.color])""")
    assert {code: color for code, color in drawn} == {
        code: WARNING_COLORS[level] for code, level in segments.items()}
    assert run.evaluate("() => GIS.layers.stations.featureCount()") == stations
    # the list: most urgent first, as stored
    listed = run.evaluate("""() => Array.from(document.querySelectorAll(
        '#gis-tasks li')).map(li => li.dataset.segment)""")
    assert listed == tasks
    assert "巡河任务" in run.page.content()

    # a station popup holds its latest readings and a 90-day trend chart
    popup = run.evaluate("""() => {
        const layers = GIS.layers.stations.getLayers();
        const withData = layers.find(l => l.feature.properties._popup.includes('svg'));
        withData.openPopup();
        return document.querySelector('.leaflet-popup-content').innerHTML;
    }""")
    assert "gis-sparkline" in popup and "溶解氧" in popup

    # clicking a task zooms to its segment
    run.page.locator("#gis-tasks li").last.click()
    run.page.wait_for_timeout(400)
    view = run.evaluate("() => GIS.map.getBounds().toBBoxString()")
    with maps_engine.connect() as conn:
        x, y = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p "
            "FROM layer_rivers WHERE code = :c LIMIT 1) s"), {"c": tasks[-1]}).one()
    west, south, east, north = map(float, view.split(","))
    assert west <= x <= east and south <= y <= north
    run.page.screenshot(path=str(artifacts / "map_river_chief.png"))
    run.check_clean()


def test_river_chief_index_links_every_chief(run, maps_server, maps_engine):
    with maps_engine.connect() as conn:
        chiefs = set(conn.execute(text(
            "SELECT DISTINCT chief_id FROM layer_rivers WHERE chief_id IS NOT NULL")
        ).scalars())
    run.open_plain(f"{maps_server}/maps/river-chief")
    links = run.evaluate("""() => Array.from(document.querySelectorAll(
        '#gis-chiefs a')).map(a => a.innerText)""")
    assert set(links) == chiefs and len(links) == len(chiefs)
    run.page.locator("#gis-chiefs a").first.click()
    run.page.wait_for_function("window.GIS && window.GIS.map")
    assert run.page.locator("#gis-chief").inner_text() == links[0]
    run.check_clean()


def test_river_chief_unknown_is_404(maps_server):
    r = httpx.get(maps_server + "/maps/river-chief?chief=nobody", timeout=30)
    assert r.status_code == 404 and "nobody" in r.json()["description"]


@pytest.mark.parametrize(("page", "title", "text"), [
    ("river-chief?chief={chief}&lang=en", "River chief map", "Patrol tasks"),
    ("housing?lang=en", "Housing safety map", "Hazard list"),
    ("analyst?lang=en", "Analyst map", "Download a box"),
])
def test_pages_in_english(run, maps_server, maps_engine, page, title, text):
    chief = _busiest_chief(maps_engine)
    run.open(f"{maps_server}/maps/{page.format(chief=chief)}")
    run.check_clean()
    assert run.page.title().startswith(title)
    panel = run.page.inner_text("#gis-panel")
    assert text in panel and not any("\u4e00" <= ch <= "\u9fff" for ch in
                                     run.page.inner_text(".leaflet-control-layers"))


# -- housing --------------------------------------------------------------------------


def _hazard_rows(engine, district: str | None = None) -> list[tuple[str, int]]:
    """(kind, layer id) of the hazard list /supervision/hazards answers."""
    with engine.connect() as conn:
        rows = hazard_list(conn, local_today(), district, None)
        ids = {
            layer: dict(conn.execute(text(
                f"SELECT DISTINCT ON (source_id) source_id, id FROM layer_{layer} "
                "WHERE source_id = ANY(:s) ORDER BY source_id, source_part"),
                {"s": [r["subject_id"] for r in rows]}).all())
            for layer in ("buildings", "curtain_walls")}
    kinds = {"buildings": "building", "curtain_walls": "curtain_wall"}
    return [(kinds[r["layer"]], ids[r["layer"]][r["subject_id"]]) for r in rows]


def test_housing_page(run, maps_server, maps_engine, artifacts):
    with maps_engine.connect() as conn:
        grades = dict(conn.execute(text(
            "SELECT id, safety_grade FROM layer_buildings")).all())
    expected = _hazard_rows(maps_engine)
    hazards = [i for kind, i in expected if kind == "building"]
    assert hazards
    assert {grades[i] for i in hazards} >= {"C", "D"}
    run.open(f"{maps_server}/maps/housing")
    run.check_clean()
    drawn = run.evaluate("""() => GIS.layers.buildings.getLayers().map(
        l => [l.feature.id, l.options.fillColor])""")
    assert len(drawn) == len(grades)
    assert all(SAFETY_GRADE_COLORS.get(grades[fid], "#bbbbbb") == color
               for fid, color in drawn)
    rows = run.evaluate("""() => Array.from(document.querySelectorAll(
        '#gis-hazards tr.gis-row')).map(r => [r.dataset.kind, Number(r.dataset.id)])""")
    # the same list, in the same order, as /supervision/hazards
    assert [tuple(r) for r in rows] == expected[: len(rows)]
    legend = run.page.inner_text(".gis-legend")
    assert all(g in legend for g in "ABCD")

    run.page.screenshot(path=str(artifacts / "map_housing_overview.png"))

    # a row zooms to its building and opens its popup
    first = run.page.locator("#gis-hazards tr[data-kind=building]").first
    first.click()
    run.page.wait_for_timeout(400)
    assert run.evaluate("() => GIS.map.getZoom()") >= 16
    popup = run.page.locator(".leaflet-popup-content").inner_text()
    with maps_engine.connect() as conn:
        address, grade = conn.execute(text(
            "SELECT address, safety_grade FROM layer_buildings WHERE id = :i"),
            {"i": hazards[0]}).one()
    assert address in popup and f"安全等级\t{grade}" in popup
    run.page.screenshot(path=str(artifacts / "map_housing.png"))
    run.check_clean()


def test_housing_filter_by_district_and_grade(run, maps_server, maps_engine):
    with maps_engine.connect() as conn:
        district, n = conn.execute(text(
            "SELECT district, count(*) FROM layer_buildings WHERE safety_grade IN "
            "('C', 'D') GROUP BY district ORDER BY count(*) DESC LIMIT 1")).one()
        grades = dict(conn.execute(text(
            "SELECT id, safety_grade FROM layer_buildings")).all())
    expected = [i for kind, i in _hazard_rows(maps_engine, district)
                if kind == "building" and grades[i] in ("C", "D")]
    run.open(f"{maps_server}/maps/housing?district={district}&grade=C&grade=D")
    run.check_clean()
    props = run.evaluate("""() => GIS.layers.buildings.getLayers().map(
        l => [l.feature.properties.district, l.feature.properties.safety_grade])""")
    assert len(props) == n
    assert all(d == district and g in ("C", "D") for d, g in props)
    rows = run.evaluate("""() => Array.from(document.querySelectorAll(
        '#gis-hazards tr[data-kind=building]')).map(r => Number(r.dataset.id))""")
    assert rows == expected[: len(rows)] and rows
    # the form keeps the filter
    assert run.page.locator("select[name=district]").input_value() == district
    checked = run.evaluate("""() => Array.from(document.querySelectorAll(
        'input[name=grade]:checked')).map(i => i.value)""")
    assert checked == ["C", "D"]


def test_housing_rejects_unknown_grade(maps_server):
    r = httpx.get(maps_server + "/maps/housing?grade=E", timeout=30)
    assert r.status_code == 400 and "E" in r.json()["description"]


def test_large_layer_comes_from_geojson_tiles(run, maps_server, maps_engine,
                                              map_settings):
    """Above the inline limit the buildings are drawn from tiles, not embedded."""
    map_settings(inline_max_features=10)
    with maps_engine.connect() as conn:
        x, y = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Centroid(ST_Collect(geom)) p "
            "FROM layer_buildings) s")).one()
    run.open(f"{maps_server}/maps/housing")
    html = run.page.content()
    assert html.count('"safety_grade"') < 50  # not embedded
    run.evaluate("([x, y]) => GIS.map.setView([y, x], 15, {animate: false})", [x, y])
    run.page.wait_for_function("() => GIS.layers.buildings.loadedTiles > 0 && "
                               "GIS.layers.buildings.idle()")
    run.page.wait_for_load_state("networkidle")
    drawn = run.evaluate("() => GIS.layers.buildings.featureCount()")
    assert drawn > 0
    assert any("/tiles/buildings/15/" in u and u.endswith(".geojson")
               for u in run.requests)
    assert run.evaluate("() => GIS.layers.buildings.failedTiles") == 0
    run.check_clean()


# -- analyst --------------------------------------------------------------------------


def test_analyst_page(run, maps_server, maps_engine, artifacts):
    with maps_engine.connect() as conn:
        rasters = conn.execute(text("SELECT count(*) FROM raster_layers")).scalar()
    run.open(f"{maps_server}/maps/analyst")
    run.check_clean()
    overlays = run.evaluate("""() => Array.from(document.querySelectorAll(
        '.leaflet-control-layers-overlays label')).map(l => l.innerText.trim())""")
    assert len(overlays) == len(all_layers()) + rasters
    assert any("综合风险网格" in o for o in overlays)
    # the composite raster is on; the grid's cells come from tiles when ticked
    assert run.evaluate("() => GIS.map.hasLayer(GIS.layers['raster:risk_composite'])")
    assert not run.evaluate("() => GIS.map.hasLayer(GIS.layers.risk_grid)")
    run.page.locator(".leaflet-control-layers-overlays label",
                     has_text="综合风险网格").locator("input").check()
    run.page.wait_for_function("() => GIS.layers.risk_grid.loadedTiles > 0 && "
                               "GIS.layers.risk_grid.idle()")
    with maps_engine.connect() as conn:
        cells = conn.execute(text("SELECT count(*) FROM layer_risk_grid")).scalar()
    drawn = run.evaluate("() => GIS.layers.risk_grid.featureCount()")
    assert 0 < drawn and any("/tiles/risk_grid/" in u for u in run.requests)
    assert cells > 1000  # above the analyst page's inline limit: tiled
    links = run.evaluate("""() => Array.from(document.querySelectorAll(
        '#gis-ogc a')).map(a => a.getAttribute('href'))""")
    assert "/collections" in links and "/api.html" in links

    # a drawn box offers the chosen layer's features inside it
    with maps_engine.connect() as conn:
        box = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
            "ST_Extent(geom) e FROM (SELECT geom FROM layer_buildings ORDER BY id "
            "LIMIT 50) b) x")).one()
        inside = conn.execute(text(
            "SELECT count(*) FROM layer_buildings WHERE geom && "
            "ST_MakeEnvelope(:a, :b, :c, :d, 4326) AND ST_Intersects(geom, "
            "ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
            dict(zip("abcd", [round(v, 6) for v in box], strict=True))).scalar()
    run.page.select_option("#gis-download select", "buildings")
    run.evaluate("""([w, s, e, n]) => { GIS.map.fire('draw:created', {
        layer: L.rectangle([[s, w], [n, e]]), layerType: 'rectangle'}); }""", list(box))
    hrefs = run.evaluate("""() => Object.fromEntries(Array.from(
        document.querySelectorAll('#gis-download a')).map(
        a => [a.dataset.format, a.getAttribute('href')]))""")
    assert set(hrefs) == {"json", "csv", "gpkg"}
    assert all("/collections/buildings/items?bbox=" in h for h in hrefs.values())
    fc = httpx.get(maps_server + hrefs["json"], timeout=60).json()
    assert len(fc["features"]) == inside > 0
    csv = httpx.get(maps_server + hrefs["csv"], timeout=60)
    assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == inside + 1
    gpkg = httpx.get(maps_server + hrefs["gpkg"], timeout=60)
    assert gpkg.status_code == 200 and gpkg.content[:16] == b"SQLite format 3\x00"
    run.page.screenshot(path=str(artifacts / "map_analyst.png"))
    run.check_clean()


def test_raster_overlay_png(maps_server, maps_engine):
    with maps_engine.connect() as conn:
        name = conn.execute(text("SELECT name FROM raster_layers LIMIT 1")).scalar()
    r = httpx.get(f"{maps_server}/maps/rasters/{name}.png", timeout=60)
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert httpx.get(f"{maps_server}/maps/rasters/none.png").status_code == 404


# -- GCJ-02 basemap -------------------------------------------------------------------


def test_gcj02_basemap_shifts_the_data(run, maps_server, maps_engine, map_settings):
    """With a GCJ-02 basemap, inline data and the page's formula are shifted."""
    # a local stand-in for AMap tiles keeps the test offline
    map_settings(basemap=f"{maps_server}/static/vendor/leaflet/images/layers.png"
                 "?z={z}&x={x}&y={y}", basemap_datum="gcj02")
    chief = _busiest_chief(maps_engine)
    with maps_engine.connect() as conn:
        code, geom = conn.execute(text(
            "SELECT code, ST_AsGeoJSON(geom) FROM layer_rivers WHERE chief_id = :c "
            "ORDER BY code LIMIT 1"), {"c": chief}).one()
    first = json.loads(geom)["coordinates"][0][0]
    run.open(f"{maps_server}/maps/river-chief?chief={chief}")
    run.check_clean()
    assert any("/static/vendor/leaflet/images/layers.png?z=" in u for u in run.requests)
    drawn = run.evaluate("""(code) => {
        const l = GIS.layers.segments.getLayers().find(
            x => x.feature.properties.code === code);
        const ll = l.getLatLngs().flat(3)[0];
        return [ll.lng, ll.lat];
    }""", code)
    expected = wgs84_to_gcj02(np.array([first]))[0]
    assert abs(drawn[0] - expected[0]) < 2e-6 and abs(drawn[1] - expected[1]) < 2e-6
    assert abs(drawn[0] - first[0]) > 0.003  # really shifted (~500 m here)

    # the JS port agrees with ingest.crs both ways
    points = [[113.2644, 23.1291], [113.9, 22.5], [116.4, 39.9], [100.0, 60.0]]
    js = run.evaluate("(pts) => pts.map(p => GCJ02.toGcj(p[0], p[1]))", points)
    np.testing.assert_allclose(js, wgs84_to_gcj02(np.array(points)), atol=1e-9)
    back = run.evaluate("(pts) => pts.map(p => GCJ02.toWgs(p[0], p[1]))", js)
    np.testing.assert_allclose(back, points, atol=1e-8)
