"""Vector and GeoJSON tiles, their cache and ETags, against a real PostGIS.

Test features lie around 100.0E 10.0N (open sea), away from the data other
tests load, and carry ``source = 'tiles-test'``.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import mapbox_vector_tile
import morecantile
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from gis_server.app import create_app
from gis_server.auth.settings import AuthSettings
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings, TileSettings
from layers import all_layers

WMQ = morecantile.tms.get("WebMercatorQuad")
LON, LAT = 100.0, 10.0
Z = 14
TILE = WMQ.tile(LON, LAT, Z)  # x, y, z
SOURCE = "tiles-test"

BUILDING_PROPS = {
    "address": "1 Test Road",
    "district": "Test",
    "structure": "concrete",
    "floors": 6,
    "height_m": 18.5,
    "built_year": 1998,
    "safety_grade": "C",
    "appraised_on": "2024-05-01",
    "historic": False,
    "use": "residential",
}


def make_app(db_settings: DatabaseSettings, tile_settings: TileSettings) -> FastAPI:
    """The server's app with these tile settings (read at start-up)."""
    app = create_app(
        db=db_settings,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(anonymous="read"),  # tiles, not sign-in, are tested here
        limits=LimitSettings(rate_limit=False),
    )
    app.state.tile_settings = tile_settings
    return app


INSERT_BUILDING = text(
    "INSERT INTO layer_buildings (source, source_id, address, district, structure,"
    " floors, height_m, built_year, safety_grade, appraised_on, historic, use, geom)"
    " VALUES (:s, :sid, :address, :district, :structure, :floors, :height_m,"
    " :built_year, :safety_grade, :appraised_on, :historic, :use,"
    " ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))) RETURNING id"
)


@pytest.fixture(scope="module")
def buildings(engine) -> Iterator[list[int]]:
    """20 small buildings inside the test tile, in a 5 x 4 grid."""
    bounds = WMQ.bounds(TILE)
    dx = (bounds.right - bounds.left) / 6
    dy = (bounds.top - bounds.bottom) / 5
    ids = []
    with engine.begin() as conn:
        for i in range(5):
            for j in range(4):
                x0 = bounds.left + dx * (i + 0.5)
                y0 = bounds.bottom + dy * (j + 0.5)
                params = {"s": SOURCE, "sid": f"b{i}-{j}", **BUILDING_PROPS}
                params.update(x0=x0, y0=y0, x1=x0 + 0.0005, y1=y0 + 0.0004)
                ids.append(conn.execute(INSERT_BUILDING, params).scalar())
    yield ids
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM layer_buildings WHERE source = :s"), {"s": SOURCE}
        )


@pytest.fixture(scope="module")
def plants(engine) -> Iterator[None]:
    """30 plants within ~50 m of each other and one 3 km away."""
    with engine.begin() as conn:
        for i in range(30):
            conn.execute(
                text(
                    "INSERT INTO layer_plants (source, source_id, enterprise, geom)"
                    " VALUES (:s, :sid, 'Cluster Co',"
                    " ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
                ),
                {
                    "s": SOURCE,
                    "sid": f"p{i}",
                    "x": LON + 0.0001 + i * 1e-5,
                    "y": LAT + 0.0001 + (i % 5) * 1e-5,
                },
            )
        conn.execute(
            text(
                "INSERT INTO layer_plants (source, source_id, enterprise, credit_score,"
                " geom) VALUES (:s, 'lonely', 'Lonely Co', 88.5, "
                "ST_SetSRID(ST_MakePoint(:x, :y), 4326))"
            ),
            {"s": SOURCE, "x": LON + 0.03, "y": LAT + 0.03},
        )
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_plants WHERE source = :s"), {"s": SOURCE})


@pytest.fixture(scope="module")
def client(db_settings, buildings, plants) -> Iterator[TestClient]:
    app = make_app(db_settings, TileSettings(cache_bytes=16 * 1024 * 1024))
    with TestClient(app) as c:
        assert app.state.tile_service.versions.wait_live(10)
        yield c


def ogc_url(layer: str, z: int, x: int, y: int) -> str:
    return f"/collections/{layer}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def decode(content: bytes) -> dict:
    return mapbox_vector_tile.decode(content)


def test_mvt_tile_holds_declared_properties_and_id(client, buildings):
    r = client.get(ogc_url("buildings", Z, TILE.x, TILE.y))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = decode(r.content)["buildings"]
    assert layer["extent"] == 4096
    ids = {f["id"] for f in layer["features"]}
    assert ids == set(buildings)
    props = layer["features"][0]["properties"]
    expected = {**BUILDING_PROPS}
    assert props == expected
    assert r.headers["x-tile-features"] == "20"
    assert "x-tile-truncated" not in r.headers
    assert layer["features"][0]["geometry"]["type"] == "Polygon"


