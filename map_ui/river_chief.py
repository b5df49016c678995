"""The river chief's page: their segments, stations, nearby risks and tasks."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from html import escape

import folium
from jinja2 import Environment
from sqlalchemy import Engine, text

from gis_server.errors import NotFound
from layers import get_layer
from layers.water import WARNING_COLORS, WARNING_LEVELS
from map_ui.charts import sparkline
from map_ui.elements import (
    Legend,
    collection_json,
    collection_of,
    feature,
    inline_layer,
    new_map,
    render_page,
    style_options,
)
from map_ui.gcj import shift_bounds, shift_geojson
from map_ui.i18n import Lang, indicator_name, level_name, property_titles, t
from map_ui.settings import MapSettings

log = logging.getLogger("gis_server.maps")

_ENV = Environment(autoescape=True)

SEGMENTS_SQL = """
SELECT DISTINCT ON (r.id) r.id, r.code, r.name, r.river_name, r.length_m,
       r.remediated, coalesce(w.level, 'none') AS level, w.probability, w.grade,
       w.gb3838_class, r.geom
FROM layer_rivers r
LEFT JOIN layer_water_quality_warnings w ON w.segment_code = r.code
WHERE r.chief_id = :chief
ORDER BY r.id, w.computed_at DESC NULLS LAST
"""

STATIONS_SQL = """
SELECT s.id, s.code, s.name, s.kind, s.river_code, ST_AsGeoJSON(s.geom, 6) AS geometry
FROM layer_monitoring_stations s
WHERE s.river_code = ANY (:codes)
ORDER BY s.code
"""

LATEST_SQL = """
SELECT DISTINCT ON (station_code, indicator) station_code, indicator, observed_at,
       value, unit
FROM water_observations
WHERE station_code = ANY (:stations)
ORDER BY station_code, indicator, observed_at DESC
"""

TREND_SQL = """
WITH last AS (
    SELECT station_code, max(observed_at) AS until
    FROM water_observations WHERE station_code = ANY (:stations)
    GROUP BY station_code
)
SELECT o.station_code, o.indicator, o.observed_at, o.value
FROM water_observations o JOIN last USING (station_code)
WHERE o.indicator = ANY (:indicators)
  AND o.observed_at > last.until - make_interval(days => :days)
ORDER BY o.station_code, o.indicator, o.observed_at
"""

# Bounding-box prefilter: degrees of longitude per metre at Guangzhou's latitude
# are ~1/102,000; 1/90,000 leaves a margin up to ~35 degrees north. Distances
# are measured in the metric frame (UTM 49N): ~9x faster than geography.
_NEAR = """
WITH u AS (SELECT ST_Union(geom) AS g FROM layer_rivers WHERE chief_id = :chief),
m AS (SELECT g, ST_Transform(g, :srid) AS gm FROM u)
SELECT {columns}, x.geom
FROM {table} x, m
WHERE x.geom && ST_Expand(m.g, :d / 90000.0)
  AND ST_DWithin(ST_Transform(x.geom, :srid), m.gm, :d)
{where}
ORDER BY x.id
"""

ZONES_SQL = _NEAR.format(
    columns="x.id, x.kind, x.level, x.score, x.reasons, x.radius_m",
    table="layer_risk_zones",
    where="",
)
SITES_SQL = _NEAR.format(
    columns="x.id, x.project, x.contractor, x.status, 'construction_sites' AS layer",
    table="layer_construction_sites",
    where="",
)
PLANTS_SQL = _NEAR.format(
    columns="x.id, x.enterprise, x.capacity_m3_per_year, 'plants' AS layer",
    table="layer_plants",
    where="",
)

TASKS_SQL = """
SELECT t.id, t.urgency_rank, t.segment_code, t.level, t.interval_days,
       t.patrols_required, t.patrols_done, t.due_at, t.overdue, t.overdue_days,
       t.reason, r.name AS segment_name,
       ST_XMin(t.geom) AS minx, ST_YMin(t.geom) AS miny,
       ST_XMax(t.geom) AS maxx, ST_YMax(t.geom) AS maxy
