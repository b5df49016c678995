"""The housing officer's page: buildings by safety grade, curtain walls due,
hazard and fall zones, and the hazard list.

The walls due and the hazard list come from the same code as the
supervision rules (:func:`models.supervision.buildings.hazard_list`, the
list ``/supervision/hazards`` answers, and the shared curtain-wall schedule
of :mod:`models.wall_schedule`), so the page, the warnings and the fall
zones agree on when a wall is due.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import urlencode

import folium
from jinja2 import Environment
from sqlalchemy import Engine, text

from gis_server.errors import InvalidParameter
from layers import get_layer
from layers.catalog import SAFETY_GRADE_COLORS, SAFETY_GRADES
from layers.supervision.warnings import LEVEL_COLORS
from map_ui.elements import (
    Legend,
    collection_json,
    collection_of,
    feature,
    inline_layer,
    new_map,
    render_page,
    style_options,
    tile_min_zoom,
    tiles_layer,
)
from map_ui.gcj import shift_bounds, shift_geojson
from map_ui.i18n import Lang, layer_title, level_name, property_titles, t
from map_ui.settings import MapSettings
from models.risk.service import local_today
from models.supervision.buildings import BuildingRules, hazard_list
from models.wall_schedule import ScheduledWall, scheduled_walls

log = logging.getLogger("gis_server.maps")

_ENV = Environment(autoescape=True)

HAZARD_ZONE_KINDS = ("dangerous_building", "curtain_wall")
WALL_COLORS = {"due": "#f0a400", "overdue": "#b30000"}
#: What a due wall's popup shows (kept short: a large city has thousands due).
WALL_POPUP = ("building", "support_type", "last_checked_on", "next_due", "check",
              "status")

_DISTRICT = "(CAST(:district AS text) IS NULL OR b.district = :district)"

COUNT_SQL = f"""
SELECT count(*) FROM (
    SELECT 1 FROM layer_buildings b
    WHERE b.safety_grade = ANY (:grades) AND {_DISTRICT} LIMIT :cap
) x
"""

BUILDINGS_SQL = f"""
SELECT b.id, b.address, b.district, b.structure, b.floors, b.height_m,
       b.built_year, b.safety_grade, b.appraised_on, b.use, b.geom
FROM layer_buildings b
WHERE b.safety_grade = ANY (:grades) AND {_DISTRICT}
"""

#: Map row (layer id, bounds) of each hazard-list subject, by source id.
PLACES_SQL = """
SELECT DISTINCT ON (source_id) source_id, id,
       ST_XMin(geom) AS minx, ST_YMin(geom) AS miny,
       ST_XMax(geom) AS maxx, ST_YMax(geom) AS maxy
FROM layer_{layer} WHERE source_id = ANY (:ids)
ORDER BY source_id, source_part
"""

WALL_GEOMETRY_SQL = """
SELECT id, area_m2, ST_AsGeoJSON(ST_PointOnSurface(geom), 6) AS geometry
FROM layer_curtain_walls WHERE id = ANY (:ids)
"""

# A district filter on layers without a district column goes through the
# district polygons (the district layer's names are the buildings' districts).
_IN_DISTRICT = """(CAST(:district AS text) IS NULL OR EXISTS (
    SELECT 1 FROM layer_districts d WHERE d.name = :district
    AND ST_Intersects(d.geom, x.geom)))"""

# zones carry their subject's district (the column a housing officer's
# scope is on, so what the filter shows is what the scope admits)
_ZONE_DISTRICT = "(CAST(:district AS text) IS NULL OR x.district = :district)"

ZONES_COUNT_SQL = f"""
SELECT count(*) FROM (SELECT 1 FROM layer_risk_zones x
    WHERE x.kind = ANY (:kinds) AND {_ZONE_DISTRICT} LIMIT :cap) y
"""

ZONES_SQL = f"""
SELECT x.id, x.kind, x.level, x.score, x.reasons, x.radius_m, x.building_count,
       x.sensitive_count, x.subject_layer, x.subject_id, x.district, x.geom
FROM layer_risk_zones x
WHERE x.kind = ANY (:kinds) AND {_ZONE_DISTRICT}
"""

PANEL = _ENV.from_string(
    """