def test_xyz_alias_serves_the_same_tile(client):
    ogc = client.get(ogc_url("buildings", Z, TILE.x, TILE.y))
    xyz = client.get(f"/tiles/buildings/{Z}/{TILE.x}/{TILE.y}.pbf")
    assert xyz.status_code == 200
    assert decode(xyz.content) == decode(ogc.content)
    assert xyz.headers["etag"] == ogc.headers["etag"]


def test_geojson_tile(client, buildings):
    for url in (
        ogc_url("buildings", Z, TILE.x, TILE.y) + "?f=geojson",
        f"/tiles/buildings/{Z}/{TILE.x}/{TILE.y}.geojson",
    ):
        r = client.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/geo+json"
        fc = r.json()
        assert fc["type"] == "FeatureCollection"
        assert {f["id"] for f in fc["features"]} == set(buildings)
        feature = fc["features"][0]
        assert feature["properties"] == BUILDING_PROPS
        lon, lat = feature["geometry"]["coordinates"][0][0][0]
        b = WMQ.bounds(TILE)
        assert b.left - 0.01 < lon < b.right + 0.01
        assert b.bottom - 0.01 < lat < b.top + 0.01


def test_neighbouring_tile_is_empty(client):
    r = client.get(ogc_url("buildings", Z, TILE.x + 3, TILE.y))
    assert r.status_code == 204
    assert r.content == b""
    g = client.get(ogc_url("buildings", Z, TILE.x + 3, TILE.y) + "?f=geojson")
    assert g.json() == {"type": "FeatureCollection", "features": []}


def test_feature_cap_is_reported_when_it_bites(db_settings, buildings):
    app = make_app(db_settings, TileSettings(feature_cap=5, listen=False))
    with TestClient(app) as c:
        r = c.get(ogc_url("buildings", Z, TILE.x, TILE.y))
        assert len(decode(r.content)["buildings"]["features"]) == 5
        assert r.headers["x-tile-feature-cap"] == "5"
        assert "feature cap 5" in r.headers["x-tile-truncated"]
        g = c.get(ogc_url("buildings", Z, TILE.x, TILE.y) + "?f=geojson")
        assert len(g.json()["features"]) == 5
        assert g.headers["x-tile-feature-cap"] == "5"
    app = make_app(db_settings, TileSettings(feature_cap=20, listen=False))
    with TestClient(app) as c:
        r = c.get(ogc_url("buildings", Z, TILE.x, TILE.y))
        assert len(decode(r.content)["buildings"]["features"]) == 20
        assert "x-tile-truncated" not in r.headers  # exactly at the cap: all there


def test_points_cluster_at_low_zoom(client):
    z = 10
    t = WMQ.tile(LON, LAT, z)
    r = client.get(ogc_url("plants", z, t.x, t.y))
    features = decode(r.content)["plants"]["features"]
    counts = sorted(f["properties"]["point_count"] for f in features)
    assert counts == [1, 30]
    single = next(f for f in features if f["properties"]["point_count"] == 1)
    assert single["properties"]["enterprise"] == "Lonely Co"
    assert single["properties"]["credit_score"] == 88.5
    assert "id" in single
    cluster = next(f for f in features if f["properties"]["point_count"] == 30)
    assert "enterprise" not in cluster["properties"]
    g = client.get(ogc_url("plants", z, t.x, t.y) + "?f=geojson").json()
    assert sorted(f["properties"]["point_count"] for f in g["features"]) == [1, 30]
    big = next(f for f in g["features"] if f["properties"]["point_count"] == 30)
    assert "id" not in big and big["geometry"]["type"] == "Point"
    lon, lat = big["geometry"]["coordinates"]
    assert abs(lon - (LON + 0.0003)) < 0.001 and abs(lat - (LAT + 0.0001)) < 0.001
    # above the cluster zoom every point is its own feature
    z = 16
    t = WMQ.tile(LON + 0.0001, LAT + 0.0001, z)
    r = client.get(ogc_url("plants", z, t.x, t.y))
    features = decode(r.content)["plants"]["features"]
    assert len(features) == 30
    assert all("point_count" not in f["properties"] for f in features)


def test_etag_and_if_none_match(client):
    url = ogc_url("buildings", Z, TILE.x, TILE.y)
    first = client.get(url)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == TileSettings().cache_control
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = client.get(url, headers={"If-None-Match": 'W/"something-else"'})
    assert other.status_code == 200
    # the ETag names the tile: another tile has another tag
    assert (
        client.get(ogc_url("buildings", Z, TILE.x + 1, TILE.y)).headers["etag"] != etag
    )


