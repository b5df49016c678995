"""Pure parts of the map pages: assets, datum shift, labels, lists, charts."""

from __future__ import annotations

import datetime as dt
import json

import folium
import numpy as np
import pytest
from folium.plugins import Draw, MarkerCluster

from gis_server.errors import InvalidParameter
from ingest.crs import wgs84_to_gcj02
from map_ui.assets import STATIC_DIR, UnvendoredAsset, localise, static_file
from map_ui.charts import sparkline
from map_ui.gcj import shift_bounds, shift_geojson
from map_ui.housing import check_grades, wall_schedule
from map_ui.i18n import LABELS, parse_lang, t
from map_ui.rasters import colourise
from map_ui.settings import MapSettings
from models.wall_schedule import ScheduledWall, WallScheduleRules, next_checks


def test_localise_points_every_dependency_at_the_static_folder():
    m = folium.Map(tiles=None)
    Draw().add_to(m)
    localise(m.get_root(), "/static")
    html = m.get_root().render()
    assert "https://" not in html.replace("https://leafletjs.com", "")
    for ref in ("/static/vendor/leaflet/leaflet.js",
                "/static/vendor/leaflet-draw/leaflet.draw.js",
                "/static/gis/geojson_tiles.js", "/static/gis/maps.css"):
        assert ref in html
        assert static_file(ref.removeprefix("/static/")) is not None
    # the class-level lists of folium are left alone
    assert folium.Map.default_js[0][1].startswith("https://")


def test_localise_refuses_an_unvendored_plugin():
    m = folium.Map(tiles=None)
    MarkerCluster().add_to(m)
    with pytest.raises(UnvendoredAsset, match="markercluster"):
        localise(m.get_root(), "/static")


def test_vendored_files_carry_their_licences():
    for package in ("leaflet", "leaflet-draw"):
        assert (STATIC_DIR / "vendor" / package / "LICENSE").stat().st_size > 500
    listed = (STATIC_DIR / "VENDORED.md").read_text()
    assert "leaflet | 1.9.4" in listed and "leaflet-draw | 1.0.4" in listed


def test_static_file_stays_inside_its_folder():
    assert static_file("../assets.py") is None
    assert static_file("vendor/../../settings.py") is None
    assert static_file("gis/maps.js") == STATIC_DIR / "gis" / "maps.js"


def test_shift_matches_ingest_crs():
    line = {"type": "LineString", "coordinates": [[113.3, 23.1], [113.31, 23.12]]}
    shifted = json.loads(shift_geojson(json.dumps(line), "gcj02"))["coordinates"]
    np.testing.assert_allclose(shifted, wgs84_to_gcj02(np.array(line["coordinates"])))
    assert shift_geojson(json.dumps(line), "wgs84") == json.dumps(line)
    (s, w), (n, e) = shift_bounds((113.3, 23.1, 113.31, 23.12), "gcj02")
    assert w > 113.3 + 0.004 and s > 23.1 - 0.01 and e > w and n > s


def test_basemap_settings():
    assert MapSettings().basemap_config() is None and MapSettings().datum == "wgs84"
    amap = MapSettings(basemap="amap")
    assert amap.datum == "gcj02" and "autonavi" in amap.basemap_config()["url"]
    custom = MapSettings(basemap="http://tiles.local/{z}/{x}/{y}.png",
                         basemap_datum="gcj02")
    assert custom.datum == "gcj02"
    assert MapSettings(basemap="osm").datum == "wgs84"


def test_labels_exist_in_both_languages():
    assert all(zh and en for zh, en in LABELS.values())
    assert parse_lang("en") == "en" and parse_lang(None) == "zh"
    assert t("shown_of", "en", shown=5, total=9) == "showing 5 of 9"


def test_check_grades():
    assert check_grades(["C,D"]) == ("C", "D")
    assert check_grades([]) == ("A", "B", "C", "D")
    with pytest.raises(InvalidParameter, match="E"):
        check_grades(["E"])


def _wall(wid, accepted, checked, checks=(), events=(), grade=None):
    schedule = WallScheduleRules()
    wall = ScheduledWall(
        id=wid, source_id=f"W{wid}", source_part=0, building=None,
        support_type="frame", accepted_on=accepted, last_checked_on=checked,
        design_life_years=25, height_m=None, building_grade=grade,
        building_appraised_on=None, district=None, checks=dict(checks),
        events=list(events))
    wall.due.extend(next_checks(wall.as_wall(), checks, events, TODAY, schedule))
    return wall


TODAY = dt.date(2026, 12, 3)


def test_wall_schedule_keeps_due_and_overdue_walls():
    walls = [
        # checked 2021-12-20: next due 2026-12-20 (frame, 5 years): due soon
        _wall(1, dt.date(2015, 1, 1), dt.date(2021, 12, 20)),
        # checked 2020-01-01: due 2025-01-01: overdue
        _wall(2, dt.date(2015, 1, 1), dt.date(2020, 1, 1)),
        # checked 2025-01-01: due 2030: not listed
        _wall(3, dt.date(2015, 1, 1), dt.date(2025, 1, 1)),
        # no acceptance date: cannot be scheduled
        _wall(4, None, None),
        # checked 2015 in the layer, 2026-06-01 in the feed: due 2031
        _wall(5, dt.date(2014, 1, 1), dt.date(2015, 1, 1),
              checks=[("safety_check", dt.date(2026, 6, 1))]),
        # a typhoon with no appraisal since: overdue, whatever the schedule says
        _wall(6, dt.date(2015, 1, 1), dt.date(2025, 1, 1),
              events=[("typhoon", dt.date(2026, 9, 15))]),
        # its building graded C without a date: due since an unknown day
        _wall(7, None, None, grade="C"),
    ]
    out = {w["id"]: w["status"] for w in wall_schedule(walls, TODAY, 90)}
    assert out == {1: "due", 2: "overdue", 6: "overdue", 7: "overdue"}
    assert {w["id"] for w in wall_schedule(walls, TODAY, 0)} == {2, 6, 7}


def test_sparkline_scales_to_its_box():
    t0 = dt.datetime(2026, 1, 1)
    times = [t0 + dt.timedelta(days=i) for i in range(3)]
    svg = sparkline(times, [2.0, 4.0, 3.0], width=22, height=12)
    assert 'points="1.0,11.0 11.0,1.0 21.0,6.0"' in svg
    assert sparkline([], []) == ""
    assert 'points="1.0,6.0 21.0,6.0"' in sparkline(times[:2], [5.0, 5.0], width=22,
                                                     height=12)


def test_colourise_masks_nodata():
    data = np.ma.masked_equal(np.array([[-1.0, 0.0], [5.0, 10.0]]), -1.0)
    rgba = colourise(data)
    assert rgba.shape == (4, 2, 2) and rgba.dtype == np.uint8
    assert rgba[3, 0, 0] == 0 and rgba[3, 0, 1] == 0  # nodata, minimum
    assert rgba[3, 1, 1] == 180 and tuple(rgba[:3, 1, 1]) == (189, 0, 38)


@pytest.mark.parametrize("module", ["map_ui.elements", "map_ui.gcj", "map_ui.charts",
                                    "map_ui.housing", "map_ui.i18n", "map_ui.rasters"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