<a class="gis-lang" href="{{ other_lang_url }}">{{ t('language') }}</a>
<h1>{{ t('housing_title') }}</h1>
<form method="get" id="gis-filter">
  <div><select name="district">
    <option value="">{{ t('all_districts') }}</option>
    {% for d in districts %}<option value="{{ d }}"{% if d == district %} selected{%
      endif %}>{{ d }}</option>{% endfor %}
  </select></div>
  <div>{{ t('grade') }}:
  {% for g in all_grades %}<label><input type="checkbox" name="grade" value="{{ g }}"
    {% if g in grades %}checked{% endif %}> {{ g }}</label>{% endfor %}</div>
  <input type="hidden" name="lang" value="{{ lang }}">
  <button type="submit">{{ t('filter') }}</button>
</form>
<h2>{{ t('hazard_list') }}</h2>
<div class="gis-note" id="gis-hazard-counts" data-buildings="{{ hazard_total }}"
  data-walls="{{ overdue_total }}">{{ t('hazard_buildings') }}: {{ hazard_total }} ·
  {{ t('overdue_walls') }}: {{ overdue_total }}
  {% if hazard_total + overdue_total > hazards|length %}({{ t('shown_of',
  shown=hazards|length, total=hazard_total + overdue_total) }}){% endif %}</div>
<table id="gis-hazards">
<thead><tr><th>{{ t('kind') }}</th><th>{{ t('grade') }}</th><th>{{ t('address')
  }}</th></tr></thead>
<tbody>
{% for h in hazards %}{% if h.layer == 'buildings' %}
<tr class="gis-row" data-kind="building" data-id="{{ h.id }}"
    data-layer="buildings" data-value="{{ h.id }}" data-level="{{ h.level }}"
    data-bounds="{{ h.bounds }}" onclick="GIS.zoomTo(this)" title="{{ h.why }}">
  <td>{{ t('building') }}</td>
  <td><span class="gis-badge" style="background:{{ h.color }}">{{ h.badge
  }}</span></td>
  <td>{{ h.name or h.subject_id }}{% if h.district %} · {{ h.district }}{% endif
  %}</td>
</tr>
{% else %}
<tr class="gis-row" data-kind="curtain_wall" data-id="{{ h.id }}"
    data-layer="curtain_walls_due" data-value="{{ h.id }}" data-level="{{ h.level }}"
    data-bounds="{{ h.bounds }}" onclick="GIS.zoomTo(this)" title="{{ h.why }}">
  <td>{{ t('curtain_wall') }}</td>
  <td><span class="gis-overdue">{{ t('overdue') }}</span></td>
  <td>{{ h.name or h.subject_id }}{% if h.due_on %} · {{ t('next_check') }} {{
  h.due_on }}{% endif %}</td>