def _wait_for_new_etag(client, url: str, old: str, timeout: float = 3.0):
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(url)
        if r.headers["etag"] != old or time.monotonic() > deadline:
            return r
        time.sleep(0.01)


def test_insert_and_update_invalidate_the_cached_tile(client, engine):
    url = ogc_url("buildings", Z, TILE.x, TILE.y)
    before = client.get(url)
    service = client.app.state.tile_service
    hits = service.cache.hits
    assert client.get(url).headers["etag"] == before.headers["etag"]
    assert service.cache.hits == hits + 1  # served from the cache
    b = WMQ.bounds(TILE)
    with engine.begin() as conn:
        new_id = conn.execute(
            text(
                "INSERT INTO layer_buildings (source, source_id, address, geom) VALUES "
                "(:s, 'late', 'Late Street', ST_Multi(ST_MakeEnvelope(:x, :y, :x2, :y2,"
                " 4326))) RETURNING id"
            ),
            {
                "s": SOURCE,
                "x": b.left + 0.001,
                "y": b.bottom + 0.001,
                "x2": b.left + 0.0015,
                "y2": b.bottom + 0.0015,
            },
        ).scalar()
    started = time.monotonic()
    after = _wait_for_new_etag(client, url, before.headers["etag"])
    assert time.monotonic() - started < 1.0, "invalidation took more than a second"
    assert after.headers["etag"] != before.headers["etag"]
    features = decode(after.content)["buildings"]["features"]
    assert new_id in {f["id"] for f in features}
    assert after.headers["x-tile-features"] == "21"

    with engine.begin() as conn:
        conn.execute(
            text("UPDATE layer_buildings SET address = 'Renamed' WHERE id = :i"),
            {"i": new_id},
        )
    updated = _wait_for_new_etag(client, url, after.headers["etag"])
    feature = next(
        f for f in decode(updated.content)["buildings"]["features"] if f["id"] == new_id
    )
    assert feature["properties"]["address"] == "Renamed"
    # the old tag is answered with the new content, not a 304
    assert (
        client.get(url, headers={"If-None-Match": before.headers["etag"]}).status_code
        == 200
    )

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_buildings WHERE id = :i"), {"i": new_id})
    gone = _wait_for_new_etag(client, url, updated.headers["etag"])
    assert new_id not in {
        f["id"] for f in decode(gone.content)["buildings"]["features"]
    }


def test_without_listener_versions_are_read_per_request(db_settings, engine):
    app = make_app(db_settings, TileSettings(listen=False))
    url = ogc_url("buildings", Z, TILE.x, TILE.y)
    with TestClient(app) as c:
        before = c.get(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE layer_buildings SET floors = floors + 1 WHERE source = :s"
                ),
                {"s": SOURCE},
            )
        after = c.get(url)  # no waiting: the version is read from the table
        assert after.headers["etag"] != before.headers["etag"]
        floors = {
            f["properties"]["floors"]
            for f in decode(after.content)["buildings"]["features"]
        }
        assert floors == {BUILDING_PROPS["floors"] + 1}
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE layer_buildings SET floors = floors - 1 WHERE source = :s"
                ),
                {"s": SOURCE},
            )


def test_gzip_when_accepted_only(client):
    url = ogc_url("buildings", Z, TILE.x, TILE.y)
    raw = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in raw.headers["vary"]
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert decode(plain.content) == decode(raw.content)
    # the compressed bytes on the wire are a valid gzip stream of the same tile
    with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as s:
        wire = b"".join(s.iter_raw())
    assert gzip.decompress(wire) == plain.content


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (ogc_url("buildings", 10, 0, 0), 404),  # below the layer's min zoom 12
        (ogc_url("buildings", 25, 0, 0), 404),  # beyond the tile matrix set
        (ogc_url("buildings", 14, 1 << 14, 0), 404),  # column out of the matrix
        (ogc_url("buildings", 14, 0, -1), 404),  # negative row
        ("/collections/buildings/tiles/WebMercatorQuad/14/a/1", 400),
        ("/tiles/buildings/14/1/x.pbf", 400),
        ("/tiles/buildings/23/1/1.pbf", 404),  # above max zoom 22
        (ogc_url("nowhere", 14, 1, 1), 404),
        ("/collections/buildings/tiles/WorldCRS84Quad/1/0/0", 404),
        (ogc_url("buildings", 14, 1, 1) + "?f=png", 400),
        ("/tileMatrixSets/NoSuchSet", 404),
        ("/collections/nowhere/tiles", 404),
        ("/tiles/nowhere/tilejson.json", 404),
    ],
)
def test_bad_tiles_are_ogc_errors(client, url, status):
    r = client.get(url)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "description"}
    assert body["code"] in ("NotFound", "InvalidParameterValue")
    assert "Traceback" not in body["description"]


