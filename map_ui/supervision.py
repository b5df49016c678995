"""The supervision page: every domain's warnings, where each stands in its
loop, the parties responsible, rankings as charts, and the provident-fund
centres by loan ratio.

Warnings are the points of layer ``supervision_warnings`` (written by
``models.supervision.loop``), coloured by level, with their state, deadline
and escalation in the popup; the panel lists open and overdue warnings per
responsible party and shows the rankings as PNG charts drawn by
:func:`chart_png` (route ``/maps/supervision/charts/{name}.png``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from html import escape
from typing import Any
from urllib.parse import urlencode

import folium
from jinja2 import Environment
from sqlalchemy import Engine, text

from gis_server.errors import InvalidParameter, NotFound
from layers import all_layers, get_layer
from layers.supervision.warnings import LEVEL_COLORS, LEVELS, STATES
from map_ui import charts
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
from map_ui.i18n import Lang, level_name, t
from map_ui.settings import MapSettings

log = logging.getLogger("gis_server.maps")

_ENV = Environment(autoescape=True)

#: Labels of this page only, key -> (Chinese, English).
LABELS: dict[str, tuple[str, str]] = {
    "title": ("监管预警地图", "Supervision warnings map"),
    "warnings": ("监管预警", "Supervision warnings"),
    "domain": ("业务领域", "Domain"),
    "all_domains": ("全部领域", "All domains"),
    "state": ("处置状态", "State"),
    "all_states": ("全部状态", "All states"),
    "by_party": ("责任主体（未办结/逾期）", "Responsible parties (open / overdue)"),
    "party": ("责任主体", "Responsible party"),
    "open": ("未办结", "Open"),
    "overdue": ("逾期", "Overdue"),
    "total": ("预警总数", "Warnings"),
    "charts": ("统计图", "Charts"),
    "by_district": ("各区预警排名", "Warnings by district"),
    "by_state": ("预警处置状态", "Warnings by state"),
    "by_domain": ("各领域预警", "Warnings by domain"),
    "no_party": ("未指定", "unassigned"),
    "none": ("暂无预警", "No warnings"),
    "rule": ("规则", "Rule"),
    "level": ("预警等级", "Level"),
    "deadline": ("整改期限", "Deadline"),
    "escalation": ("升级", "Escalation"),
    "summary": ("预警内容", "Summary"),
    "subject": ("对象", "Subject"),
    "raised_at": ("预警时间", "Raised"),
    "district": ("所属区", "District"),
    "fund_centres": ("公积金中心个贷率", "Fund centres by loan ratio"),
    "centre": ("公积金中心", "Fund centre"),
    "alert": ("预警线", "alert"),
    "loan_ratio": ("个贷率", "Loan ratio"),
    "month": ("月份", "Month"),
    "no_ratio": ("无数据", "no data"),
    "shown_of": ("显示 {shown} / 共 {total} 条", "showing {shown} of {total}"),
    "unplaced": ("{n} 条预警未能定位到对象，显示在所属区或市中心",
                 "{n} warnings could not be placed on their subject; drawn at "
                 "their district or the city centre"),
}
STATE_NAMES: dict[str, tuple[str, str]] = {
    "raised": ("已预警", "raised"),
    "dispatched": ("已派发", "dispatched"),
    "rectified": ("已整改待核查", "rectified"),
    "closed": ("已销号", "closed"),
}
STATE_COLORS = {"raised": "#fc8d59", "dispatched": "#fee08b", "rectified": "#91bfdb",
                "closed": "#1a9850"}
DOMAIN_NAMES: dict[str, tuple[str, str]] = {
    "buildings": ("房屋安全", "Buildings"),
    "curtain_walls": ("玻璃幕墙", "Curtain walls"),
    "concrete": ("预拌混凝土", "Concrete"),
    "sites": ("建筑工地", "Construction sites"),
    "fund": ("住房公积金", "Provident fund"),
    "inspections": ("水工程巡检", "Water-engineering inspections"),
}
ESCALATION_NAMES: dict[int, tuple[str, str]] = {
    1: ("督办", "supervised"), 2: ("约谈", "summons"), 3: ("通报", "public notice"),
}
#: [D] Loan-ratio classes of the fund choropleth (个贷率 = loan balance /
#: deposit balance): display bins only; the fund rules hold the thresholds.
LOAN_RATIO_BINS: tuple[tuple[float, str], ...] = (
    (0.60, "#edf8fb"),
    (0.75, "#b3cde3"),
    (0.85, "#8c96c6"),
    (0.95, "#8856a7"),
    (float("inf"), "#810f7c"),
)
#: Chart names of the chart route.
CHARTS = ("warnings_by_district", "warnings_by_state", "warnings_by_domain",
          "ranking_table", "fund_centres")

PANEL = _ENV.from_string(
    """
