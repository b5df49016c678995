"""The synthetic demo city: deterministic, schema-true, geometrically sane."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from pyproj import Geod, Transformer

from ingest.batch import FeatureBatch
from ingest.demo_city import (
    AS_OF,
    DISTRICT_SEEDS,
    LAYER_IDS,
    PLANT_MAX_DISTANCE_M,
    generate_city,
    write_city,
)
from layers import get_layer
from layers.base import PYTHON_TYPES

SEED = 7
CORE_LAYERS = (
    "districts",
    "rivers",
    "monitoring_stations",
    "buildings",
    "curtain_walls",
    "construction_sites",
    "plants",
    "roads",
)
GEOD = Geod(ellps="WGS84")
TO_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)


def _utm(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda c: np.column_stack(TO_UTM.transform(*c.T)))


@pytest.fixture(scope="module")
def city() -> dict[str, FeatureBatch]:
    return generate_city(buildings=3000, seed=SEED, sites=80)


def test_every_layer_is_generated(city):
    assert set(city) == set(LAYER_IDS)
    assert len(city["buildings"]) == 3000
    assert len(city["districts"]) == 11
    assert len(city["rivers"]) == 300
    assert len(city["construction_sites"]) == 80
    assert len(city["plants"]) == 40
    for layer_id, batch in city.items():
        assert batch.crs == "EPSG:4326", layer_id
        assert len(set(batch.ids.tolist())) == len(batch), f"{layer_id}: duplicate ids"
        assert shapely.is_valid(batch.geometries).all(), layer_id
        bounds = shapely.total_bounds(batch.geometries)
        assert 112.9 < bounds[0] and bounds[2] < 114.0, layer_id
        assert 22.5 < bounds[1] and bounds[3] < 23.9, layer_id


def test_same_seed_same_city(city):
    again = generate_city(buildings=3000, seed=SEED, sites=80)
    for layer_id, batch in city.items():
        other = again[layer_id]
        assert (batch.ids == other.ids).all(), layer_id
        wkb = shapely.to_wkb(batch.geometries)
        assert (wkb == shapely.to_wkb(other.geometries)).all(), layer_id
        for name, values in batch.columns.items():
            assert list(values) == list(other.columns[name]), f"{layer_id}.{name}"
    assert city["buildings"].ids[0] == "B0000001"


def test_other_seed_other_city(city):
    other = generate_city(buildings=3000, seed=SEED + 1, sites=80)
    same = shapely.equals_exact(
        city["buildings"].geometries, other["buildings"].geometries
    )
    assert same.mean() < 0.01


@pytest.mark.parametrize("layer_id", CORE_LAYERS)
def test_columns_are_the_declared_properties(city, layer_id):
    spec = get_layer(layer_id)
    batch = city[layer_id]
    assert set(batch.columns) == {p.name for p in spec.properties}
    for geom_type in {g.geom_type for g in batch.geometries}:
        assert spec.accepts(geom_type), geom_type
    for prop in spec.properties:
        values = [v for v in batch.columns[prop.name] if v is not None]
        assert values, f"{layer_id}.{prop.name} is empty"
        expected = PYTHON_TYPES[prop.type]
        if prop.type == "float":
            expected = (float, int, np.floating, np.integer)
        elif prop.type == "int":
            expected = (int, np.integer)
        elif prop.type == "bool":
            expected = (bool, np.bool_)
        bad = [v for v in values if not isinstance(v, expected)]
        assert not bad, f"{layer_id}.{prop.name}: {bad[:3]}"
        if prop.choices:
            assert set(values) <= set(prop.choices), f"{layer_id}.{prop.name}"
        if prop.non_negative:
            assert min(values) >= 0, f"{layer_id}.{prop.name}"


def test_roads(city):
    roads = city["roads"]
    assert set(roads.columns) == {"name", "road_class"}
    assert set(roads.columns["road_class"]) == {
        "motorway",
        "primary",
        "secondary",
        "local",
    }
    assert (shapely.get_type_id(roads.geometries) == 5).all()  # MultiLineString


def test_districts_tile_the_city(city):
    batch = city["districts"]
    assert list(batch.columns["name"]) == [d.name for d in DISTRICT_SEEDS]
    assert list(batch.columns["adcode"]) == [
        "440103",
        "440104",
        "440105",
        "440106",
        "440111",
        "440112",
        "440113",
        "440114",
        "440115",
        "440117",
        "440118",
    ]
    geoms = batch.geometries
    total = shapely.area(geoms).sum()
    union = shapely.union_all(geoms)
    # no overlaps: the parts' areas add up to the union's
    assert union.area == pytest.approx(total, rel=1e-9)
    left, right = np.triu_indices(len(geoms), k=1)
    overlap = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    assert overlap.max() < total * 1e-9
    # no gaps: one piece without holes
    assert union.geom_type == "Polygon" and len(union.interiors) == 0
    # the dense centre lies in Yuexiu / Tianhe
    centre = shapely.Point(113.30, 23.13)
    assert batch.columns["name"][
        int(np.flatnonzero(shapely.contains(geoms, centre))[0])
    ] in ("越秀区", "天河区")


def test_rivers_form_a_tree_in_flow_direction(city):
    rivers = city["rivers"]
    codes = list(rivers.columns["code"])
    index = {c: i for i, c in enumerate(codes)}
    down = list(rivers.columns["downstream_code"])
    assert sum(d is None for d in down) == 1  # one outlet
    assert all(d is None or d in index for d in down)
    for start in range(len(codes)):  # every path ends at the outlet, no cycles
        at, hops = start, 0
        while down[at] is not None:
            at, hops = index[down[at]], hops + 1
            assert hops <= len(codes)
    lines = rivers.geometries
    for i, d in enumerate(down):
        if d is None:
            continue
        mouth = shapely.get_point(lines[i], -1)
        # the water leaves each segment at its last vertex, onto its downstream
        assert shapely.distance(mouth, lines[index[d]]) < 1e-9
    # the outlet is the main stem, at the edge of the city
    outlet = shapely.get_point(lines[down.index(None)], -1)
    union = shapely.union_all(city["districts"].geometries)
    assert shapely.distance(outlet, union.exterior) < 0.01


def test_river_attributes(city):
    cols = city["rivers"].columns
    length = np.asarray(cols["length_m"], dtype=float)
    geodesic = np.array([GEOD.geometry_length(g) for g in city["rivers"].geometries])
    assert np.allclose(length, geodesic, atol=0.1)
    assert length.min() > 700 and length.max() < 5500
    assert np.median(length) > 1500
    chiefs = list(cols["chief_id"])
    assert len(set(chiefs)) < 0.7 * len(chiefs)  # several segments per chief
    assert set(cols["chief_level"]) == {"city", "district", "town", "village"}
    assert 0 < np.mean(cols["remediated"]) < 0.5
    assert {"珠江", "流溪河", "沙河涌"} <= set(cols["river_name"])
    names = {d.name for d in DISTRICT_SEEDS}
    assert set(cols["district"]) <= names


def test_segment_count_scales():
    small = generate_city(buildings=10, segments=600, sites=5, plants=3)
    assert len(small["rivers"]) == 600


def test_stations_lie_on_their_segment(city):
    stations, rivers = city["monitoring_stations"], city["rivers"]
    index = {c: i for i, c in enumerate(rivers.columns["code"])}
    seg = np.array([index[c] for c in stations.columns["river_code"]])
    dist = shapely.distance(stations.geometries, rivers.geometries[seg])
    assert dist.max() < 1e-9
    per_segment = np.bincount(seg, minlength=len(rivers))
    assert per_segment.min() >= 1 and per_segment.max() <= 3
    # consecutive stations on one segment are 200-600 m apart (sampling rules)
    same = seg[1:] == seg[:-1]
    xy = shapely.get_coordinates(stations.geometries)
    _, _, gap = GEOD.inv(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1])
    assert (gap[same] > 150).all() and (gap[same] < 650).all()
    assert set(stations.columns["kind"]) == {"manual", "automatic"}


def test_buildings_stay_off_rivers_and_each_other(city):
    buildings = city["buildings"].geometries
    rivers = shapely.STRtree(city["rivers"].geometries)
    assert rivers.query(buildings, predicate="intersects").size == 0
    own = shapely.STRtree(buildings)
    left, right = own.query(buildings, predicate="intersects")
    assert (left == right).all()


def test_buildings_are_densest_in_the_centre(city):
    xy = shapely.get_coordinates(shapely.centroid(city["buildings"].geometries))
    _, _, dist = GEOD.inv(
        np.full(len(xy), 113.30), np.full(len(xy), 23.13), xy[:, 0], xy[:, 1]
    )
    near = (dist < 5000).sum() / (np.pi * 5**2)
    far = ((dist > 20000) & (dist < 30000)).sum() / (np.pi * (30**2 - 20**2))
    assert near > 10 * far


def test_building_attributes(city):
    cols = city["buildings"].columns
    grade = np.array(cols["safety_grade"])
    share = {g: float(np.mean(grade == g)) for g in "ABCD"}
    assert share["A"] + share["B"] > 0.85
    assert 0.01 <= share["C"] <= 0.07
    assert 0.001 <= share["D"] <= 0.015
    floors = np.asarray(cols["floors"])
    height = np.asarray(cols["height_m"])
    assert (height / floors > 2.8).all() and (height / floors < 5.5).all()
    year = np.asarray(cols["built_year"])
    bad = np.isin(grade, ("C", "D"))
    assert year[bad].mean() < year[grade == "A"].mean()
    appraised = np.array([d is not None for d in cols["appraised_on"]])
    assert (appraised == bad).all()
    assert all(dt.date(1950, 1, 1) < d <= AS_OF for d in cols["appraised_on"] if d)
    assert 0 < np.mean(cols["historic"]) < 0.1
    assert {"residential", "commercial", "industrial", "school"} <= set(cols["use"])
    names = np.array([d.name for d in DISTRICT_SEEDS])
    assert set(cols["district"]) <= set(names)
    assert all(
        a.startswith(d) for a, d in zip(cols["address"], cols["district"], strict=True)
    )


def test_building_district_is_where_it_stands(city):
    districts = city["districts"]
    tree = shapely.STRtree(districts.geometries)
    centres = shapely.centroid(city["buildings"].geometries)
    pts, polys = tree.query(centres, predicate="within")
    expected = np.asarray(districts.columns["name"])[polys]
    assert (np.asarray(city["buildings"].columns["district"])[pts] == expected).all()


def test_curtain_walls():
    city = generate_city(buildings=20_000, seed=SEED, segments=150, sites=10)
    walls, buildings = city["curtain_walls"], city["buildings"]
    assert len(walls) > 50
    assert set(walls.columns["building"]) <= set(buildings.ids)
    accepted = np.array(walls.columns["accepted_on"])
    assert min(accepted).year >= 1995 and max(accepted) <= AS_OF
    past_design_life = np.array([(AS_OF - d).days > 25 * 365.25 for d in accepted])
    assert past_design_life.any() and not past_design_life.all()
    last = walls.columns["last_checked_on"]
    checked = [(a, c) for a, c in zip(accepted, last, strict=True) if c is not None]
    assert all(a < c <= AS_OF for a, c in checked)
    overdue = [c for _, c in checked if (AS_OF - c).days > 5 * 366]
    assert overdue and len(overdue) < len(checked)
    assert set(walls.columns["design_life_years"]) == {25}
    kinds = set(shapely.get_type_id(walls.geometries).tolist())
    assert kinds == {0, 3}  # footprints and points


def test_construction_sites(city):
    sites = city["construction_sites"].geometries
    tree = shapely.STRtree(sites)
    left, right = tree.query(sites, predicate="intersects")
    assert (left == right).all()
    near = _utm(city["rivers"].geometries)
    dist = shapely.STRtree(near).query_nearest(_utm(sites), return_distance=True)[1]
    assert (dist > 0).all()  # never on the water
    assert (dist < 500).sum() >= 5  # some next to a river
    cols = city["construction_sites"].columns
    assert any(a is None for a in cols["wage_account"])
    assert set(cols["status"]) <= {"planned", "active", "suspended", "completed"}


def test_plants_near_roads_or_rivers(city):
    lines = _utm(np.concatenate((city["roads"].geometries, city["rivers"].geometries)))
    plants = _utm(city["plants"].geometries)
    _, dist = shapely.STRtree(lines).query_nearest(plants, return_distance=True)
    # the plane of the generator and UTM differ by well under 1 %
    assert dist.max() <= PLANT_MAX_DISTANCE_M * 1.02
    score = np.asarray(city["plants"].columns["credit_score"])
    assert score.min() >= 60 and score.max() <= 100


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_write_city(city, tmp_path, fmt):
    small = {k: city[k] for k in ("districts", "rivers", "curtain_walls", "buildings")}
    paths = write_city(small, tmp_path, fmt=fmt)
    assert set(paths) == set(small)
    for layer_id, path in paths.items():
        info = pyogrio.read_info(path)
        assert info["features"] == len(small[layer_id])
        id_field = "adcode" if layer_id == "districts" else "id"
        assert set(info["fields"]) == {id_field, *small[layer_id].columns}
        _, _, _, fields = pyogrio.raw.read(path, columns=[id_field])
        assert list(fields[0]) == list(small[layer_id].ids)
    if fmt == "gpkg":
        info = pyogrio.read_info(paths["buildings"])
        dtypes = dict(zip(info["fields"], info["dtypes"], strict=True))
        assert dtypes["appraised_on"] == "datetime64[D]"
        assert dtypes["historic"] == "bool"


@pytest.fixture(scope="module")
def tiny_city() -> dict[str, FeatureBatch]:
    return generate_city(buildings=500, seed=SEED, segments=150, sites=20, plants=10)


def test_loads_into_the_store_cleanly(engine, tiny_city):
    from ingest.loader import load_batch

    for layer_id, batch in tiny_city.items():
        spec = get_layer(layer_id)
        report = load_batch(engine, spec, batch, source="demo-test", strict=True)
        assert (report.inserted, report.rejected, report.repaired) == (
            len(batch),
            0,
            0,
        ), report.summary()
        assert not report.kept_in_extra, layer_id
        again = load_batch(engine, spec, batch, source="demo-test")
        assert again.unchanged == len(batch), again.summary()


def test_written_files_load_like_the_batches(engine, tiny_city, tmp_path):
    from ingest.loader import load_batch
    from ingest.readers import read_file

    paths = write_city(tiny_city, tmp_path)
    for layer_id, path in paths.items():
        spec = get_layer(layer_id)
        batch = read_file(path, id_aliases=spec.id_aliases)
        assert list(batch.ids) == list(tiny_city[layer_id].ids), layer_id
        report = load_batch(engine, spec, batch, source=path.name, strict=True)
        assert report.inserted == len(batch), report.summary()
        assert not report.kept_in_extra, layer_id
