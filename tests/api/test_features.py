"""Collections, items and one item: each parameter against the fixture data.

The fixture buildings (see conftest) are 30 squares in a 6 x 5 grid; building
``i`` has ``floors = i + 1``, grade ``"ABCD"[i % 4]``, no appraisal date when
``i % 5 == 4`` and is in 越秀区 when ``i`` is odd.
"""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from features_fixtures import GRADES, N_BUILDINGS, building_box, building_row
from pyproj import Transformer
from sqlalchemy import text

from gis_server.features import models
from layers import all_layers

ITEMS = "/collections/buildings/items"


def features(client, url: str, **params) -> dict:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    return models.FeatureCollection.model_validate(r.json()).model_dump()


def floors_of(doc: dict) -> list[int]:
    return [f["properties"]["floors"] for f in doc["features"]]


# -- collections ------------------------------------------------------------


def test_collections_list_every_layer(client):
    doc = models.Collections.model_validate(client.get("/collections").json())
    assert [c.id for c in doc.collections] == [s.id for s in all_layers()]


def test_collection_document(client):
    r = client.get("/collections/buildings")
    doc = models.Collection.model_validate(r.json())
    assert doc.datetimeField == "appraised_on"
    assert doc.datetimeFields == ["appraised_on", "updated_at"]
    assert "http://www.opengis.net/def/crs/EPSG/0/4490" in doc.crs
    minx, _, _, maxy = doc.extent.spatial.bbox[0]
    assert minx == pytest.approx(113.30, abs=1e-3)
    assert maxy == pytest.approx(23.109, abs=1e-3)
    assert doc.extent.temporal.interval[0][0] == "2020-01-01T00:00:00Z"
    rels = {link.rel for link in doc.links}
    assert {
        "self",
        "items",
        "http://www.opengis.net/def/rel/ogc/1.0/queryables",
    } <= rels


def test_unknown_collection_is_404(client):
    for url in (
        "/collections/nope",
        "/collections/nope/items",
        "/collections/nope/items/1",
        "/collections/nope/queryables",
    ):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.json()["code"] == "NotFound"


def test_queryables_from_the_declaration(client):
    r = client.get("/collections/buildings/queryables")
    assert r.headers["content-type"] == "application/schema+json"
    doc = models.Queryables.model_validate(r.json())
    assert doc.properties["safety_grade"]["enum"] == list(GRADES)
    assert doc.properties["floors"]["type"] == "integer"
    assert doc.properties["appraised_on"]["format"] == "date"
    assert "extra" not in doc.properties
    schema = client.get("/collections/buildings/schema").json()
    assert schema["properties"]["extra"]["type"] == "object"


@pytest.mark.parametrize("spec", all_layers(), ids=lambda s: s.id)
def test_every_layer_serves_items(client, spec):
    r = client.get(f"/collections/{spec.id}/items")
    assert r.status_code == 200, r.text
    models.FeatureCollection.model_validate(r.json())
    assert client.get(f"/collections/{spec.id}/queryables").status_code == 200


# -- items: paging ------------------------------------------------------------


def test_items_default_page(client):
    doc = features(client, ITEMS)
    assert doc["numberReturned"] == 10
    assert doc["numberMatched"] == N_BUILDINGS
    assert doc["numberMatchedExact"] is True
    assert floors_of(doc) == list(range(1, 11))  # id order


def test_feature_shape(client, fixture_data):
    doc = features(client, ITEMS, limit=1)
    feature = doc["features"][0]
    assert feature["id"] == fixture_data["buildings"][0]
    props = feature["properties"]
    row = building_row(0)
    for name in ("address", "district", "safety_grade", "floors", "historic"):
        assert props[name] == row[name]
    assert props["appraised_on"] == "2020-01-01"
    assert props["extra"] == {"name:en": "Building 0", "note": "测试"}
    assert "updated_at" in props
    assert isinstance(props["height_m"], float)
    shape = shapely.geometry.shape(feature["geometry"])
    expected = shapely.MultiPolygon([shapely.box(*building_box(0))])
    assert shape.geom_type == "MultiPolygon"
    assert shapely.hausdorff_distance(shape, expected) < 1e-7  # 7 decimals out


def test_paging_links_walk_every_feature(client):
    seen: list[int] = []
    url, params = ITEMS, {"limit": 7}
    pages = 0
    while url:
        r = client.get(url, params=params)
        doc = r.json()
        seen += [f["id"] for f in doc["features"]]
        nxt = [link["href"] for link in doc["links"] if link["rel"] == "next"]
        url, params = (nxt[0], None) if nxt else (None, None)
        pages += 1
    assert pages == 5
    assert len(seen) == N_BUILDINGS == len(set(seen))


def test_prev_link(client):
    doc = features(client, ITEMS, limit=5, offset=10)
    links = {link["rel"]: link["href"] for link in doc["links"]}
    assert "offset=5" in links["prev"]
    assert "offset=15" in links["next"]
    assert floors_of(doc) == [11, 12, 13, 14, 15]


def test_last_page_has_no_next(client):
    doc = features(client, ITEMS, limit=10, offset=20)
    assert doc["numberReturned"] == 10
    assert "next" not in {link["rel"] for link in doc["links"]}