FROM layer_patrol_tasks t
LEFT JOIN LATERAL (SELECT name FROM layer_rivers WHERE code = t.segment_code
                   ORDER BY id LIMIT 1) r ON true
WHERE t.chief_id = :chief
ORDER BY t.urgency_rank, t.due_at NULLS LAST, t.id
"""

PANEL = _ENV.from_string(
    """
<a class="gis-lang" href="?chief={{ chief|urlencode }}&lang={{ other_lang }}">{{
  t('language') }}</a>
<h1>{{ t('river_chief_title') }}</h1>
<div>{{ t('chief') }}: <b id="gis-chief">{{ chief }}</b> ·
  {{ t('segments') }} {{ segment_count }} ·
  {{ t('stations') }} {{ station_count }}</div>
<div class="gis-note"><a id="gis-loop-link"
  href="/maps/supervision?domain=water&lang={{ lang }}">{{
  '预警闭环（派发、整改、销号）' if lang == 'zh' else
  'Warnings in the closed loop (dispatch, rectify, close)' }}</a> ·
  <a href="/summary/rivers">{{ '全市河流概况' if lang == 'zh'
  else 'City-wide river summary' }}</a></div>
<h2>{{ t('tasks') }}</h2>
{% if tasks %}
<ol id="gis-tasks">
{% for task in tasks %}
  <li class="gis-row" data-segment="{{ task.segment_code }}"
      data-rank="{{ task.urgency_rank }}" data-bounds="{{ task.bounds }}"
      data-layer="segments" data-prop="code" data-value="{{ task.segment_code }}"
      onclick="GIS.zoomTo(this)">
    <span class="gis-badge" style="background:{{ task.color }}">{{ task.level_name
    }}</span>
    <b>{{ task.segment_name or task.segment_code }}</b> ({{ task.segment_code }})
    <div class="gis-note">{{ t('due') }}: {{ task.due }} · {{ t('patrols') }}:
      {{ task.patrols_done }}/{{ task.patrols_required }}
      {% if task.overdue %}<span class="gis-overdue">{{ t('overdue') }}
      {{ task.overdue_days }} {{ t('days') }}</span>{% endif %}</div>
    {% if task.reason %}<div class="gis-note">{{ task.reason }}</div>{% endif %}
  </li>
{% endfor %}
</ol>
{% else %}
<p class="gis-note" id="gis-tasks-empty">{{ t('no_tasks') }}</p>
{% endif %}
"""
)


def _rows(conn, sql: str, **params) -> list[dict]:
    return [dict(r) for r in conn.execute(text(sql), params).mappings()]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _station_popup(station: dict, latest: list[dict], trends: dict[str, list],
                   settings: MapSettings, lang: Lang) -> str:
    rows = [f"<b>{escape(station['name'] or station['code'])}</b> "
            f"({escape(station['code'])})"]
    if latest:
        when = max(r["observed_at"] for r in latest)
        rows.append(f"<div class='gis-note'>{escape(t('latest', lang))}: "
                    f"{when:%Y-%m-%d %H:%M}</div>")
        cells = "".join(
            f"<tr><th>{escape(indicator_name(r['indicator'], lang))}</th>"
            f"<td>{escape(_fmt(r['value']))} {escape(r['unit'] or '')}</td></tr>"
            for r in sorted(latest, key=lambda r: r["indicator"])
        )
        rows.append(f"<table class='gis-popup'>{cells}</table>")
    else:
        rows.append(f"<div class='gis-note'>{escape(t('no_readings', lang))}</div>")
    charts = []
    for code in settings.trend_indicators:
        series = trends.get(code)
        if not series or len(series) < 2:
            continue
        times = [s[0] for s in series]
        values = [s[1] for s in series]
        name = indicator_name(code, lang)
        charts.append(
            f"<div class='gis-spark'><span>{escape(name)} "
            f"{escape(_fmt(min(values)))}–{escape(_fmt(max(values)))}</span>"
            f"{sparkline(times, values, title=name)}</div>"
        )
    if charts:
        rows.append(f"<div class='gis-note'>"
                    f"{escape(t('trend', lang, days=settings.trend_days))}</div>")
        rows.extend(charts)
    return "".join(rows)


def river_chief_page(engine: Engine, settings: MapSettings, chief: str,
                     lang: Lang) -> str:
    """The HTML page of river chief ``chief``; raises NotFound for no segments."""
    datum = settings.datum
    near = {"chief": chief, "d": settings.nearby_m, "srid": settings.metric_srid}
    with engine.connect() as conn:
        extent = conn.execute(
            text("SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                 "FROM (SELECT count(*) AS n, ST_Extent(geom) AS e FROM layer_rivers "
                 "WHERE chief_id = :c) x"), {"c": chief}).one()
        if extent[1] is None:
            raise NotFound(f"no river segments are assigned to chief {chief!r}")
        codes = conn.execute(text(
            "SELECT code FROM layer_rivers WHERE chief_id = :c AND code IS NOT NULL"),
            {"c": chief}).scalars().all()
        segments = collection_json(conn, SEGMENTS_SQL, {"chief": chief}, datum,
                                   simplify_deg=settings.simplify_deg)
        stations = _rows(conn, STATIONS_SQL, codes=list(codes))
        station_codes = [s["code"] for s in stations]
        latest = _rows(conn, LATEST_SQL, stations=station_codes)
        trend_rows = _rows(conn, TREND_SQL, stations=station_codes,
                           indicators=list(settings.trend_indicators),
                           days=settings.trend_days)
        zones = collection_json(conn, ZONES_SQL, near, datum,
                                simplify_deg=settings.simplify_deg)
        sources = _sources(conn, near, datum, settings.simplify_deg)
        tasks = _rows(conn, TASKS_SQL, chief=chief)
    n_segments = extent[0]

    m = new_map(settings, lang, shift_bounds(tuple(extent[1:]), datum))

    # zones first so that segments and stations stay clickable above them
    zone_spec = get_layer("risk_zones")
    m.add_child(inline_layer(
        "risk_zones", zones, zone_spec, lang, t("risk_zones", lang),
        style=style_options(zone_spec, fillOpacity=0.25),
    ))
    titles = {**_titles("construction_sites", lang), **_titles("plants", lang)}
    m.add_child(inline_layer(
        "pollution_sources", sources, None, lang, t("pollution_sources", lang),
        style={"color": "#b15928", "fillColor": "#fdbf6f", "weight": 1.5,
               "radius": 6},
        titles=titles,
    ))

    seg_spec = get_layer("rivers")
    m.add_child(inline_layer(
        "segments", segments, seg_spec, lang, t("segments", lang),
        style={"color": WARNING_COLORS["none"], "weight": 5, "colorBy": "level",
               "palette": WARNING_COLORS, "radius": 5},
        titles={**_titles("rivers", lang), **_titles("water_quality_warnings", lang)},
    ))

    latest_by = defaultdict(list)
    for r in latest:
        latest_by[r["station_code"]].append(r)
    trends: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in trend_rows:
        trends[r["station_code"]][r["indicator"]].append((r["observed_at"], r["value"]))
    station_features = []
    for s in stations:
        popup = _station_popup(s, latest_by.get(s["code"], []), trends[s["code"]],
                               settings, lang)
        station_features.append(feature(
            shift_geojson(s.pop("geometry"), datum), {**s, "_popup": popup}, s["id"]))
    m.add_child(inline_layer(
        "stations", collection_of(station_features), get_layer("monitoring_stations"),
        lang,
        t("stations", lang),
    ))

    m.add_child(Legend(
        t("legend_warning", lang),
        [(level_name(lv, lang), WARNING_COLORS[lv]) for lv in reversed(WARNING_LEVELS)],
    ))
    folium.LayerControl(collapsed=False).add_to(m)

    for task in tasks:
        task["bounds"] = json.dumps(shift_bounds(
            (task["minx"], task["miny"], task["maxx"], task["maxy"]), datum))
        task["color"] = WARNING_COLORS.get(task["level"] or "none", "#cccccc")
        task["level_name"] = level_name(task["level"], lang)
        task["due"] = f"{task['due_at']:%Y-%m-%d}" if task["due_at"] else "–"
        task["overdue_days"] = _fmt(task["overdue_days"], 1)
    panel = PANEL.render(
        t=lambda key, **kw: t(key, lang, **kw),
        chief=chief,
        lang=lang,
        other_lang="zh" if lang == "en" else "en",
        segment_count=n_segments,
        station_count=len(stations),
        tasks=tasks,
    )
    log.info("river chief page built", extra={
        "chief": chief, "segments": n_segments, "stations": len(stations),
        "tasks": len(tasks)})
    return render_page(m, settings, f"{t('river_chief_title', lang)} · {chief}",
                       panel, lang)


CHIEFS_SQL = """
SELECT r.chief_id, min(r.chief_level) AS chief_level, count(*) AS segments,
       max(CASE w.level WHEN 'red' THEN 3 WHEN 'orange' THEN 2 WHEN 'yellow' THEN 1
           ELSE 0 END) AS worst,
       (SELECT count(*) FROM layer_patrol_tasks t
        WHERE t.chief_id = r.chief_id AND t.overdue) AS overdue