<a class="gis-lang" href="{{ other_lang_url }}">{{ t('language') }}</a>
<h1>{{ l('title') }}</h1>
<form method="get" id="gis-filter">
  <div><select name="domain">
    <option value="">{{ l('all_domains') }}</option>
    {% for d, name in domains %}<option value="{{ d }}"{% if d == domain %} selected{%
      endif %}>{{ name }}</option>{% endfor %}
  </select>
  <select name="state">
    <option value="">{{ l('all_states') }}</option>
    {% for s, name in states %}<option value="{{ s }}"{% if s == state %} selected{%
      endif %}>{{ name }}</option>{% endfor %}
  </select></div>
  <input type="hidden" name="lang" value="{{ lang }}">
  <button type="submit">{{ t('filter') }}</button>
</form>
<div class="gis-note" id="gis-warning-counts" data-total="{{ total }}"
  data-open="{{ open_total }}" data-overdue="{{ overdue_total }}">
  {{ l('total') }}: {{ total }} · {{ l('open') }}: {{ open_total }} ·
  {{ l('overdue') }}: <span class="gis-overdue">{{ overdue_total }}</span>
  {% if total > shown %}({{ l('shown_of', shown=shown, total=total) }}){% endif %}
</div>
{% if unplaced %}<div class="gis-note">{{ l('unplaced', n=unplaced) }}</div>{% endif %}
<h2>{{ l('by_party') }}</h2>
{% if parties %}
<table id="gis-parties">
<thead><tr><th>{{ l('party') }}</th><th>{{ l('open') }}</th><th>{{ l('overdue')
  }}</th></tr></thead>
<tbody>
{% for p in parties %}
<tr class="gis-row" data-party="{{ p.name }}" data-open="{{ p.open }}"
  data-overdue="{{ p.overdue }}"{% if p.bounds %} data-bounds="{{ p.bounds }}"
  data-layer="supervision_warnings" data-value="{{ p.first_id }}"
  onclick="GIS.zoomTo(this)"{% endif %}>
  <td>{{ p.label }}</td><td>{{ p.open }}</td>
  <td>{% if p.overdue %}<span class="gis-overdue">{{ p.overdue }}</span>{% else
  %}0{% endif %}</td>