def test_limit_over_maximum_is_400_not_clamped(client):
    r = client.get(ITEMS, params={"limit": 1001})
    assert r.status_code == 400
    assert "maximum" in r.json()["description"]
    assert client.get(ITEMS, params={"limit": 1000}).status_code == 200


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": "x"}, {"offset": -1}])
def test_bad_paging_is_400(client, params):
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400
    assert set(r.json()) == {"code", "description"}


# -- items: bbox and CRS ---------------------------------------------------------


def test_bbox(client):
    doc = features(client, ITEMS, bbox="113.2995,23.0995,113.3035,23.1015", limit=100)
    assert sorted(floors_of(doc)) == [1, 2]


def test_bbox_in_epsg4326_is_latitude_first(client):
    doc = features(
        client,
        ITEMS,
        bbox="23.0995,113.2995,23.1015,113.3035",
        **{"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
        limit=100,
    )
    assert sorted(floors_of(doc)) == [1, 2]


def test_bbox_in_web_mercator(client):
    to_3857 = Transformer.from_crs(4326, 3857, always_xy=True)
    x0, y0 = to_3857.transform(113.2995, 23.0995)
    x1, y1 = to_3857.transform(113.3035, 23.1015)
    doc = features(
        client,
        ITEMS,
        bbox=f"{x0},{y0},{x1},{y1}",
        **{"bbox-crs": "EPSG:3857"},
        limit=100,
    )
    assert sorted(floors_of(doc)) == [1, 2]


def test_bbox_with_six_numbers(client):
    doc = features(client, ITEMS, bbox="113.2995,23.0995,0,113.3035,23.1015,100")
    assert sorted(floors_of(doc)) == [1, 2]


def test_empty_bbox(client):
    doc = features(client, ITEMS, bbox="0,0,1,1")
    assert doc["features"] == [] and doc["numberMatched"] == 0


@pytest.mark.parametrize(
    ("crs", "first_point"),
    [
        (None, (113.30, 23.10)),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", (113.30, 23.10)),
        ("http://www.opengis.net/def/crs/EPSG/0/4326", (23.10, 113.30)),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", (23.10, 113.30)),
        (
            "http://www.opengis.net/def/crs/EPSG/0/3857",
            Transformer.from_crs(4326, 3857, always_xy=True).transform(113.30, 23.10),
        ),
    ],
)
def test_output_crs(client, crs, first_point):
    params = {"limit": 1} | ({"crs": crs} if crs else {})
    r = client.get(ITEMS, params=params)
    assert r.status_code == 200
    expected = crs or "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert r.headers["content-crs"] == f"<{expected}>"
    x, y = r.json()["features"][0]["geometry"]["coordinates"][0][0][0]
    assert x == pytest.approx(first_point[0], abs=0.5 if x > 1000 else 1e-5)
    assert y == pytest.approx(first_point[1], abs=0.5 if y > 1000 else 1e-5)


def test_item_in_other_crs(client, fixture_data):
    fid = fixture_data["buildings"][0]
    r = client.get(f"{ITEMS}/{fid}", params={"crs": "EPSG:4326"})
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4326>"
    assert r.json()["geometry"]["coordinates"][0][0][0] == [23.1, 113.3]


# -- items: time -----------------------------------------------------------------


def _appraised(i: int) -> dt.date | None:
    return building_row(i)["appraised_on"]


def test_datetime_instant_on_declared_date(client):
    day = _appraised(3).isoformat()
    doc = features(client, ITEMS, datetime=day)
    assert floors_of(doc) == [4]


def test_datetime_interval(client):
    start, end = _appraised(2), _appraised(6)
    doc = features(client, ITEMS, datetime=f"{start}/{end}", limit=100)
    expected = [
        i + 1
        for i in range(N_BUILDINGS)
        if _appraised(i) and start <= _appraised(i) <= end
    ]
    assert floors_of(doc) == expected == [3, 4, 6, 7]


@pytest.mark.parametrize("open_side", ["..", ""])
def test_datetime_half_open(client, open_side):
    end = _appraised(2)
    doc = features(client, ITEMS, datetime=f"{open_side}/{end}T00:00:00Z", limit=100)
    assert floors_of(doc) == [1, 2, 3]
    doc = features(client, ITEMS, datetime=f"{_appraised(28)}/{open_side}", limit=100)
    assert floors_of(doc) == [29]


def test_datetime_on_updated_at(client):
    now = dt.datetime.now(dt.UTC)
    doc = features(
        client,
        ITEMS,
        datetime=f"../{now.isoformat()}",
        **{"datetime-field": "updated_at"},
        limit=100,
    )
    assert doc["numberMatched"] == N_BUILDINGS
    doc = features(
        client,
        ITEMS,
        datetime=f"{(now + dt.timedelta(days=1)).date()}/..",
        **{"datetime-field": "updated_at"},
    )
    assert doc["numberMatched"] == 0


def test_layer_without_dates_filters_updated_at(client):
    doc = features(client, "/collections/plants/items", datetime="2000-01-01/..")
    assert doc["numberMatched"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"datetime": "yesterday"},
        {"datetime": "2024-02-30"},
        {"datetime": "../.."},
        {"datetime": "2024-05-01/2024-01-01"},
        {"datetime": "2024-01-01", "datetime-field": "floors"},
    ],
)
def test_bad_datetime_is_400(client, params):
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameterValue"