FROM layer_rivers r
LEFT JOIN layer_water_quality_warnings w ON w.segment_code = r.code
WHERE r.chief_id IS NOT NULL
GROUP BY r.chief_id
ORDER BY worst DESC, overdue DESC, r.chief_id
"""

CHIEFS_PAGE = _ENV.from_string(
    """<!DOCTYPE html>
<html lang="{{ 'zh-CN' if lang == 'zh' else 'en' }}"><head><meta charset="utf-8">
<title>{{ t('chief_overview') }}</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="{{ static }}/gis/maps.css"></head>
<body><div id="gis-panel" style="position:static;width:auto;border:0">
<a class="gis-lang" href="?lang={{ other_lang }}">{{ t('language') }}</a>
<h1>{{ t('chief_overview') }}</h1>
<table id="gis-chiefs"><thead><tr><th>{{ t('chief') }}</th><th>{{ t('segments') }}</th>
<th>{{ t('warning_level') }}</th><th>{{ t('overdue') }}</th></tr></thead><tbody>
{% for c in chiefs %}<tr><td><a href="?chief={{ c.chief_id|urlencode }}&lang={{ lang
}}">{{ c.chief_id }}</a> {{ c.chief_level or '' }}</td><td>{{ c.segments }}</td>
<td><span class="gis-badge" style="background:{{ c.color }}">{{ c.level_name
}}</span></td><td>{{ c.overdue }}</td></tr>
{% endfor %}</tbody></table></div></body></html>
"""
)


def chiefs_page(engine: Engine, settings: MapSettings, lang: Lang) -> str:
    """Every river chief, worst warning first, each linking to their page."""
    with engine.connect() as conn:
        chiefs = _rows(conn, CHIEFS_SQL)
    for c in chiefs:
        level = WARNING_LEVELS[c["worst"]]
        c["color"] = WARNING_COLORS[level]
        c["level_name"] = level_name(level, lang)
    return CHIEFS_PAGE.render(t=lambda key, **kw: t(key, lang, **kw), lang=lang,
                              other_lang="zh" if lang == "en" else "en",
                              static=settings.static_url.rstrip("/"), chiefs=chiefs)


def _sources(conn, near: dict, datum: str, simplify_deg: float) -> str:
    """Construction sites and concrete plants near the segments, one collection."""
    sites = json.loads(collection_json(conn, SITES_SQL, near, datum,
                                       simplify_deg=simplify_deg))
    plants = json.loads(collection_json(conn, PLANTS_SQL, near, datum,
                                        simplify_deg=simplify_deg))
    for f in sites["features"]:
        f["id"] = f"site-{f['id']}"
    for f in plants["features"]:
        f["id"] = f"plant-{f['id']}"
    return collection_of(sites["features"] + plants["features"])


def _titles(layer_id: str, lang: Lang) -> dict[str, str]:
    return property_titles(get_layer(layer_id), lang)


def _jsonable(row: dict) -> dict:
    """Dates and decimals as strings, for embedding."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dt.date | dt.datetime):
            value = value.isoformat()
        out[key] = value
    return out