</tr>
{% endif %}{% endfor %}
</tbody></table>
"""
)


def _rows(conn, sql: str, **params) -> list[dict]:
    return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _jsonable(row: dict) -> dict:
    return {
        k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v)
        for k, v in row.items()
    }


def districts(engine: Engine) -> list[str]:
    """District names (the district layer, else the buildings' own)."""
    with engine.connect() as conn:
        names = conn.execute(text(
            "SELECT DISTINCT name FROM layer_districts WHERE name IS NOT NULL "
            "ORDER BY name")).scalars().all()
        if not names:
            names = conn.execute(text(
                "SELECT DISTINCT district FROM layer_buildings "
                "WHERE district IS NOT NULL ORDER BY district")).scalars().all()
    return list(names)


def check_grades(grades: list[str] | None) -> tuple[str, ...]:
    """The grades asked for (all when none), refusing unknown ones.

    >>> check_grades(None)
    ('A', 'B', 'C', 'D')
    >>> check_grades(["d", "C"])
    ('C', 'D')
    """
    if not grades:
        return SAFETY_GRADES
    chosen = {g.strip().upper() for value in grades for g in value.split(",") if g}
    bad = sorted(chosen - set(SAFETY_GRADES))
    if bad:
        raise InvalidParameter(f"grade {', '.join(bad)} is not one of A, B, C, D")
    return tuple(g for g in SAFETY_GRADES if g in chosen)


def wall_schedule(walls: list[ScheduledWall], today: dt.date,
                  due_within_days: int) -> list[dict]:
    """The walls due within ``due_within_days`` or overdue, with their status.

    A wall's next check is the earliest of its due checks (safety check,
    adhesive sampling, a missing appraisal: the shared schedule); a check
    whose trigger has no date counts as overdue.
    """
    horizon = today + dt.timedelta(days=due_within_days)
    out = []
    for w in walls:
        if not w.due:
            continue
        undated = [d for d in w.due if d.due_on is None]
        first = min((d for d in w.due if d.due_on is not None),
                    key=lambda d: d.due_on, default=None)
        overdue = bool(undated) or (first is not None and first.due_on < today)
        if not overdue and (first is None or first.due_on > horizon):
            continue
        check = undated[0] if undated else first
        out.append({"id": w.id, "building": w.building,
                    "support_type": w.support_type,
                    "last_checked_on": w.last_checked_on,
                    "next_due": first.due_on if first else None,
                    "check": check.kind if check else None,
                    "overdue": overdue, "status": "overdue" if overdue else "due"})
    return out


def _places(conn, layer: str, ids: list[str]) -> dict[str, dict]:
    return {r["source_id"]: r for r in _rows(conn, PLACES_SQL.format(layer=layer),
                                             ids=ids)}


def housing_page(engine: Engine, settings: MapSettings, lang: Lang, *,
                 district: str | None, grades: list[str] | None,
                 today: dt.date | None = None,
                 rules: BuildingRules | None = None) -> str:
    """The housing officer's HTML page, filtered by district and grades."""
    datum = settings.datum
    chosen = check_grades(grades)
    rules = rules or BuildingRules()
    today = today or local_today()
    known = districts(engine)
    district = district or None
    if district is not None and district not in known:
        raise InvalidParameter(f"unknown district {district!r}")
    cap = settings.inline_max_features + 1
    args = {"district": district}
    with engine.connect() as conn:
        n_buildings = conn.execute(text(COUNT_SQL), {**args, "grades": list(chosen),
                                                     "cap": cap}).scalar_one()
        inline_buildings = n_buildings <= settings.inline_max_features
        buildings = (collection_json(conn, BUILDINGS_SQL,
                                     {**args, "grades": list(chosen)}, datum,
                                     simplify_deg=settings.simplify_deg)
                     if inline_buildings else None)
        # the list /supervision/hazards answers; buildings of unchosen grades out
        hazards = [h for h in hazard_list(conn, today, district, None, rules)
                   if h["layer"] != "buildings" or h["grade"] is None
                   or h["grade"] in chosen]
        places = {
            layer: _places(conn, layer, [h["subject_id"] for h in hazards
                                         if h["layer"] == layer])
            for layer in ("buildings", "curtain_walls")}
        walls = [w for w in scheduled_walls(conn, today, rules)
                 if district is None or w.district == district]
        due_walls = wall_schedule(walls, today, settings.wall_due_within_days)
        shapes = {r["id"]: r for r in _rows(
            conn, WALL_GEOMETRY_SQL,
            ids=[w["id"] for w in due_walls[: settings.inline_max_features]])}
        n_zones = conn.execute(text(ZONES_COUNT_SQL), {
            **args, "kinds": list(HAZARD_ZONE_KINDS), "cap": cap}).scalar_one()
        inline_zones = n_zones <= settings.inline_max_features
        zones = (collection_json(conn, ZONES_SQL,
                                 {**args, "kinds": list(HAZARD_ZONE_KINDS)},
                                 datum, simplify_deg=settings.simplify_deg)
                 if inline_zones else None)
        district_outlines = collection_json(
            conn, "SELECT id, name, adcode, geom FROM layer_districts", {}, datum,
            simplify_deg=settings.simplify_deg)
        extent = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
            "coalesce((SELECT ST_Extent(geom) FROM layer_districts "
            "WHERE CAST(:district AS text) IS NULL OR name = :district), "
            "(SELECT ST_Extent(geom) FROM layer_buildings)) AS e) x"), args).one()
    hazards = [h for h in hazards if h["subject_id"] in places[h["layer"]]]
    hazard_total = sum(1 for h in hazards if h["layer"] == "buildings")
    overdue_total = len(hazards) - hazard_total

    bounds = shift_bounds(tuple(extent), datum) if extent[0] is not None else None
    m = new_map(settings, lang, bounds)
    district_spec = get_layer("districts")
    m.add_child(inline_layer(
        "districts", district_outlines, district_spec, lang,
        layer_title(district_spec, lang),
        style=style_options(district_spec, fillOpacity=0.0)))
    zone_spec = get_layer("risk_zones")
    zone_style = style_options(zone_spec, fillOpacity=0.25)
    if inline_zones:
        m.add_child(inline_layer("hazard_zones", zones, zone_spec, lang,
                                 t("hazard_zones", lang), style=zone_style))
    else:
        m.add_child(tiles_layer(zone_spec, settings, lang, style=zone_style,
                                filter={"kind": list(HAZARD_ZONE_KINDS)}))
    spec = get_layer("buildings")
    if inline_buildings:
        m.add_child(inline_layer("buildings", buildings, spec, lang,
                                 layer_title(spec, lang)))
    else:
        # NOTE: the district / grade filter is applied in the browser to what the
        # tiles bring (the tile endpoint takes no filter).
        tile_filter: dict[str, list] = {"safety_grade": list(chosen)}
        if district:
            tile_filter["district"] = [district]
        m.add_child(tiles_layer(spec, settings, lang, filter=tile_filter))
    wall_spec = get_layer("curtain_walls")
    m.add_child(inline_layer(
        "curtain_walls_due",
        collection_of([feature(shift_geojson(shapes[w["id"]]["geometry"], datum),
                               _jsonable({k: w[k] for k in WALL_POPUP}), w["id"])
                       for w in due_walls if w["id"] in shapes]),
        wall_spec, lang, t("curtain_walls_due", lang),
        style={"color": "#00a6ca", "fillColor": "#00a6ca", "weight": 2, "radius": 6,
               "colorBy": "status", "palette": WALL_COLORS},
        titles={**property_titles(wall_spec, lang), "next_due": t("next_due", lang),
                "status": t("status", lang)}))
    tiled = [(layer_title(spec, lang), tile_min_zoom(spec, settings))
             for spec, inline in ((get_layer("buildings"), inline_buildings),
                                  (zone_spec, inline_zones)) if not inline]
    zoom_note = "；".join(t("zoom_hint", lang, layer=title, zoom=zoom)
                         for title, zoom in tiled)
    m.add_child(Legend(
        t("legend_grade", lang),
        [(g, SAFETY_GRADE_COLORS[g]) for g in SAFETY_GRADES]
        + [(t("wall_due", lang), WALL_COLORS["due"]),
           (t("wall_overdue", lang), WALL_COLORS["overdue"])],
        note=zoom_note))
    folium.LayerControl(collapsed=False).add_to(m)

    shown = hazards[: settings.list_max_rows]
    for h in shown:
        place = places[h["layer"]][h["subject_id"]]
        h["id"] = place["id"]
        h["bounds"] = json.dumps(shift_bounds(
            (place["minx"], place["miny"], place["maxx"], place["maxy"]), datum))
        graded = h["grade"] in ("C", "D")  # else listed for its monitoring
        h["badge"] = h["grade"] if graded else level_name(h["level"], lang)
        h["color"] = (SAFETY_GRADE_COLORS[h["grade"]] if graded
                      else LEVEL_COLORS.get(h["level"], "#ccc"))
        h["why"] = "; ".join(h["reasons"])
    other = "zh" if lang == "en" else "en"
    query = urlencode([*(("grade", g) for g in chosen),
                       *([("district", district)] if district else [])])
    panel = PANEL.render(
        t=lambda key, **kw: t(key, lang, **kw),
        lang=lang,
        other_lang_url=f"?{query}&lang={other}" if query else f"?lang={other}",
        districts=known,
        district=district,
        all_grades=SAFETY_GRADES,
        grades=chosen,
        hazards=shown,
        hazard_total=hazard_total,
        overdue_total=overdue_total,
    )
    log.info("housing page built", extra={
        "district": district, "grades": chosen, "buildings": n_buildings,
        "inline": inline_buildings, "hazards": hazard_total,
        "walls_due": len(due_walls), "walls_overdue": overdue_total})
    return render_page(m, settings, t("housing_title", lang), panel, lang)
