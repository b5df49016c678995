"""The supervision page: every domain's warnings, where each stands in its
loop, the parties responsible, rankings as charts, and the provident-fund
centres by liquidity level and loan ratio.

Warnings are the points of layer ``supervision_warnings`` (written by
``models.supervision.loop``), coloured by level, with their state, deadline
and escalation in the popup; the panel lists open and overdue warnings per
responsible party (counted in SQL over every warning the caller may see, not
only those drawn) and shows the rankings as PNG charts drawn by
:func:`chart_png` (route ``/maps/supervision/charts/{name}.png``): warnings
per district and per fund centre, by state and domain, ranking tables, the
centres' loan ratios and large single flows, the enterprises' credit ranking,
and trend charts of a building or a fund centre.
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
    "fund_centres": ("公积金中心流动性风险", "Fund centres: liquidity risk"),
    "fund_legend": ("公积金中心（流动性风险等级、个贷率）",
                    "Fund centres (liquidity level, loan ratio)"),
    "centre": ("公积金中心", "Fund centre"),
    "by_centre": ("各公积金中心预警排名", "Warnings by fund centre"),
    "alert": ("预警线", "alert"),
    "alarm": ("报警线", "alarm"),
    "loan_ratio": ("个贷率", "Loan ratio"),
    "liquidity_level": ("流动性风险等级", "Liquidity level"),
    "level_n": ("{n}级", "{n}"),
    "no_level": ("无", "none"),
    "no_level_yet": ("未达流动性风险等级", "no liquidity level"),
    "negative_run": ("净流量连续{n}个月为负", "net flow negative {n} months running"),
    "net_flow": ("资金净流量", "Net fund flow"),
    "overdue_rate": ("逾期率", "Overdue rate"),
    "flows": ("缴存、提取与贷款", "Deposits, withdrawals and loans"),
    "balances": ("缴存与个贷余额", "Deposit and loan balances"),
    "deposits": ("缴存额", "Deposits"),
    "withdrawals": ("提取额", "Withdrawals"),
    "loans_issued": ("贷款发放额", "Loans issued"),
    "principal_repaid": ("回收本金", "Principal repaid"),
    "deposit_balance": ("缴存余额", "Deposit balance"),
    "loan_balance": ("个贷余额", "Loan balance"),
    "thousand_yuan": ("千元", "thousand yuan"),
    "trends": ("趋势图", "Trends"),
    "large_flows": ("大额资金分档（近{n}个月：单月最大单笔所在档次的月数）",
                    "Large single flows by band (last {n} months: months whose "
                    "largest flow fell in each band)"),
    "band": ("{band} 千元", "{band} thousand yuan"),
    "enterprise_credit": ("企业信用分（低分在前）",
                          "Enterprise credit scores, worst first"),
    "enterprise": ("企业", "Enterprise"),
    "rank": ("排名", "Rank"),
    "score": ("信用分", "Score"),
    "blacklisted": ("黑名单", "Blacklisted"),
    "open_sites": ("在建项目", "Open sites"),
    "records": ("不良/信用记录", "Bad/credit records"),
    "yes": ("是", "yes"),
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
#: Classes of the fund choropleth, most severe first, and their fill: the
#: liquidity level (models.supervision.fund) decides first, then the loan ratio
#: against the alert line (both thresholds are the fund rules' settings).
FUND_COLORS: dict[str, str] = {
    "level3": "#a50f15",
    "level2": "#fb6a4a",
    "level1": "#fcbba1",
    "alert": "#9e9ac8",
    "normal": "#cbc9e2",
    "low": "#f2f0f7",
    "none": "#cccccc",
}
#: [D] Loan ratio under which a centre without a level is drawn in the lightest
#: class: a display bin only, no rule behind it.
FUND_RATIO_LOW = 0.75
#: Trend charts of a fund centre (``trend.png?centre=...&metric=...``).
FUND_METRICS = ("loan_ratio", "net_flow", "overdue_rate", "flows", "balances")
#: [D] Months of large single flows the band chart counts by default.
LARGE_FLOW_MONTHS = 12
#: [D] Enterprises drawn in the credit chart and table (worst first).
ENTERPRISES_SHOWN = 20
#: Chart names of the chart route (besides ``trend``).
CHARTS = ("warnings_by_district", "warnings_by_centre", "warnings_by_state",
          "warnings_by_domain", "ranking_table", "fund_centres", "fund_large_flows",
          "enterprise_credit", "enterprise_table")
#: What a ranking can be per: districts (every domain but the fund's, whose
#: findings name their centre as district) or fund centres.
RANKING_BY = ("district", "centre")

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
<a href="{{ c.src }}" target="_blank"><img class="gis-chart" data-chart="{{ c.name }}"
  src="{{ c.src }}" alt="{{ c.alt }}" title="{{ c.alt }}" width="356"></a>
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


def fund_class(ratio: float | None, level: int, alert: float) -> str:
    """The choropleth class of a centre (a key of :data:`FUND_COLORS`): its
    liquidity level, else its loan ratio against the ``alert`` line.

    >>> [fund_class(r, lv, 0.85) for r, lv in ((None, 0), (0.6, 0), (0.8, 0),
    ...     (0.87, 0), (0.87, 1), (0.92, 2), (0.96, 3))]
    ['none', 'low', 'normal', 'alert', 'level1', 'level2', 'level3']
    """
    if level:
        return f"level{level}"
    if ratio is None:
        return "none"
    if ratio >= alert:
        return "alert"
    return "normal" if ratio >= FUND_RATIO_LOW else "low"


def fund_legend(lang: Lang, settings: Any) -> list[tuple[str, str]]:
    """Legend entries of the fund classes, with the thresholds of the fund
    rules ``settings`` (a ``FundRules``), most severe first."""
    s = settings
    lvl = label("liquidity_level", lang)
    ratio = label("loan_ratio", lang)

    def level_n(n: int) -> str:
        return f"{lvl} {label('level_n', lang, n=n)}"

    text_ = {
        "level3": f"{level_n(3)} (≥ {s.liquidity_level_3:.0%})",
        "level2": f"{level_n(2)} ({s.liquidity_level_2:.0%}–"
                  f"{s.liquidity_level_3:.0%})",
        "level1": f"{level_n(1)} ({s.liquidity_level_1:.0%}–"
                  f"{s.liquidity_level_2:.0%}, "
                  f"{label('negative_run', lang, n=s.negative_flow_months)})",
        "alert": f"{ratio} ≥ {s.loan_ratio_alert:.0%}, {label('no_level_yet', lang)}",
        "normal": f"{ratio} {FUND_RATIO_LOW:.0%}–{s.loan_ratio_alert:.0%}",
        "low": f"{ratio} < {FUND_RATIO_LOW:.0%}",
        "none": f"{ratio}: {label('no_ratio', lang)}",
    }
    return [(text_[k], FUND_COLORS[k]) for k in FUND_COLORS]


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


def warning_counts(conn, lang: Lang, *, domain: str | None = None,
                   state: str | None = None,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """Totals and the per-party list of the page, counted in SQL over every
    warning ``conn`` may see (its row-level scope), however many are drawn.

    ``total``, ``open`` and ``overdue`` count the warnings matching the
    filters; ``parties`` has, per responsible party with open warnings, most
    overdue first: ``name``, ``label``, ``open``, ``overdue`` and the id and
    position (``first_id``, ``lon``, ``lat``) of its most severe, newest open
    warning (what a click on the row zooms to).
    """
    from models.supervision.loop import rankings

    rows = rankings(conn, "responsible", state, domain=domain, now=now)
    level_rank = f"array_position(ARRAY[{', '.join(repr(x) for x in LEVELS)}], level)"
    firsts = {
        r.name: r for r in conn.execute(text(
            "SELECT DISTINCT ON (coalesce(responsible, '')) "
            "coalesce(responsible, '') AS name, id, ST_X(geom) AS lon, "
            "ST_Y(geom) AS lat FROM layer_supervision_warnings "
            "WHERE state <> 'closed' "
            "AND (CAST(:domain AS text) IS NULL OR domain = :domain) "
            "AND (CAST(:state AS text) IS NULL OR state = :state) "
            f"ORDER BY coalesce(responsible, ''), {level_rank} DESC, "
            "raised_at DESC, id DESC"), {"domain": domain, "state": state})
    }
    by_name: dict[str, dict[str, Any]] = {}
    for r in rows:
        name = r["key"] or ""  # no party and an empty one are both unassigned
        if not r["open"] or name not in firsts:
            continue
        first = firsts[name]
        p = by_name.setdefault(name, {
            "name": name, "label": name or label("no_party", lang), "open": 0,
            "overdue": 0, "first_id": first.id, "lon": first.lon, "lat": first.lat})
        p["open"] += r["open"]
        p["overdue"] += r["overdue"]
    parties = sorted(by_name.values(),
                     key=lambda p: (-p["overdue"], -p["open"], p["name"]))
    return {"total": sum(r["total"] for r in rows),
            "open": sum(r["open"] for r in rows),
            "overdue": sum(r["overdue"] for r in rows),
            "parties": parties}


def _fund_layer(conn, datum: str, simplify_deg: float,
                lang: Lang) -> tuple[str, int, list[tuple[str, str]]] | None:
    """The fund centres coloured by liquidity level and loan ratio of the
    latest reported month (``models.supervision.fund.choropleth``), with
    their figures and trend charts in the popup, and the legend entries;
    None when that domain does not exist."""
    if not any(s.id == "fund_centres" for s in all_layers()):
        return None
    try:
        from models.supervision.fund import FundRules, choropleth
    except ImportError:  # the fund domain is not installed
        return None
    rules = FundRules()
    month = conn.execute(text("SELECT max(month) FROM feed_fund_metrics")).scalar()
    figures = ({r["code"]: r for r in choropleth(conn, month, rules)}
               if month is not None else {})
    collection = collection_json(
        conn, "SELECT id, code, name, name_zh, geom FROM layer_fund_centres", {},
        datum, simplify_deg=simplify_deg)
    data = json.loads(collection)
    known = 0
    for f in data["features"]:
        p = f["properties"]
        r = figures.get(p.get("code")) or {}
        ratio, level = r.get("loan_ratio"), r.get("liquidity_level") or 0
        known += ratio is not None
        p["fund_class"] = fund_class(ratio, level, rules.loan_ratio_alert)
        p["liquidity_level"] = level
        p["loan_ratio"] = None if ratio is None else round(ratio, 4)
        p["_popup"] = _fund_popup(p, r, month, lang)
    return json.dumps(data, ensure_ascii=False), known, fund_legend(lang, rules)


def _fund_popup(p: dict[str, Any], r: dict[str, Any], month: dt.date | None,
                lang: Lang) -> str:
    """A centre's popup: level, loan ratio, net flow, overdue rate, trends."""
    name = p.get("name_zh") if lang == "zh" and p.get("name_zh") else p.get("name")
    ratio, level = r.get("loan_ratio"), r.get("liquidity_level") or 0
    flow, overdue = r.get("net_flow"), r.get("overdue_rate_permille")
    none = label("no_ratio", lang)
    cells = [
        (label("centre", lang), name or p.get("code")),
        (label("month", lang), month.strftime("%Y-%m") if month else none),
        (label("liquidity_level", lang),
         label("level_n", lang, n=level) if level else label("no_level", lang)),
        (label("loan_ratio", lang), f"{ratio:.1%}" if ratio is not None else none),
        (label("net_flow", lang),
         f"{flow:+,.0f} {label('thousand_yuan', lang)}" if flow is not None
         else none),
        (label("overdue_rate", lang),
         f"{overdue:.2f} ‰" if overdue is not None else none),
    ]
    code = p.get("code") or ""

    def trend(metric: str) -> str:
        return "/maps/supervision/charts/trend.png?" + urlencode(
            {"centre": code, "metric": metric, "lang": lang})

    links = " · ".join(
        f'<a href="{escape(trend(m))}" target="_blank" data-metric="{m}">'
        f"{escape(label(m, lang))}</a>" for m in FUND_METRICS)
    return ('<table class="gis-popup">' + "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
        for k, v in cells) + "</table>"
        + f'<img class="gis-trend" src="{escape(trend("loan_ratio"))}" width="320">'
        + f'<div class="gis-note">{escape(label("trends", lang))}: {links}</div>')


