"""CQL2 filters (text and JSON): each operator against the fixture buildings."""

from __future__ import annotations

import json

import pytest
from features_fixtures import N_BUILDINGS, building_box, building_row

ITEMS = "/collections/buildings/items"
ALL = list(range(N_BUILDINGS))


def floors(client, **params) -> list[int]:
    r = client.get(ITEMS, params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    assert r.json()["numberMatched"] == r.json()["numberReturned"]
    return [f["properties"]["floors"] for f in r.json()["features"]]


def expect(predicate) -> list[int]:
    return [i + 1 for i in ALL if predicate(i, building_row(i))]


CENTRE_OF_3 = (
    (building_box(3)[0] + building_box(3)[2]) / 2,
    (building_box(3)[1] + building_box(3)[3]) / 2,
)

TEXT_CASES = [
    (
        "safety_grade = 'D' AND floors > 20",
        lambda i, r: r["safety_grade"] == "D" and r["floors"] > 20,
    ),
    (
        "safety_grade <> 'A' AND NOT floors >= 5",
        lambda i, r: r["safety_grade"] != "A" and r["floors"] < 5,
    ),
    ("floors < 3 OR floors >= 29", lambda i, r: r["floors"] < 3 or r["floors"] >= 29),
    ("address LIKE '1%'", lambda i, r: r["address"].startswith("1")),
    ("floors BETWEEN 10 AND 12", lambda i, r: 10 <= r["floors"] <= 12),
    ("floors IN (2, 4, 99)", lambda i, r: r["floors"] in (2, 4)),
    ("appraised_on IS NULL", lambda i, r: r["appraised_on"] is None),
    (
        "appraised_on > DATE('2022-01-01')",
        lambda i, r: (
            r["appraised_on"] is not None
            and r["appraised_on"].isoformat() > "2022-01-01"
        ),
    ),
    ("historic = true", lambda i, r: r["historic"]),
    ("CASEI(structure) = 'BRICK'", lambda i, r: False),
    ("CASEI(structure) = CASEI('BRICK')", lambda i, r: r["structure"] == "brick"),
    ("height_m > floors * 3 - 1 AND floors < 4", lambda i, r: r["floors"] < 4),
    ("built_year = floors + 1979", lambda i, r: True),
    (
        f"S_INTERSECTS(geom, POINT({CENTRE_OF_3[0]} {CENTRE_OF_3[1]}))",
        lambda i, r: i == 3,
    ),
    (
        "S_INTERSECTS(geometry, BBOX(113.2995, 23.0995, 113.3035, 23.1015))",
        lambda i, r: i in (0, 1),
    ),
    ("BBOX(geom, 113.2995, 23.0995, 113.3035, 23.1015)", lambda i, r: i in (0, 1)),
    (
        "S_WITHIN(geom, POLYGON((113.2995 23.0995, 113.3035 23.0995, 113.3035 23.1015,"
        " 113.2995 23.1015, 113.2995 23.0995)))",
        lambda i, r: i in (0, 1),
    ),
    (
        "S_DISJOINT(geom, BBOX(113.2995, 23.0995, 113.3035, 23.1015)) AND floors < 5",
        lambda i, r: i in (2, 3),
    ),
]


@pytest.mark.parametrize(
    ("cql", "predicate"), TEXT_CASES, ids=[c for c, _ in TEXT_CASES]
)
def test_cql2_text(client, cql, predicate):
    assert floors(client, filter=cql) == expect(predicate)


JSON_CASES = [
    (
        {
            "op": "and",
            "args": [
                {"op": "=", "args": [{"property": "safety_grade"}, "D"]},
                {"op": ">", "args": [{"property": "floors"}, 20]},
            ],
        },
        lambda i, r: r["safety_grade"] == "D" and r["floors"] > 20,
    ),
    (
        {"op": "between", "args": [{"property": "floors"}, 10, 12]},
        lambda i, r: 10 <= r["floors"] <= 12,
    ),
    (
        {"op": "in", "args": [{"property": "district"}, ["越秀区"]]},
        lambda i, r: r["district"] == "越秀区",
    ),
    (
        {"op": "isNull", "args": [{"property": "appraised_on"}]},
        lambda i, r: r["appraised_on"] is None,
    ),
    (
        {"op": "like", "args": [{"property": "address"}, "2_ %"]},
        lambda i, r: len(r["address"].split()[0]) == 2 and r["address"][0] == "2",
    ),
    (
        {
            "op": "s_intersects",
            "args": [
                {"property": "geom"},
                {"type": "Point", "coordinates": list(CENTRE_OF_3)},
            ],
        },
        lambda i, r: i == 3,
    ),
    (
        {
            "op": "t_after",
            "args": [{"property": "appraised_on"}, {"date": "2022-01-01"}],
        },
        lambda i, r: (
            r["appraised_on"] is not None
            and r["appraised_on"].isoformat() > "2022-01-01"
        ),
    ),
    (
        {
            "op": "t_during",
            "args": [
                {"property": "appraised_on"},
                {"interval": ["2020-01-01", "2020-03-01"]},
            ],
        },
        lambda i, r: (
            r["appraised_on"] is not None
            and "2020-01-01" < r["appraised_on"].isoformat() < "2020-03-01"
        ),
    ),
    (
        {"op": "not", "args": [{"op": "<", "args": [{"property": "floors"}, 29]}]},
        lambda i, r: r["floors"] >= 29,
    ),
]


@pytest.mark.parametrize(
    ("cql", "predicate"), JSON_CASES, ids=[c["op"] for c, _ in JSON_CASES]
)
def test_cql2_json(client, cql, predicate):
    got = floors(client, filter=json.dumps(cql), **{"filter-lang": "cql2-json"})
    assert got == expect(predicate)


def test_filter_crs_epsg4326_is_latitude_first(client):
    lat, lon = CENTRE_OF_3[1], CENTRE_OF_3[0]
    got = floors(
        client,
        filter=f"S_INTERSECTS(geom, POINT({lat} {lon}))",
        **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"},
    )
    assert got == [4]


def test_filter_crs_web_mercator(client):
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(*CENTRE_OF_3)
    got = floors(
        client,
        filter=f"S_INTERSECTS(geom, POINT({x} {y}))",
        **{"filter-crs": "EPSG:3857"},
    )
    assert got == [4]


def test_filter_combines_with_bbox_and_equality(client):
    got = floors(
        client,
        filter="floors > 1",
        bbox="113.2995,23.0995,113.3035,23.1015",
        historic="false",
    )
    assert got == [2]


def test_filter_values_are_parameters_not_sql(client, api_engine):
    """A quote in a value is data: no injection, no error, no match."""
    cql = {"op": "=", "args": [{"property": "address"}, "x' OR '1'='1"]}
    got = floors(client, filter=json.dumps(cql), **{"filter-lang": "cql2-json"})
    assert got == []
    got = floors(client, filter="address = 'x\" OR 1=1 --'")
    assert got == []
    got = floors(client, district="x' OR '1'='1")
    assert got == []


@pytest.mark.parametrize(
    "params",
    [
        {"filter": "floors >"},
        {"filter": "nope = 1"},
        {"filter": "floors = 'many'"},
        {"filter": "appraised_on > DATE('2022-13-01')"},
        {"filter": "extra = 'x'"},
        {"filter": "S_INTERSECTS(floors, POINT(1 2))"},
        {"filter": "DWITHIN(geom, POINT(1 2), 10, meters)"},
        {"filter": "ACCENTI(address) = 'x'"},
        {"filter": "1 = 1"},
        {"filter": "floors = 1", "filter-lang": "ecql"},
        {"filter": "{not json", "filter-lang": "cql2-json"},
        {
            "filter": json.dumps({"op": "=", "args": [{"property": "nope"}, 1]}),
            "filter-lang": "cql2-json",
        },
        {
            "filter": json.dumps({"op": "frobnicate", "args": []}),
            "filter-lang": "cql2-json",
        },
        {"filter": "S_INTERSECTS(geom, POINT(1 2))", "filter-crs": "EPSG:2385"},
        {"filter-lang": "cql2-text"},
    ],
)
def test_bad_filter_is_400(client, params):
    r = client.get(ITEMS, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"code", "description"}
    assert "psycopg2" not in body["description"] and "SELECT" not in body["description"]


def test_division_by_zero_is_not_an_error(client):
    assert floors(client, filter="floors / 0 > 1") == []


@pytest.mark.parametrize(
    "params",
    [
        {"filter": "floors IN (1, 2, 3, 4, 5)"},
        {"filter": "address LIKE '1%'"},
        {"filter": "S_INTERSECTS(geom, BBOX(113.2995, 23.0995, 113.3115, 23.1035))"},
        {
            "filter": json.dumps(
                {"op": "in", "args": [{"property": "floors"}, [1, 2, 3]]}
            ),
            "filter-lang": "cql2-json",
        },
    ],
)
def test_full_pages_count_matches(client, params):
    """A full page makes the server estimate, then count: every filter kind."""
    everything = client.get(ITEMS, params={**params, "limit": 100}).json()
    page = client.get(ITEMS, params={**params, "limit": 2})
    assert page.status_code == 200, page.text
    assert page.json()["numberReturned"] == 2
    assert page.json()["numberMatched"] == everything["numberReturned"] > 2