</tr>
{% endfor %}
</tbody></table>
{% else %}<div class="gis-note">{{ l('none') }}</div>{% endif %}
<h2>{{ l('charts') }}</h2>
<div id="gis-charts">
{% for c in chart_imgs %}
<img class="gis-chart" data-chart="{{ c.name }}" src="{{ c.src }}" alt="{{ c.alt }}"
  width="356">
{% endfor %}
</div>
"""
)


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "zh" else pair[1]


def label(key: str, lang: Lang, **fmt: object) -> str:
    """A label of this page in ``lang``.

    >>> label("shown_of", "en", shown=1, total=2)
    'showing 1 of 2'
    """
    text_ = _pick(LABELS[key], lang)
    return text_.format(**fmt) if fmt else text_


def state_name(state: str, lang: Lang) -> str:
    return _pick(STATE_NAMES.get(state, (state, state)), lang)


def domain_name(domain: str, lang: Lang) -> str:
    return _pick(DOMAIN_NAMES.get(domain, (domain, domain)), lang)


def loan_ratio_color(ratio: float | None) -> str:
    """Fill colour of a loan ratio (grey when unknown).

    >>> loan_ratio_color(0.5), loan_ratio_color(0.9), loan_ratio_color(None)
    ('#edf8fb', '#8856a7', '#cccccc')
    """
    if ratio is None:
        return "#cccccc"
    return next(color for upper, color in LOAN_RATIO_BINS if ratio < upper)


def known_domains(engine: Engine) -> list[str]:
    """The supervision domains and any other domain with stored warnings."""
    from models.supervision.engine import DOMAINS

    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT DISTINCT domain FROM layer_supervision_warnings "
            "WHERE domain IS NOT NULL")).scalars().all()
    found = set(DOMAINS) | set(stored)
    order = list(DOMAINS)
    return sorted(found, key=lambda d: (order.index(d) if d in order else 99, d))


def check_filters(engine: Engine, domain: str | None,
                  state: str | None) -> tuple[str | None, str | None]:
    """The domain and state asked for (None: all), refusing unknown ones."""
    domain = domain or None
    state = state or None
    if state is not None and state not in STATES:
        raise InvalidParameter(f"state {state!r} is not one of {', '.join(STATES)}")
    if domain is not None and domain not in known_domains(engine):
        raise InvalidParameter(f"unknown domain {domain!r}")
    return domain, state


def _warnings(engine: Engine, domain: str | None, state: str | None,
              limit: int, now: dt.datetime | None) -> list[dict[str, Any]]:
    from models.supervision import loop

    with engine.begin() as conn:
        return loop.list_warnings(conn, domain=domain, state=state, limit=limit,
                                  now=now)


def _popup(w: dict[str, Any], lang: Lang) -> str:
    rows = [
        (label("level", lang), level_name(w["level"], lang)),
        (label("state", lang), state_name(w["state"], lang)),
        (label("summary", lang), w.get("summary")),
        (label("domain", lang), domain_name(w["domain"], lang)),
        (label("rule", lang), w.get("rule")),
        (label("subject", lang), w.get("subject_id")),
        (label("party", lang), w.get("responsible")),
        (label("district", lang), w.get("district")),
        (label("raised_at", lang), _day(w.get("raised_at"))),
        (label("deadline", lang), _day(w.get("deadline"))),
    ]
    if w.get("escalation"):
        rows.append((label("escalation", lang),
                     _pick(ESCALATION_NAMES.get(w["escalation"], ("", "")), lang)))
    html = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                   for k, v in rows if v not in (None, ""))
    if w.get("overdue"):
        html += (f'<tr><th></th><td class="gis-overdue">'
                 f"{escape(label('overdue', lang))}</td></tr>")
    out = f'<table class="gis-popup">{html}</table>'
    kind = _reading_kind(w)
    if kind is not None:
        src = "/maps/supervision/charts/trend.png?" + urlencode(
            {"building": w["subject_id"], "kind": kind, "lang": lang})
        out += f'<img class="gis-trend" src="{escape(src)}" width="320">'
    return out


#: Reading kinds of the buildings domain a trend chart can draw.
READING_KINDS = ("settlement_mm", "tilt_pct", "crack_width_mm")


def _reading_kind(w: dict[str, Any]) -> str | None:
    """The reading kind a building warning is about (for its trend chart)."""
    if w.get("subject_layer") != "buildings" or not w.get("subject_id"):
        return None
    evidence = w.get("evidence") or {}
    kinds = [evidence.get("kind")] + [
        t.get("kind") for t in evidence.get("trends") or () if isinstance(t, dict)]
    return next((k for k in kinds if k in READING_KINDS), None)


def _day(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime(
            "%Y-%m-%d %H:%M")
    return value.isoformat() if isinstance(value, dt.date) else value


def party_rows(warnings: list[dict[str, Any]], lang: Lang) -> list[dict[str, Any]]:
    """Open and overdue warnings per responsible party, most overdue first."""
    parties: dict[str, dict[str, Any]] = {}
    for w in warnings:
        if w["state"] == "closed":
            continue
        name = w.get("responsible") or ""
        p = parties.setdefault(name, {"name": name, "open": 0, "overdue": 0,
                                      "first": w})
        p["open"] += 1
        p["overdue"] += bool(w.get("overdue"))
    rows = sorted(parties.values(),
                  key=lambda p: (-p["overdue"], -p["open"], p["name"]))
    for p in rows:
        p["label"] = p["name"] or label("no_party", lang)
    return rows


def _fund_layer(conn, datum: str, simplify_deg: float,
                lang: Lang) -> tuple[str, int] | None:
    """The fund centres coloured by the loan ratio of the latest reported
    month (``models.supervision.fund.choropleth``), when that domain exists."""
    if not any(s.id == "fund_centres" for s in all_layers()):
        return None
    try:
        from models.supervision.fund import choropleth
    except ImportError:  # the fund domain is not installed
        return None
    month = conn.execute(text("SELECT max(month) FROM feed_fund_metrics")).scalar()
    ratios = ({r["code"]: r for r in choropleth(conn, month)}
              if month is not None else {})
    collection = collection_json(
        conn, "SELECT id, code, name, name_zh, geom FROM layer_fund_centres", {},
        datum, simplify_deg=simplify_deg)
    data = json.loads(collection)
    known = 0
    for f in data["features"]:
        p = f["properties"]
        r = ratios.get(p.get("code")) or {}
        ratio = r.get("loan_ratio")
        known += ratio is not None
        p["ratio_class"] = loan_ratio_color(ratio)
        name = p.get("name_zh") if lang == "zh" and p.get("name_zh") else p.get("name")
        cells = [(label("centre", lang), name or p.get("code")),
                 (label("loan_ratio", lang),
                  f"{ratio:.1%}" if ratio is not None else label("no_ratio", lang))]
        if month is not None:
            cells.append((label("month", lang), month.strftime("%Y-%m")))
        trend = (f'/maps/supervision/charts/trend.png?'
                 f'{urlencode({"centre": p.get("code") or "", "lang": lang})}')
        p["_popup"] = ('<table class="gis-popup">' + "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
            for k, v in cells) + "</table>"
            + f'<img class="gis-trend" src="{escape(trend)}" width="320">')
    return json.dumps(data, ensure_ascii=False), known


def _chart_query(domain: str | None, state: str | None, lang: Lang) -> str:
    pairs = [("lang", lang)]
    if domain:
        pairs.append(("domain", domain))
    if state:
        pairs.append(("state", state))
    return urlencode(pairs)


def supervision_page(engine: Engine, settings: MapSettings, lang: Lang, *,
                     domain: str | None = None, state: str | None = None,
                     now: dt.datetime | None = None,
                     visible: set[str] | None = None) -> str:
    """The supervision HTML page, filtered by domain and state."""
    datum = settings.datum
    domain, state = check_filters(engine, domain, state)
    limit = max(1, min(settings.inline_max_features, 10_000))
    warnings = _warnings(engine, domain, state, limit, now)
    with engine.connect() as conn:
        total = conn.execute(text(
            "SELECT count(*) FROM layer_supervision_warnings WHERE "
            "(CAST(:domain AS text) IS NULL OR domain = :domain) AND "
            "(CAST(:state AS text) IS NULL OR state = :state)"),
            {"domain": domain, "state": state}).scalar_one()
        extent = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM layer_districts) x")).one()
        districts = collection_json(
            conn, "SELECT id, name, adcode, geom FROM layer_districts", {}, datum,
            simplify_deg=settings.simplify_deg)
        fund = (
            _fund_layer(conn, datum, settings.simplify_deg, lang)
            if visible is None or "fund_centres" in visible
            else None
        )
    if extent[0] is None and warnings:
        lons = [w["lon"] for w in warnings]
        lats = [w["lat"] for w in warnings]
        extent = (min(lons), min(lats), max(lons), max(lats))
    bounds = shift_bounds(tuple(extent), datum) if extent[0] is not None else None
    m = new_map(settings, lang, bounds)
    district_spec = get_layer("districts")
    m.add_child(inline_layer(
        "districts", districts, district_spec, lang, t("district", lang),
        style=style_options(district_spec, fillOpacity=0.0)))
    if fund is not None:
        m.add_child(inline_layer(
            "fund_centres", fund[0], get_layer("fund_centres"), lang,
            label("fund_centres", lang), show=fund[1] > 0,
            style={"color": "#555", "fillColor": "#ccc", "weight": 1,
                   "fillOpacity": 0.55, "colorBy": "ratio_class",
                   "palette": {c: c for _, c in LOAN_RATIO_BINS}}))
    spec = get_layer("supervision_warnings")
    features = []
    for w in warnings:
        geometry = shift_geojson(
            f'{{"type":"Point","coordinates":[{w["lon"]!r},{w["lat"]!r}]}}', datum)
        features.append(feature(geometry, {
            "warning_id": w["id"], "level": w["level"], "state": w["state"],
            "domain": w["domain"], "rule": w["rule"],
            "responsible": w.get("responsible"), "overdue": bool(w.get("overdue")),
            "_popup": _popup(w, lang)}, w["id"]))
    m.add_child(inline_layer(
        "supervision_warnings", collection_of(features), spec, lang,
        label("warnings", lang),
        style=style_options(spec, colorBy="level", palette=LEVEL_COLORS)))
    legend = [(level_name(lv, lang), LEVEL_COLORS[lv]) for lv in LEVELS]
    if fund is not None and fund[1] > 0:
        lower = 0.0
        for upper, color in LOAN_RATIO_BINS:
            span = (f"≥ {lower:.0%}" if upper == float("inf")
                    else f"{lower:.0%}–{upper:.0%}")
            legend.append((f"{label('loan_ratio', lang)} {span}", color))
            lower = upper
    m.add_child(Legend(label("level", lang), legend))
    folium.LayerControl(collapsed=False).add_to(m)

    parties = party_rows(warnings, lang)
    for p in parties:
        first = p["first"]
        p["first_id"] = first["id"]
        p["bounds"] = _point_bounds(first["lon"], first["lat"], datum)
    query = _chart_query(domain, state, lang)
    chart_imgs = [
        {"name": name, "src": f"/maps/supervision/charts/{name}.png?{query}",
         "alt": label(key, lang)}
        for name, key in (("warnings_by_district", "by_district"),
                          ("warnings_by_state", "by_state"),
                          ("warnings_by_domain", "by_domain"))
    ]
    other = "zh" if lang == "en" else "en"
    page_query = urlencode([(k, v) for k, v in (("domain", domain), ("state", state))
                            if v])
    panel = PANEL.render(
        t=lambda key, **kw: t(key, lang, **kw),
        l=lambda key, **kw: label(key, lang, **kw),
        lang=lang,
        other_lang_url=(f"?{page_query}&lang={other}" if page_query
                        else f"?lang={other}"),
        domains=[(d, domain_name(d, lang)) for d in known_domains(engine)],
        domain=domain,
        states=[(s, state_name(s, lang)) for s in STATES],
        state=state,
        total=total,
        shown=len(warnings),
        open_total=sum(w["state"] != "closed" for w in warnings),
        overdue_total=sum(bool(w.get("overdue")) for w in warnings),
        unplaced=sum(1 for w in warnings if w.get("located") is False),
        parties=parties[: settings.list_max_rows],
        chart_imgs=chart_imgs,
    )
    log.info("supervision page built", extra={
        "domain": domain, "state": state, "warnings": total,
        "shown": len(warnings), "parties": len(parties),
        "fund_centres": fund is not None})
    return render_page(m, settings, label("title", lang), panel, lang)


def _point_bounds(lon: float, lat: float, datum: str) -> str:
    d = 0.002  # ~200 m around the point
    return json.dumps(shift_bounds((lon - d, lat - d, lon + d, lat + d), datum))


# -- charts -----------------------------------------------------------------


def chart_png(engine: Engine, name: str, lang: Lang, *,
              domain: str | None = None, state: str | None = None,
              building: str | None = None, kind: str | None = None,
              centre: str | None = None, now: dt.datetime | None = None) -> bytes:
    """The PNG chart ``name`` (see :data:`CHARTS`, ``trend``) in ``lang``.

    ``trend`` draws a building's readings (``building`` and ``kind``) or a fund
    centre's loan ratio (``centre``); either answers :class:`NotFound` when its
    domain module is not installed. Labels fall back to English without a CJK
    font (:func:`map_ui.charts.chart_lang`).
    """
    lang = charts.chart_lang(lang)  # type: ignore[assignment]
    if name == "trend":
        if building is not None:
            return _building_trend(engine, building, kind or "settlement_mm", lang)
        if centre is not None:
            return _fund_trend(engine, centre, lang)
        raise InvalidParameter("a trend chart needs building= (and kind=) or centre=")
    if name not in CHARTS:
        raise NotFound(f"no chart {name!r} (charts: {', '.join(CHARTS)}, trend)")
    domain, state = check_filters(engine, domain, state)
    empty = label("none", lang)
    if name == "fund_centres":
        return _fund_centres_chart(engine, lang)
    from models.supervision.loop import rankings

    by = {"warnings_by_district": "district", "warnings_by_domain": "domain",
          "warnings_by_state": "domain", "ranking_table": "district"}[name]
    with engine.connect() as conn:  # counted in SQL, in the caller's scope
        rows = rankings(conn, by, state, domain=domain, now=now)
    if name == "warnings_by_state":
        counts = Counter()
        for r in rows:
            for s in STATES:
                counts[s] += r.get(s, 0) or 0
        return charts.pie_chart(
            {state_name(s, lang): counts.get(s, 0) for s in STATES},
            label("by_state", lang),
            colors={state_name(s, lang): c for s, c in STATE_COLORS.items()},
            empty_text=empty)
    ranked = [{**r, "key": (domain_name(r["key"], lang) if by == "domain"
                            else r["key"] or "—")} for r in rows]
    if name == "ranking_table":
        return charts.table_png(
            ranked, [("key", label("district", lang)), ("open", label("open", lang)),
                     ("overdue", label("overdue", lang)),
                     ("closed", state_name("closed", lang)),
                     ("red", level_name("red", lang)),
                     ("orange", level_name("orange", lang)),
                     ("yellow", level_name("yellow", lang))],
            label("by_district", lang), empty_text=empty)
    return charts.bar_chart(
        ranked[:15], "key", ["open", "overdue", "closed"],
        label("by_district" if by == "district" else "by_domain", lang),
        series_titles={"open": label("open", lang),
                       "overdue": label("overdue", lang),
                       "closed": state_name("closed", lang)},
        colors={"open": "#fc8d59", "overdue": "#d73027", "closed": "#1a9850"},
        empty_text=empty)


def _fund_centres_chart(engine: Engine, lang: Lang) -> bytes:
    """Loan ratio of every centre in the latest reported month, highest first."""
    from models.supervision.fund import FundRules, choropleth

    with engine.connect() as conn:
        month = conn.execute(text("SELECT max(month) FROM feed_fund_metrics")).scalar()
        rows = choropleth(conn, month) if month else []
    name_key = "name_zh" if lang == "zh" else "name"
    ranked = sorted(
        ({"key": r.get(name_key) or r["code"],
          "loan_ratio": round(100 * float(r["loan_ratio"]), 1)}
         for r in rows if r.get("loan_ratio") is not None),
        key=lambda r: -r["loan_ratio"])
    alert = FundRules().loan_ratio_alert
    title = (f"{label('loan_ratio', lang)} (%) · {month or ''} "
             f"({label('alert', lang)} {alert:.0%})")
    return charts.bar_chart(ranked, "key", "loan_ratio", title,
                            series_titles={"loan_ratio": label("loan_ratio", lang)},
                            colors={"loan_ratio": "#4575b4"},
                            empty_text=label("none", lang))


def _building_trend(engine: Engine, building: str, kind: str, lang: Lang) -> bytes:
    """Readings of a building per survey point with what the rules read of them.

    The points; the least-squares line of the trend window with its rate; the
    limit of the value (tilt, crack width); for settlement, the monthly rates
    of the rate rule as bars on a second axis (mm/month) with their limit
    (4 mm/month by default) and the months over it drawn darker.
    """
    try:
        from models.supervision.buildings import DAYS_PER_MONTH, reading_series
    except ImportError as exc:  # the buildings domain is not installed
        raise NotFound("building trends are not available") from exc
    with engine.connect() as conn:
        series = reading_series(conn, building, kind)
    words = {  # this chart's own labels: (zh, en)
        "fit": ("拟合", "fit"), "monthly": ("月沉降速率", "monthly rate"),
        "per_month": ("毫米/月", "mm/month"), "per_day": ("/天", "/day"),
    }

    def w(key: str) -> str:
        return _pick(words[key], lang)

    title = f"{building} · {kind}"
    if not any(s.points for s in series):
        return charts.line_chart({}, title, empty_text=label("none", lang))
    settlement = kind == "settlement_mm"
    fig, ax = charts._figure(title)
    unit = series[0].unit
    for i, s in enumerate(series):
        color = charts.PALETTE[i % len(charts.PALETTE)]
        xs, ys = zip(*s.points, strict=True)
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.0, color=color,
                label=s.sensor_id)
        if s.fit is not None and s.rate_per_day is not None:
            (t0, v0), (t1, v1) = s.fit
            rate = (f"{s.rate_per_day * DAYS_PER_MONTH:+.2f} {w('per_month')}"
                    if settlement else f"{s.rate_per_day:+.4f} {unit}{w('per_day')}")
            ax.plot([t0, t1], [v0, v1], linewidth=3, alpha=0.5, color=color,
                    label=f"{s.sensor_id} {w('fit')} {rate}")
            if s.threshold is not None and s.rate_per_day > 0:
                # the fitted rate carried forward as long again: towards the limit
                ax.plot([t1, t1 + (t1 - t0)], [v1, v1 + (v1 - v0)], linestyle=":",
                        linewidth=1.5, color=color)
    for j, value in enumerate(sorted({s.threshold for s in series
                                      if s.threshold is not None})):
        ax.axhline(value, linestyle="--", linewidth=1,
                   color=("#d73027", "#fc8d59")[j % 2],
                   label=f"{label('alert', lang)} {value:g} {unit}")
    handles, names = ax.get_legend_handles_labels()
    limit = next((s.rate_limit_per_month for s in series
                  if s.rate_limit_per_month is not None), None)
    months = [(i, m) for i, s in enumerate(series) for m in s.monthly]
    if settlement and months:
        bars = ax.twinx()
        width = 24.0 / max(1, len(series))  # days, side by side per point
        for i, m in months:
            year, mon = int(m.month[:4]), int(m.month[5:7])
            mid = dt.datetime(year, mon, 15, tzinfo=m.last.tzinfo)
            over = limit is not None and m.rate_mm_month > limit
            drawn = bars.bar(
                mid + dt.timedelta(days=(i - (len(series) - 1) / 2) * width),
                m.rate_mm_month, width=width * 0.9,
                color=charts.PALETTE[i % len(charts.PALETTE)],
                alpha=0.55 if over else 0.2, zorder=0)
            bars.bar_label(drawn, labels=[f"{m.rate_mm_month:.1f}"], fontsize=7,
                           padding=1)
        bars.set_ylabel(w("per_month"))
        top = max([m.rate_mm_month for _, m in months] + [limit or 0.0])
        bars.set_ylim(min(0.0, min(m.rate_mm_month for _, m in months)), top * 1.6)
        if limit is not None:
            line = bars.axhline(limit, linestyle=":", linewidth=1.5, color="#d73027")
            handles.append(line)
            names.append(f"{label('alert', lang)} {limit:g} {w('per_month')}")
        from matplotlib.patches import Patch

        handles.append(Patch(color=charts.PALETTE[0], alpha=0.4))
        names.append(w("monthly"))
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
    if unit:
        ax.set_ylabel(unit)
    ax.grid(True, linewidth=0.3)
    ax.legend(handles, names, loc="upper left", fontsize=7, frameon=False)
    fig.autofmt_xdate()
    return charts._png(fig)


def _fund_trend(engine: Engine, centre: str, lang: Lang) -> bytes:
    try:
        from models.supervision.fund import FundRules, centre_metrics
    except ImportError as exc:  # the fund domain is not installed
        raise NotFound("fund trends are not available") from exc
    with engine.connect() as conn:
        rows = centre_metrics(conn, centre)
    points = [(r["month"], float(r["loan_ratio"])) for r in rows
              if r.get("loan_ratio") is not None]
    alert = FundRules().loan_ratio_alert
    return charts.line_chart(
        {label("loan_ratio", lang): points}, f"{centre} · {label('loan_ratio', lang)}",
        {f"{label('alert', lang)} {alert:.0%}": alert},
        empty_text=label("none", lang))