def _chart_query(domain: str | None, state: str | None, lang: Lang,
                 **extra: str) -> str:
    pairs = [("lang", lang)]
    if domain:
        pairs.append(("domain", domain))
    if state:
        pairs.append(("state", state))
    pairs += list(extra.items())
    return urlencode(pairs)


def _chart_imgs(domain: str | None, state: str | None, lang: Lang, *,
                fund: bool, enterprises: bool) -> list[dict[str, str]]:
    """The charts the page links: the rankings, the fund centres' (when the
    caller sees them) and the enterprises' credit (when city-wide)."""
    base = "/maps/supervision/charts/"
    query = _chart_query(domain, state, lang)
    charts_ = [("warnings_by_district", "by_district", query),
               ("warnings_by_state", "by_state", query),
               ("warnings_by_domain", "by_domain", query),
               ("ranking_table", "by_district", query)]
    if fund:
        by_centre = _chart_query(domain, state, lang, by="centre")
        charts_ += [("warnings_by_centre", "by_centre", query),
                    ("ranking_table", "by_centre", by_centre),
                    ("fund_centres", "loan_ratio", f"lang={lang}"),
                    ("fund_large_flows", "large_flows", f"lang={lang}")]
    if enterprises:
        charts_ += [("enterprise_credit", "enterprise_credit", f"lang={lang}"),
                    ("enterprise_table", "enterprise_credit", f"lang={lang}")]
    return [{"name": name, "src": f"{base}{name}.png?{q}",
             "alt": label(key, lang, n=LARGE_FLOW_MONTHS)}
            for name, key, q in charts_]


