"""The map pages behind sign-in, in a real browser.

A housing officer signs in with the form, lands on the housing page, and the
page's tiles -- fetched by the browser with the sign-in cookie -- hold only
the buildings of the officer's district; a river chief is refused the page.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from test_maps_pages import PageRun

from gis_server.app import create_app
from gis_server.auth import accounts
from gis_server.auth.settings import AuthSettings
from gis_server.limits import LimitSettings
from gis_server.settings import ServerSettings
from map_ui.settings import MapSettings


@pytest.fixture(scope="module")
def signed_server(
    maps_db_settings, maps_engine, serve_app
) -> Iterator[tuple[str, str]]:
    """The maps database served with sign-in required; (url, district)."""
    with maps_engine.begin() as conn:
        district = conn.execute(text(
            "SELECT district FROM layer_buildings WHERE district IS NOT NULL "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).scalar_one()
        for name, role, extra in (
            ("page-housing", "housing_officer", {"district": district}),
            ("page-chief", "river_chief", {"chief_id": "nobody"}),
        ):
            try:
                accounts.get_user(conn, name)
            except Exception:
                accounts.add_user(conn, name, role, f"{name}-password", **extra)
    app = create_app(db=maps_db_settings, server=ServerSettings(log_requests=False),
                     auth=AuthSettings(), limits=LimitSettings(rate_limit=False))
    app.state.map_settings = MapSettings(basemap="none", inline_max_features=10)
    server, thread, url = serve_app(app)
    yield url, district
    server.should_exit = True
    thread.join(timeout=10)


def _sign_in(run: PageRun, url: str, name: str, next_page: str) -> None:
    response = run.page.goto(f"{url}{next_page}", wait_until="load")
    assert response is not None and "/auth/login" in run.page.url  # sent to sign in
    run.page.fill("#u", name)
    run.page.fill("#p", f"{name}-password")
    run.page.click("button[type=submit]")
    run.page.wait_for_load_state("load")


def test_housing_officer_signs_in_and_sees_their_district(
    browser, signed_server, maps_engine
):
    url, district = signed_server
    run = PageRun(browser)
    statuses: list[tuple[str, int]] = []
    run.page.on("response", lambda r: statuses.append((r.url, r.status)))
    try:
        _sign_in(run, url, "page-housing", "/maps/housing")
        assert run.page.url.endswith("/maps/housing")
        run.page.wait_for_function("window.GIS && window.GIS.map")
        with maps_engine.connect() as conn:
            x, y = conn.execute(text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Centroid(ST_Collect(geom)) p "
                "FROM layer_buildings WHERE district = :d) s"), {"d": district}).one()
        run.evaluate("([x, y]) => GIS.map.setView([y, x], 15, {animate: false})",
                     [x, y])
        run.page.wait_for_function("() => GIS.layers.buildings.loadedTiles > 0 && "
                                   "GIS.layers.buildings.idle()")
        run.page.wait_for_load_state("networkidle")
        assert run.evaluate("() => GIS.layers.buildings.featureCount()") > 0
        assert run.evaluate("() => GIS.layers.buildings.failedTiles") == 0
        tiles = [s for u, s in statuses if "/tiles/buildings/" in u]
        assert tiles and all(s in (200, 204) for s in tiles)
        # what the browser drew is what the cookie may see: one district
        drawn = run.evaluate(
            "() => { const seen = new Set(); GIS.layers.buildings._group.eachLayer("
            "g => g.eachLayer(f => seen.add(f.feature.properties.district))); "
            "return [...seen]; }"
        )
        assert drawn == [district]
        run.check_clean()
    finally:
        run.close()


def test_river_chief_is_refused_the_housing_page(browser, signed_server):
    url, _ = signed_server
    run = PageRun(browser)
    try:
        _sign_in(run, url, "page-chief", "/maps/housing")
        assert run.page.locator("body").inner_text().count("NotFound") == 1
        # without ?chief= a chief's page is their own map, not the list
        run.page.goto(f"{url}/maps/river-chief", wait_until="load")
        assert "assigned to chief 'nobody'" in run.page.locator("body").inner_text()
    finally:
        run.close()
