"""Tiles over real HTTP from the server run by uvicorn, read with urllib and
decoded with mapbox-vector-tile (the features API's session fixtures)."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import mapbox_vector_tile
import morecantile
from sqlalchemy import text

WMQ = morecantile.tms.get("WebMercatorQuad")


def fetch(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_tiles_over_http(live_server, fixture_data, api_engine):
    first = fixture_data["buildings"][0]
    with api_engine.connect() as conn:
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(geom) c "
                "FROM layer_buildings WHERE id = :i) s"
            ),
            {"i": first},
        ).one()
    t = WMQ.tile(lon, lat, 16)

    status, _, body = fetch(f"{live_server}/tiles/buildings/tilejson.json")
    assert status == 200
    tilejson = json.loads(body)
    url = (
        tilejson["tiles"][0]
        .replace("{z}", str(t.z))
        .replace("{x}", str(t.x))
        .replace("{y}", str(t.y))
    )
    status, headers, body = fetch(url, {"Accept-Encoding": "gzip"})
    assert status == 200
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    layer = mapbox_vector_tile.decode(body)["buildings"]
    assert first in {f["id"] for f in layer["features"]}

    status, _, body = fetch(url, {"If-None-Match": headers["etag"]})
    assert status == 304 and body == b""

    status, _, body = fetch(f"{live_server}/tiles/buildings/3/0/0.pbf")
    assert status == 404
    assert json.loads(body)["code"] == "NotFound"