def supervision_page(engine: Engine, settings: MapSettings, lang: Lang, *,
                     domain: str | None = None, state: str | None = None,
                     now: dt.datetime | None = None,
                     visible: set[str] | None = None,
                     enterprises: bool = True) -> str:
    """The supervision HTML page, filtered by domain and state.

    ``visible``: the layers the caller may read (None: all); ``enterprises``:
    whether the caller may see the city-wide enterprise credit ranking.
    """
    datum = settings.datum
    domain, state = check_filters(engine, domain, state)
    limit = max(1, min(settings.inline_max_features, 10_000))
    warnings = _warnings(engine, domain, state, limit, now)
    with engine.connect() as conn:
        counts = warning_counts(conn, lang, domain=domain, state=state, now=now)
        unplaced = conn.execute(text(
            "SELECT count(*) FROM layer_supervision_warnings WHERE "
            "located IS FALSE AND "
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
            style={"color": "#555", "fillColor": FUND_COLORS["none"], "weight": 1,
                   "fillOpacity": 0.55, "colorBy": "fund_class",
                   "palette": FUND_COLORS}))
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
    m.add_child(Legend(label("level", lang), legend))
    if fund is not None and fund[1] > 0:
        m.add_child(Legend(label("fund_legend", lang), fund[2]))
    folium.LayerControl(collapsed=False).add_to(m)

    parties = counts["parties"]
    for p in parties:
        p["bounds"] = _point_bounds(p["lon"], p["lat"], datum)
    chart_imgs = _chart_imgs(domain, state, lang, fund=fund is not None,
                             enterprises=enterprises)
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
        total=counts["total"],
        shown=len(warnings),
        open_total=counts["open"],
        overdue_total=counts["overdue"],
        unplaced=unplaced,
        parties=parties[: settings.list_max_rows],
        chart_imgs=chart_imgs,
    )
    log.info("supervision page built", extra={
        "domain": domain, "state": state, "warnings": counts["total"],
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
              centre: str | None = None, metric: str | None = None,
              by: str | None = None, months: int | None = None,
              now: dt.datetime | None = None) -> bytes:
    """The PNG chart ``name`` (see :data:`CHARTS`, ``trend``) in ``lang``.

    ``trend`` draws a building's readings (``building`` and ``kind``) or a fund
    centre's ``metric`` (:data:`FUND_METRICS`, default the loan ratio) over
    its months; either answers :class:`NotFound` when its domain module is not
    installed. ``ranking_table`` is per district or per fund centre (``by``);
    ``fund_large_flows`` counts the last ``months`` months. Every count is
    made in SQL on the caller's connection, so in the caller's scope. Labels
    fall back to English without a CJK font (:func:`map_ui.charts.chart_lang`).
    """
    lang = charts.chart_lang(lang)  # type: ignore[assignment]
    if name == "trend":
        if building is not None:
            return _building_trend(engine, building, kind or "settlement_mm", lang)
        if centre is not None:
            return _fund_trend(engine, centre, metric or "loan_ratio", lang)
        raise InvalidParameter("a trend chart needs building= (and kind=) or centre=")
    if name not in CHARTS:
        raise NotFound(f"no chart {name!r} (charts: {', '.join(CHARTS)}, trend)")
    domain, state = check_filters(engine, domain, state)
    empty = label("none", lang)
    if name == "fund_centres":
        return _fund_centres_chart(engine, lang)
    if name == "fund_large_flows":
        return _large_flows_chart(engine, lang, months or LARGE_FLOW_MONTHS)
    if name in ("enterprise_credit", "enterprise_table"):
        return _enterprise_chart(engine, lang, table=name == "enterprise_table",
                                 now=now)
    if by is not None and by not in RANKING_BY:
        raise InvalidParameter(f"by must be one of {', '.join(RANKING_BY)}")
    per = {"warnings_by_district": "district", "warnings_by_centre": "centre",
           "warnings_by_domain": "domain", "warnings_by_state": "domain",
           "ranking_table": by or "district"}[name]
    with engine.connect() as conn:  # counted in SQL, in the caller's scope
        rows = ranking_rows(conn, per, state, domain=domain, now=now)
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
    ranked = [{**r, "key": (domain_name(r["key"], lang) if per == "domain"
                            else r["key"] or "—")} for r in rows]
    title = label({"district": "by_district", "centre": "by_centre",
                   "domain": "by_domain"}[per], lang)
    if name == "ranking_table":
        return charts.table_png(
            ranked, [("key", label("district" if per == "district" else "centre",
                                   lang)),
                     ("open", label("open", lang)),
                     ("overdue", label("overdue", lang)),
                     ("closed", state_name("closed", lang)),
                     ("red", level_name("red", lang)),
                     ("orange", level_name("orange", lang)),
                     ("yellow", level_name("yellow", lang))],
            title, empty_text=empty)
    return charts.bar_chart(
        ranked[:15], "key", ["open", "overdue", "closed"], title,
        series_titles={"open": label("open", lang),
                       "overdue": label("overdue", lang),
                       "closed": state_name("closed", lang)},
        colors={"open": "#fc8d59", "overdue": "#d73027", "closed": "#1a9850"},
        empty_text=empty)


#: Counted columns of a ranking row (``models.supervision.loop.rankings``).
_COUNTS = ("total", "open", "overdue", "closed", *LEVELS,
           *(s for s in STATES if s != "closed"))


def ranking_rows(conn, per: str, state: str | None = None, *,
                 domain: str | None = None,
                 now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Warning counts per district, fund centre or domain, most open first.

    The fund's findings carry their centre as district: a ranking per
    district leaves them out, one per centre has only them. Counted in SQL
    by ``models.supervision.loop.rankings`` on ``conn`` (its row scope).
    """
    from models.supervision.loop import rankings

    if per == "domain":
        return rankings(conn, "domain", state, domain=domain, now=now)
    if per == "centre":
        if domain not in (None, "fund"):
            return []
        return rankings(conn, "district", state, domain="fund", now=now)
    if domain == "fund":
        return []
    rows = rankings(conn, "district", state, domain=domain, now=now)
    if domain is not None:
        return rows
    fund = {r["key"]: r for r in rankings(conn, "district", state, domain="fund",
                                          now=now)}
    out = []
    for r in rows:
        f = fund.get(r["key"])
        if f is not None:
            r = {**r, **{c: (r.get(c) or 0) - (f.get(c) or 0) for c in _COUNTS}}
        if r["total"]:
            out.append(r)
    out.sort(key=lambda r: (-r["open"], -r["overdue"], -r["total"],
                            r["key"] or ""))
    return out


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


def _centre_names(conn, lang: Lang) -> dict[str, str]:
    name = "coalesce(name_zh, name, code)" if lang == "zh" else "coalesce(name, code)"
    return dict(conn.execute(text(
        f"SELECT DISTINCT ON (code) code, {name} FROM layer_fund_centres "
        "WHERE code IS NOT NULL ORDER BY code, updated_at DESC, id DESC")).all())


def large_flow_rows(conn, lang: Lang, months: int) -> tuple[list[dict], list[str]]:
    """Per centre, the months (of the last ``months`` reported) whose largest
    single flow fell in each large band (``fund.large_flow_bands``), most
    first; and the band labels."""
    from models.supervision.fund import FundRules, band_label, large_flow_bands

    if not 1 <= months <= 120:
        raise InvalidParameter("months must be 1..120")
    rules = FundRules()
    bands = [band_label(i, rules.large_flow_bands)
             for i in range(1, len(rules.large_flow_bands) + 1)]
    last = conn.execute(text("SELECT max(month) FROM feed_fund_metrics")).scalar()
    if last is None:
        return [], bands
    k = last.year * 12 + last.month - 1 - (months - 1)
    first = dt.date(k // 12, k % 12 + 1, 1)
    names = _centre_names(conn, lang)
    rows = []
    for item in large_flow_bands(conn, first, last, rules):
        if item["code"] not in names:  # only centres the caller sees
            continue
        row = {"key": names[item["code"]], **{b: item["bands"][b] for b in bands}}
        row["months"] = sum(row[b] for b in bands)
        if row["months"]:
            rows.append(row)
    rows.sort(key=lambda r: (-r["months"], r["key"]))
    return rows, bands


def _large_flows_chart(engine: Engine, lang: Lang, months: int) -> bytes:
    with engine.connect() as conn:
        rows, bands = large_flow_rows(conn, lang, months)
    return charts.bar_chart(
        rows[:15], "key", bands, label("large_flows", lang, n=months),
        series_titles={b: label("band", lang, band=b) for b in bands},
        colors=dict(zip(bands, ("#fee08b", "#fdae61", "#f46d43", "#a50026"),
                        strict=False)),
        empty_text=label("none", lang), stacked=True)


def _enterprise_chart(engine: Engine, lang: Lang, *, table: bool,
                      now: dt.datetime | None) -> bytes:
    """The enterprises' credit ranking, worst first (blacklisted on top)."""
    try:
        from models.supervision.sites import enterprise_rankings
    except ImportError as exc:  # the sites domain is not installed
        raise NotFound("enterprise credit is not available") from exc
    from models.supervision.engine import LOCAL_TZ

    day = (now or dt.datetime.now(dt.UTC)).astimezone(LOCAL_TZ).date()
    with engine.connect() as conn:
        rows = enterprise_rankings(conn, day, limit=ENTERPRISES_SHOWN)
    title = f"{label('enterprise_credit', lang)} · {day.isoformat()}"
    empty = label("none", lang)
    flag = label("blacklisted", lang)
    if table:
        shown = [{**r, "blacklisted": label("yes", lang) if r["blacklisted"] else "",
                  "records": sum(r["records"].values()),
                  "score": f"{r['score']:g}"} for r in rows]
        return charts.table_png(
            shown, [("rank", label("rank", lang)),
                    ("enterprise", label("enterprise", lang)),
                    ("score", label("score", lang)),
                    ("blacklisted", flag),
                    ("open_sites", label("open_sites", lang)),
                    ("records", label("records", lang))],
            title, max_rows=ENTERPRISES_SHOWN, empty_text=empty)
    # a blacklisted enterprise's bar is its own series (red, named in the legend)
    bars = [{"key": f"{r['rank']}. {r['enterprise']}",
             "listed" if r["blacklisted"] else "score": r["score"]} for r in rows]
    return charts.bar_chart(bars[:15], "key", ["score", "listed"], title,
                            series_titles={"score": label("score", lang),
                                           "listed": f"{label('score', lang)} "
                                                     f"({flag})"},
                            colors={"score": "#756bb1", "listed": "#d73027"},
                            empty_text=empty, stacked=True)


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


def _fund_trend(engine: Engine, centre: str, metric: str, lang: Lang) -> bytes:
    """A fund centre's monthly ``metric`` (:data:`FUND_METRICS`) as lines, with
    the thresholds of the fund rules where the metric has any."""
    if metric not in FUND_METRICS:
        raise InvalidParameter(f"metric must be one of {', '.join(FUND_METRICS)}")
    try:
        from models.supervision.fund import FundRules, centre_metrics
    except ImportError as exc:  # the fund domain is not installed
        raise NotFound("fund trends are not available") from exc
    rules = FundRules()
    with engine.connect() as conn:
        rows = centre_metrics(conn, centre, rules)
        name = _centre_names(conn, lang).get(centre, centre)

    def points(key: str, scale: float = 1.0) -> list[tuple]:
        return [(r["month"], float(r[key]) * scale) for r in rows
                if r.get(key) is not None]

    kyuan = label("thousand_yuan", lang)
    thresholds: dict[str, float] = {}
    if metric == "loan_ratio":
        lines = {label("loan_ratio", lang): points("loan_ratio", 100.0)}
        thresholds = {
            f"{label('alert', lang)} {rules.loan_ratio_alert:.0%}":
                100 * rules.loan_ratio_alert,
            f"{label('liquidity_level', lang)} {label('level_n', lang, n=2)} "
            f"≥ {rules.liquidity_level_2:.0%}": 100 * rules.liquidity_level_2,
            f"{label('liquidity_level', lang)} {label('level_n', lang, n=3)} "
            f"≥ {rules.liquidity_level_3:.0%}": 100 * rules.liquidity_level_3,
        }
        unit = "%"
    elif metric == "net_flow":
        lines = {label("net_flow", lang): points("net_flow")}
        thresholds = {"0": 0.0}
        unit = kyuan
    elif metric == "overdue_rate":
        lines = {label("overdue_rate", lang): points("overdue_rate_permille")}
        thresholds = {
            f"{label('alert', lang)} {rules.overdue_warning_permille:g} ‰":
                rules.overdue_warning_permille,
            f"{label('alarm', lang)} {rules.overdue_alarm_permille:g} ‰":
                rules.overdue_alarm_permille,
        }
        unit = "‰"
    else:
        keys = (("deposits", "withdrawals", "loans_issued", "principal_repaid")
                if metric == "flows" else ("deposit_balance", "loan_balance"))
        lines = {label(k, lang): points(k) for k in keys}
        unit = kyuan
    return charts.line_chart(lines, f"{name} · {label(metric, lang)}",
                             thresholds or None, y_label=unit,
                             empty_text=label("none", lang))