def test_every_declared_layer_is_served(client):
    for spec in all_layers():
        z = max(spec.min_zoom, 10)
        t = WMQ.tile(113.3, 23.13, z)
        for url in (
            ogc_url(spec.id, z, t.x, t.y),
            ogc_url(spec.id, z, t.x, t.y) + "?f=geojson",
            f"/tiles/{spec.id}/tilejson.json",
            f"/collections/{spec.id}/tiles/WebMercatorQuad",
        ):
            assert client.get(url).status_code in (200, 204), url


def test_tilejson(client):
    tj = client.get("/collections/buildings/tiles/WebMercatorQuad/tilejson.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["minzoom"] == 12 and tj["maxzoom"] == 22
    assert tj["tiles"][0].endswith(
        "/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}"
    )
    layer = tj["vector_layers"][0]
    assert layer["id"] == "buildings"
    assert set(layer["fields"]) == set(BUILDING_PROPS)
    west, south, east, north = tj["bounds"]
    assert west <= LON <= east and south <= LAT <= north
    xyz = client.get("/tiles/plants/tilejson.json").json()
    assert xyz["tiles"][0].endswith("/tiles/plants/{z}/{x}/{y}.pbf")
    assert "point_count" in xyz["vector_layers"][0]["fields"]


def test_tile_matrix_sets_and_tilesets(client):
    listing = client.get("/tileMatrixSets").json()
    assert [s["id"] for s in listing["tileMatrixSets"]] == ["WebMercatorQuad"]
    tms = client.get("/tileMatrixSets/WebMercatorQuad").json()
    assert tms["id"] == "WebMercatorQuad"
    assert len(tms["tileMatrices"]) == 25
    sets = client.get("/collections/buildings/tiles").json()
    assert sets["tilesets"][0]["dataType"] == "vector"
    items = [ln for ln in sets["tilesets"][0]["links"] if ln["rel"] == "item"]
    assert any(ln["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}") for ln in items)
    meta = client.get("/collections/buildings/tiles/WebMercatorQuad").json()
    layer = meta["layers"][0]
    assert layer["minTileMatrix"] == "12"
    assert layer["geometryDimension"] == 2
    assert "safety_grade" in layer["propertiesSchema"]["properties"]


def test_cache_hits_take_the_fast_path(db_settings, buildings, caplog):
    app = make_app(db_settings, TileSettings())
    app.state.server_settings = ServerSettings(log_requests=True)
    url = ogc_url("buildings", Z, TILE.x, TILE.y)
    with TestClient(app) as c:
        assert app.state.tile_service.versions.wait_live(10)
        routed = c.get(url)
        with caplog.at_level("INFO", logger="gis_server.requests"):
            fast = c.get(url)
        assert routed.headers["x-tile-cache"] == "miss"
        assert fast.headers["x-tile-cache"] == "hit"
        hits = [r for r in caplog.records if getattr(r, "cache", None) == "hit"]
        assert len(hits) == 1 and hits[0].path == url
        assert hits[0].layer == "buildings" and hits[0].status == 200
        assert fast.content == routed.content
        for header in (
            "etag",
            "content-type",
            "content-encoding",
            "x-tile-features",
            "cache-control",
            "vary",
        ):
            assert fast.headers[header] == routed.headers[header], header
        assert (
            c.get(url, headers={"If-None-Match": fast.headers["etag"]}).status_code
            == 304
        )
        xyz = c.get(f"/tiles/buildings/{Z}/{TILE.x}/{TILE.y}.pbf")
        assert xyz.content == routed.content
        # a query string the fast path does not know goes to the checked route
        assert c.get(url + "?f=png").status_code == 400
        assert c.get(url + "?f=geojson").json()["type"] == "FeatureCollection"


def test_killed_connections_are_replaced_without_an_error(client, engine, caplog):
    url = ogc_url("buildings", Z, TILE.x + 2, TILE.y + 2)  # not cached yet
    client.get(ogc_url("buildings", Z, TILE.x, TILE.y + 2))  # a pooled connection
    with engine.begin() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'gis-server-tiles' "
                "AND datname = current_database()"
            )
        ).scalar()
    assert killed >= 1
    with caplog.at_level("INFO", logger="gis_server.api.tiles"):
        assert client.get(url).status_code in (200, 204)
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_unreachable_database_is_503(db_settings):
    gone = DatabaseSettings(url="postgresql+psycopg2://gis@127.0.0.1:1/none")
    app = make_app(gone, TileSettings())
    with TestClient(app) as c:
        r = c.get(ogc_url("buildings", Z, TILE.x, TILE.y))
        assert r.status_code == 503
        assert r.json()["code"] == "ServiceUnavailable"
        assert "127.0.0.1" not in r.json()["description"]