# -- items: properties, equality, sortby ------------------------------------------


def test_property_equality(client):
    doc = features(client, ITEMS, safety_grade="D", limit=100)
    assert floors_of(doc) == [i + 1 for i in range(N_BUILDINGS) if i % 4 == 3]
    doc = features(client, ITEMS, safety_grade="D", district="越秀区", limit=100)
    assert floors_of(doc) == [4, 8, 12, 16, 20, 24, 28]
    doc = features(client, ITEMS, floors=7)
    assert floors_of(doc) == [7]


def test_property_equality_repeated_is_in(client):
    r = client.get(ITEMS, params=[("floors", "2"), ("floors", "3")])
    assert [f["properties"]["floors"] for f in r.json()["features"]] == [2, 3]


@pytest.mark.parametrize(
    "params",
    [{"floors": "many"}, {"historic": "maybe"}, {"colour": "red"}, {"extra": "x"}],
)
def test_bad_property_filter_is_400(client, params):
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameterValue"


def test_properties_selection(client):
    doc = features(client, ITEMS, properties="floors,safety_grade", limit=2)
    assert list(doc["features"][0]["properties"]) == ["floors", "safety_grade"]
    doc = features(client, ITEMS, properties="", limit=1)
    assert doc["features"][0]["properties"] == {}
    assert client.get(ITEMS, params={"properties": "floors,nope"}).status_code == 400


def test_sortby(client):
    doc = features(client, ITEMS, sortby="-floors", limit=3)
    assert floors_of(doc) == [30, 29, 28]
    doc = features(client, ITEMS, sortby="safety_grade,-floors", limit=3)
    assert floors_of(doc) == [29, 25, 21]
    doc = features(client, ITEMS, sortby="+appraised_on", limit=2)
    assert floors_of(doc) == [1, 2]
    assert client.get(ITEMS, params={"sortby": "-nope"}).status_code == 400


# -- one item --------------------------------------------------------------------


def test_item(client, fixture_data):
    fid = fixture_data["buildings"][5]
    r = client.get(f"{ITEMS}/{fid}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    feature = models.Feature.model_validate(r.json())
    assert feature.id == fid and feature.properties["floors"] == 6
    assert {link["rel"] for link in r.json()["links"]} >= {"self", "collection"}


@pytest.mark.parametrize("fid", ["999999999", "abc", "1.5", "99999999999999999999999"])
def test_missing_item_is_404(client, fid):
    r = client.get(f"{ITEMS}/{fid}")
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"


def test_mixed_geometry_layer(client):
    doc = features(client, "/collections/curtain_walls/items", limit=10)
    kinds = {f["geometry"]["type"] for f in doc["features"]}
    assert kinds == {"Point", "MultiPolygon"}


# -- html ------------------------------------------------------------------------


def test_html_pages(client, fixture_data):
    fid = fixture_data["buildings"][0]
    for url in (
        "/collections",
        "/collections/buildings",
        "/collections/buildings/queryables",
        f"{ITEMS}",
        f"{ITEMS}/{fid}",
    ):
        r = client.get(url, params={"f": "html"})
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("text/html")
    page = client.get(ITEMS, params={"f": "html", "limit": 3}).text
    assert "1 测试路" in page and "next" in page


# -- ETag -------------------------------------------------------------------------


def test_items_etag_follows_data_version(client, api_engine, fixture_data):
    r = client.get(ITEMS, params={"limit": 2})
    etag = r.headers.get("etag")
    if etag is None:
        pytest.skip("no layer version tracker (gis_server.cache) in this app")
    again = client.get(ITEMS, params={"limit": 2}, headers={"If-None-Match": etag})
    assert again.status_code == 304
    with api_engine.begin() as conn:  # a no-op edit still bumps the version
        conn.execute(
            text("UPDATE layer_buildings SET floors = floors WHERE id = :i"),
            {"i": fixture_data["buildings"][0]},
        )
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while dt.datetime.now() < deadline:
        after = client.get(ITEMS, params={"limit": 2}, headers={"If-None-Match": etag})
        if after.status_code == 200:
            break
    assert after.status_code == 200
    assert after.headers["etag"] != etag


def test_html_map_only_for_lon_lat_pages(client):
    assert 'id="map"' in client.get(ITEMS, params={"f": "html"}).text
    page = client.get(ITEMS, params={"f": "html", "crs": "EPSG:4326"}).text
    assert 'id="map"' not in page


def test_next_link_keeps_repeated_parameters(client):
    params = [("floors", "2"), ("floors", "3"), ("floors", "4"), ("limit", "2")]
    doc = client.get(ITEMS, params=params).json()
    nxt = next(link["href"] for link in doc["links"] if link["rel"] == "next")
    assert floors_of(client.get(nxt).json()) == [4]
