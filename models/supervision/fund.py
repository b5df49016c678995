"""Housing provident fund rules (住房公积金) for Guangdong's 21 centres.

The evaluator reads the ``fund_metrics`` and ``fund_centre_limits`` feeds and
the ``fund_centres`` layer (``layers/supervision/fund.py``) and checks each
centre's latest reported month (DOMAIN.md §5); every threshold is a field of
:class:`FundRules` (environment ``GIS_RULES_FUND_*``):

- loan ratio 个贷率 = personal housing-loan balance / deposit balance [S];
  85 % is the common alert line [S];
- the provincial liquidity levels [S]: 1 at 85-90 % with the net flow negative
  three months running, 2 at 90-95 %, 3 at >= 95 % (yellow / orange / red);
- net flow = deposits + principal repaid - withdrawals - loans issued [D];
- overdue rate 逾期率 = overdue loan balance / loan balance: warning above
  1 per mille, alarm above 1.5 per mille [D];
- a single flow above the centre's own large-flow limit, placed in the
  500-1000 / 1000-1500 / 1500-2000 / >= 2000 thousand-yuan bands [R].

The loan ratio, the liquidity level and the overdue rate are standing
conditions of a centre: each is one warning per centre and rule (period
``""``) for as long as it lasts, updated every month with that month's figures
and observed at the evaluation; a large single flow is an event of its month
(period ``YYYY-MM``), observed at the end of that month (or the evaluation,
if earlier).

All amounts are thousand yuan. :func:`centre_metrics` (trend charts) and
:func:`choropleth` (the map) serve the pages; :func:`demo_centres` and
:func:`demo_records` make invented demo data.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Connection, text

from gis_server.errors import NotFound
from gis_server.overrides import OverridableSettings
from ingest.batch import FeatureBatch
from models.supervision.engine import end_of_day
from models.supervision.rules import (
    LEVELS,
    Finding,
    Rule,
    register_evaluator,
    register_rule,
)

__all__ = [
    "CENTRES",
    "FundRules",
    "centre_metrics",
    "choropleth",
    "demo_centres",
    "demo_records",
    "evaluate",
    "flow_band",
    "large_flow_bands",
    "liquidity_level",
    "loan_ratio",
    "net_flow",
    "overdue_level",
]

log = logging.getLogger("gis_server.supervision.fund")

DOMAIN = "fund"
LAYER = "fund_centres"
TZ = ZoneInfo("Asia/Shanghai")
LIQUIDITY_SCHEME = "Guangdong provident fund liquidity risk scheme"


class FundRules(OverridableSettings):
    """Thresholds of the provident fund rules (ratios as fractions)."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_RULES_FUND_", env_file=".env", extra="ignore"
    )

    loan_ratio_alert: float = Field(
        default=0.85,
        gt=0,
        description="[S] 个贷率 (loan balance / deposit balance) alert line, 85 % "
        "as commonly used by the centres and the province.",
    )
    liquidity_level_1: float = Field(
        default=0.85,
        gt=0,
        description=f"[S] {LIQUIDITY_SCHEME}: level 1 from this loan ratio (with "
        "the net flow negative `negative_flow_months` months running).",
    )
    liquidity_level_2: float = Field(
        default=0.90,
        gt=0,
        description=f"[S] {LIQUIDITY_SCHEME}: level 2 from this loan ratio.",
    )
    liquidity_level_3: float = Field(
        default=0.95,
        gt=0,
        description=f"[S] {LIQUIDITY_SCHEME}: level 3 from this loan ratio.",
    )
    negative_flow_months: int = Field(
        default=3,
        ge=1,
        description=f"[S] {LIQUIDITY_SCHEME}: consecutive months of negative net "
        "flow that make 85-90 % a level 1.",
    )
    liquidity_colours: tuple[str, str, str] = Field(
        default=("yellow", "orange", "red"),
        description="[D] Warning level of liquidity levels 1, 2 and 3.",
    )
    overdue_warning_permille: float = Field(
        default=1.0,
        ge=0,
        description="[D] Overdue loan balance / loan balance above this many per "
        "mille is a warning (yellow).",
    )
    overdue_alarm_permille: float = Field(
        default=1.5,
        ge=0,
        description="[D] Above this many per mille it is an alarm (orange).",
    )
    large_flow_bands: tuple[float, ...] = Field(
        default=(500.0, 1000.0, 1500.0, 2000.0),
        description="[R] Lower bounds (thousand yuan) of the large single-flow "
        "bands 500-1000, 1000-1500, 1500-2000, >= 2000 tracked by the centres.",
    )
    large_flow_band_levels: tuple[str, ...] = Field(
        default=("yellow", "yellow", "yellow", "orange", "red"),
        description="[D] Warning level of a flow above the centre's limit, per "
        "band: below the first band, then each band in order.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> FundRules:
        if not (
            self.liquidity_level_1 <= self.liquidity_level_2 <= self.liquidity_level_3
        ):
            raise ValueError("liquidity levels must not decrease from 1 to 3")
        if self.overdue_alarm_permille < self.overdue_warning_permille:
            raise ValueError("overdue alarm below the warning")
        if list(self.large_flow_bands) != sorted(self.large_flow_bands):
            raise ValueError("large_flow_bands must increase")
        if len(self.large_flow_band_levels) != len(self.large_flow_bands) + 1:
            raise ValueError("one large_flow_band_levels entry per band, plus one")
        bad = set(self.large_flow_band_levels) | set(self.liquidity_colours)
        if bad - set(LEVELS):
            raise ValueError(f"unknown warning levels {sorted(bad - set(LEVELS))}")
        return self


# -- rules ---------------------------------------------------------------------

LOAN_RATIO = register_rule(
    Rule(
        id="fund.loan_ratio",
        domain=DOMAIN,
        title="Loan ratio above the alert line",
        title_zh="个贷率超警戒线",
        source="个贷率 alert line 85 % [S]",
        confidence="S",
        subject_layer=LAYER,
        description="Loan ratio at or above the alert line in the latest month "
        "while no liquidity level applies (85-90 % without three negative net "
        "flows); from a liquidity level on, fund.liquidity reports the centre. "
        "One warning per centre while it lasts, updated monthly.",
        settings=("loan_ratio_alert",),
    )
)
LIQUIDITY = register_rule(
    Rule(
        id="fund.liquidity",
        domain=DOMAIN,
        title="Liquidity risk level",
        title_zh="流动性风险等级",
        source=f"{LIQUIDITY_SCHEME} [S]; net flow formula [D]",
        confidence="S",
        subject_layer=LAYER,
        description="Level 1 (85-90 % and the net flow negative three months "
        "running), 2 (90-95 %), 3 (>= 95 %) in the latest month. One warning "
        "per centre while it lasts, updated monthly with the level.",
        settings=(
            "liquidity_level_1",
            "liquidity_level_2",
            "liquidity_level_3",
            "negative_flow_months",
            "liquidity_colours",
        ),
    )
)
OVERDUE = register_rule(
    Rule(
        id="fund.overdue_rate",
        domain=DOMAIN,
        title="Overdue loan rate",
        title_zh="逾期率预警",
        source="design default 1 ‰ / 1.5 ‰ [D]",
        confidence="D",
        subject_layer=LAYER,
        description="Overdue loan balance / loan balance above the warning or "
        "alarm line in the latest month. One warning per centre while it lasts.",
        settings=("overdue_warning_permille", "overdue_alarm_permille"),
    )
)
LARGE_FLOW = register_rule(
    Rule(
        id="fund.large_flow",
        domain=DOMAIN,
        title="Large single flow above the centre's limit",
        title_zh="大额资金超风险值",
        source="centre's own 大额资金风险值; bands 500/1000/1500/2000 [R]",
        confidence="R",
        subject_layer=LAYER,
        description="The month's largest single flow above the limit in force "
        "for the centre that month; one warning per centre and month.",
        settings=("large_flow_bands", "large_flow_band_levels"),
    )
)


# -- pure functions -------------------------------------------------------------


def loan_ratio(
    loan_balance: float | None, deposit_balance: float | None
) -> float | None:
    """个贷率: loan balance / deposit balance (None without a deposit balance).

    >>> loan_ratio(850.0, 1000.0), loan_ratio(1.0, 0.0)
    (0.85, None)
    """
    if loan_balance is None or not deposit_balance or deposit_balance <= 0:
        return None
    return loan_balance / deposit_balance


def net_flow(
    deposits: float | None,
    principal_repaid: float | None,
    withdrawals: float | None,
    loans_issued: float | None,
) -> float | None:
    """Money in minus money out in a month (None when a term is missing).

    >>> net_flow(100.0, 20.0, 90.0, 40.0)
    -10.0
    """
    terms = (deposits, principal_repaid, withdrawals, loans_issued)
    if any(t is None for t in terms):
        return None
    return deposits + principal_repaid - withdrawals - loans_issued  # type: ignore[operator]


def liquidity_level(
    ratio: float | None, recent_flows: Sequence[float | None], settings: FundRules
) -> int:
    """Liquidity risk level 0-3 of a centre-month.

    Parameters
    ----------
    ratio : the month's loan ratio (fraction).
    recent_flows : net flows of the consecutive months ending with this one,
        oldest first (only the last ``negative_flow_months`` are looked at; a
        gap or a missing value breaks the run).
    settings : the level thresholds.

    Examples
    --------
    >>> s = FundRules()
    >>> neg = [-1.0, -2.0, -3.0]
    >>> [liquidity_level(r, neg, s) for r in (0.849, 0.85, 0.899, 0.90, 0.95)]
    [0, 1, 1, 2, 3]
    >>> liquidity_level(0.87, [-1.0, 5.0, -3.0], s), liquidity_level(0.87, [-1.0], s)
    (0, 0)
    """
    if ratio is None:
        return 0
    if ratio >= settings.liquidity_level_3:
        return 3
    if ratio >= settings.liquidity_level_2:
        return 2
    if ratio >= settings.liquidity_level_1:
        k = settings.negative_flow_months
        run = list(recent_flows)[-k:]
        if len(run) == k and all(f is not None and f < 0 for f in run):
            return 1
    return 0


def overdue_level(rate_permille: float | None, settings: FundRules) -> str | None:
    """Warning level of an overdue rate in per mille.

    >>> s = FundRules()
    >>> [overdue_level(r, s) for r in (1.0, 1.01, 1.5, 1.51, None)]
    [None, 'yellow', 'yellow', 'orange', None]
    """
    if rate_permille is None:
        return None
    if rate_permille > settings.overdue_alarm_permille:
        return "orange"
    if rate_permille > settings.overdue_warning_permille:
        return "yellow"
    return None


def flow_band(amount: float, bands: Sequence[float]) -> int:
    """Index of the band an amount falls in: 0 below the first bound.

    >>> b = (500, 1000, 1500, 2000)
    >>> [flow_band(x, b) for x in (499, 500, 999.9, 1000, 1999, 2000, 9000)]
    [0, 1, 1, 2, 3, 4, 4]
    """
    return int(np.searchsorted(np.asarray(bands, dtype=float), amount, side="right"))


def band_label(index: int, bands: Sequence[float]) -> str:
    """Human label of a band index from :func:`flow_band`.

    >>> [band_label(i, (500, 1000)) for i in range(3)]
    ['< 500', '500-1000', '>= 1000']
    """
    if index == 0:
        return f"< {bands[0]:g}"
    if index >= len(bands):
        return f">= {bands[-1]:g}"
    return f"{bands[index - 1]:g}-{bands[index]:g}"


def _month_index(month: dt.date) -> int:
    return month.year * 12 + month.month - 1


def _series(rows: list[Any], settings: FundRules) -> list[dict[str, Any]]:
    """Per-month figures of one centre (rows oldest first)."""
    out: list[dict[str, Any]] = []
    run: list[float | None] = []
    previous = None
    for r in rows:
        flow = net_flow(r.deposits, r.principal_repaid, r.withdrawals, r.loans_issued)
        if previous is not None and _month_index(r.month) != previous + 1:
            run = []  # a missing month breaks the run of negative flows
        run.append(flow)
        previous = _month_index(r.month)
        ratio = loan_ratio(r.loan_balance, r.deposit_balance)
        overdue = (
            r.overdue_loan_balance / r.loan_balance * 1000
            if r.overdue_loan_balance is not None and r.loan_balance
            else None
        )
        out.append(
            {
                "month": r.month,
                "deposits": r.deposits,
                "withdrawals": r.withdrawals,
                "loans_issued": r.loans_issued,
                "principal_repaid": r.principal_repaid,
                "deposit_balance": r.deposit_balance,
                "loan_balance": r.loan_balance,
                "overdue_loan_balance": r.overdue_loan_balance,
                "loan_ratio": ratio,
                "net_flow": flow,
                "overdue_rate_permille": overdue,
                "liquidity_level": liquidity_level(ratio, run, settings),
                "large_flows_count": r.large_flows_count,
                "largest_single_flow": r.largest_single_flow,
            }
        )
    return out


# -- reads -----------------------------------------------------------------------

#: One row per centre: the newest version of each code.
_CENTRES = """
centres AS (
    SELECT DISTINCT ON (code) code, name, name_zh, city
    FROM layer_fund_centres WHERE code IS NOT NULL
    ORDER BY code, updated_at DESC, id DESC
)"""

_METRIC_COLUMNS = (
    "centre_code, month, deposits, withdrawals, loans_issued, principal_repaid, "
    "deposit_balance, loan_balance, overdue_loan_balance, large_flows_count, "
    "largest_single_flow"
)


def centre_metrics(
    conn: Connection, code: str, settings: FundRules | None = None
) -> list[dict[str, Any]]:
    """Monthly series of one centre for trend charts, oldest month first.

    Each item: ``month``, ``loan_ratio``, ``net_flow``,
    ``overdue_rate_permille``, ``liquidity_level``, the month's flows
    (``deposits``, ``withdrawals``, ``loans_issued``, ``principal_repaid``)
    and the balances. Raises
    :class:`NotFound` for a code neither the layer nor the metrics know.
    """
    s = settings or FundRules()
    rows = conn.execute(
        text(
            f"SELECT {_METRIC_COLUMNS} FROM feed_fund_metrics "
            "WHERE centre_code = :code ORDER BY month"
        ),
        {"code": code},
    ).all()
    if not rows:
        known = conn.execute(
            text("SELECT 1 FROM layer_fund_centres WHERE code = :code LIMIT 1"),
            {"code": code},
        ).first()
        if known is None:
            raise NotFound(f"no provident fund centre {code!r}")
    return _series(rows, s)


def choropleth(
    conn: Connection, month: dt.date, settings: FundRules | None = None
) -> list[dict[str, Any]]:
    """Loan ratio, liquidity level, net flow and overdue rate of every centre
    in ``month``.

    One dict per centre of the layer (``code``, ``name``, ``name_zh``,
    ``month``, ``loan_ratio``, ``liquidity_level``, ``net_flow``,
    ``overdue_rate_permille``; None, and level 0, without a report for that
    month), sorted by code.
    """
    s = settings or FundRules()
    month = month.replace(day=1)
    first = _add_months(month, -(s.negative_flow_months - 1))
    rows = conn.execute(
        text(
            f"""
            WITH {_CENTRES}
            SELECT c.code, c.name, c.name_zh, m.*
            FROM centres c
            LEFT JOIN (
                SELECT {_METRIC_COLUMNS} FROM feed_fund_metrics
                WHERE month BETWEEN :first AND :month
            ) m ON m.centre_code = c.code
            ORDER BY c.code, m.month
            """
        ),
        {"first": first, "month": month},
    ).all()
    grouped: dict[str, list[Any]] = defaultdict(list)
    names: dict[str, tuple[str, str]] = {}
    for r in rows:
        names[r.code] = (r.name, r.name_zh)
        if r.month is not None:
            grouped[r.code].append(r)
    out = []
    for code, (name, name_zh) in names.items():
        series = _series(grouped.get(code, []), s)
        last = series[-1] if series and series[-1]["month"] == month else None
        out.append(
            {
                "code": code,
                "name": name,
                "name_zh": name_zh,
                "month": month,
                "loan_ratio": last and last["loan_ratio"],
                "liquidity_level": last["liquidity_level"] if last else 0,
                "net_flow": last and last["net_flow"],
                "overdue_rate_permille": last and last["overdue_rate_permille"],
            }
        )
    return out


def _add_months(month: dt.date, n: int) -> dt.date:
    k = _month_index(month) + n
    return dt.date(k // 12, k % 12 + 1, 1)


def large_flow_bands(
    conn: Connection,
    first: dt.date,
    last: dt.date,
    settings: FundRules | None = None,
) -> list[dict[str, Any]]:
    """Months per centre whose largest single flow fell in each band.

    The feed reports the count of large flows and the largest one per month,
    not every flow: a band count is the number of centre-months whose
    largest flow is in that band (``first`` to ``last`` months inclusive).
    """
    s = settings or FundRules()
    rows = conn.execute(
        text(
            "SELECT centre_code, largest_single_flow, large_flows_count "
            "FROM feed_fund_metrics WHERE month BETWEEN :first AND :last "
            "AND largest_single_flow IS NOT NULL ORDER BY centre_code"
        ),
        {"first": first.replace(day=1), "last": last},
    ).all()
    labels = [
        band_label(i, s.large_flow_bands) for i in range(len(s.large_flow_bands) + 1)
    ]
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        item = out.setdefault(
            r.centre_code,
            {
                "code": r.centre_code,
                "large_flows": 0,
                "bands": dict.fromkeys(labels, 0),
            },
        )
        item["bands"][labels[flow_band(r.largest_single_flow, s.large_flow_bands)]] += 1
        item["large_flows"] += r.large_flows_count or 0
    return list(out.values())


def _at(month: dt.date, as_of: dt.date) -> dt.datetime:
    """End of a reported month, Beijing time (when its figures stood), or the
    end of the evaluation day while the month is not over."""
    end = dt.datetime.combine(_add_months(month, 1), dt.time(), tzinfo=TZ)
    return min(end, end_of_day(as_of))


def _centre_findings(
    code: str, group: list[Any], s: FundRules, as_of: dt.date
) -> list[Finding]:
    """The findings of one centre from its last months (oldest first).

    Standing conditions (loan ratio, liquidity, overdue rate) have the period
    ``""``: one warning per centre and rule, observed at the evaluation; a
    large flow is an event of its month.
    """
    out: list[Finding] = []
    latest = group[-1]
    series = _series(group, s)
    point = series[-1]
    period = latest.month.strftime("%Y-%m")
    name = latest.name_zh or latest.name or code
    now = end_of_day(as_of)

    def finding(
        rule: Rule, level: str, summary: str, *, event: bool = False, **evidence: Any
    ) -> None:
        out.append(
            Finding(
                rule=rule.id,
                subject_layer=LAYER,
                subject_id=code,
                level=level,
                observed_at=_at(latest.month, as_of) if event else now,
                period=period if event else "",
                summary=summary,
                evidence={"month": latest.month.isoformat(), **evidence},
                responsible=name,
                district=name,
            )
        )

    ratio = point["loan_ratio"]
    level = point["liquidity_level"]
    flows = [p["net_flow"] for p in series][-s.negative_flow_months :]
    if level:
        finding(
            LIQUIDITY,
            s.liquidity_colours[level - 1],
            f"{name} {period}: liquidity level {level} (loan ratio {ratio:.1%})",
            loan_ratio=round(ratio, 6),
            liquidity_level=level,
            net_flows=flows,
        )
    elif ratio is not None and ratio >= s.loan_ratio_alert:
        finding(
            LOAN_RATIO,
            "yellow",
            f"{name} {period}: loan ratio {ratio:.1%} >= {s.loan_ratio_alert:.0%}",
            loan_ratio=round(ratio, 6),
            net_flows=flows,
        )
    rate = point["overdue_rate_permille"]
    colour = overdue_level(rate, s)
    if colour:
        finding(
            OVERDUE,
            colour,
            f"{name} {period}: overdue rate {rate:.2f} ‰",
            overdue_rate_permille=round(rate, 4),
            overdue_loan_balance=latest.overdue_loan_balance,
            loan_balance=latest.loan_balance,
        )
    big, limit = latest.largest_single_flow, latest.flow_limit
    if big is not None and limit is not None and big > limit:
        band = flow_band(big, s.large_flow_bands)
        label = band_label(band, s.large_flow_bands)
        finding(
            LARGE_FLOW,
            s.large_flow_band_levels[band],
            f"{name} {period}: single flow {big:,.0f} thousand yuan above the "
            f"limit {limit:,.0f} (band {label})",
            largest_single_flow=big,
            limit=limit,
            event=True,
            band=label,
            large_flows_count=latest.large_flows_count,
        )
    return out


def evaluate(
    conn: Connection, as_of: dt.date, settings: FundRules | None = None
) -> list[Finding]:
    """Every fund rule on each centre's latest month up to ``as_of``."""
    # TODO(no staleness rule yet): a centre that stopped reporting keeps its last
    # month's standing conditions, observed at every evaluation; a "report
    # overdue" rule (and not observing stale figures) needs the reporting
    # deadline of the centres, which DOMAIN.md does not give.
    s = settings or FundRules()
    rows = conn.execute(
        text(
            f"""
            WITH {_CENTRES},
            ranked AS (
                SELECT {_METRIC_COLUMNS},
                    rank() OVER (PARTITION BY centre_code ORDER BY month DESC) AS back
                FROM feed_fund_metrics WHERE month <= :as_of
            )
            SELECT r.*, c.name, c.name_zh,
                (SELECT l.large_flow_limit FROM feed_fund_centre_limits l
                 WHERE l.centre_code = r.centre_code
                   AND l.effective_from <= (r.month + interval '1 month')::date - 1
                 ORDER BY l.effective_from DESC LIMIT 1) AS flow_limit
            FROM ranked r LEFT JOIN centres c ON c.code = r.centre_code
            WHERE r.back <= :k
            ORDER BY r.centre_code, r.month
            """
        ),
        {"as_of": as_of, "k": s.negative_flow_months},
    ).all()
    grouped: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        grouped[r.centre_code].append(r)
    out: list[Finding] = []
    for code, group in grouped.items():
        out += _centre_findings(code, group, s, as_of)
    log.info(
        "fund evaluated",
        extra={
            "as_of": as_of.isoformat(),
            "centres": len(grouped),
            "findings": len(out),
        },
    )
    return out


register_evaluator(DOMAIN, evaluate)


# -- demo data ---------------------------------------------------------------------

#: The 21 prefecture-level cities of Guangdong: administrative code (the
#: centre code), English and Chinese name, and the approximate WGS84 position
#: of the city seat (public, rounded; used only to seed the demo polygons).
CENTRES: tuple[tuple[str, str, str, float, float], ...] = (
    ("440100", "Guangzhou", "广州", 113.26, 23.13),
    ("440200", "Shaoguan", "韶关", 113.60, 24.81),
    ("440300", "Shenzhen", "深圳", 114.06, 22.54),
    ("440400", "Zhuhai", "珠海", 113.58, 22.27),
    ("440500", "Shantou", "汕头", 116.68, 23.35),
    ("440600", "Foshan", "佛山", 113.12, 23.02),
    ("440700", "Jiangmen", "江门", 113.08, 22.58),
    ("440800", "Zhanjiang", "湛江", 110.36, 21.27),
    ("440900", "Maoming", "茂名", 110.93, 21.66),
    ("441200", "Zhaoqing", "肇庆", 112.47, 23.05),
    ("441300", "Huizhou", "惠州", 114.42, 23.11),
    ("441400", "Meizhou", "梅州", 116.12, 24.29),
    ("441500", "Shanwei", "汕尾", 115.38, 22.79),
    ("441600", "Heyuan", "河源", 114.70, 23.74),
    ("441700", "Yangjiang", "阳江", 111.98, 21.86),
    ("441800", "Qingyuan", "清远", 113.06, 23.68),
    ("441900", "Dongguan", "东莞", 113.75, 23.02),
    ("442000", "Zhongshan", "中山", 113.39, 22.52),
    ("445100", "Chaozhou", "潮州", 116.62, 23.66),
    ("445200", "Jieyang", "揭阳", 116.37, 23.55),
    ("445300", "Yunfu", "云浮", 112.04, 22.92),
)

#: A Guangdong-sized box (lon/lat) the demo cells are clipped to.
DEMO_BOX = (109.6, 20.2, 117.4, 25.6)


def demo_centres() -> FeatureBatch:
    """Invented service areas of the 21 centres, ready for ``load_batch``.

    **Not real boundaries**: the Voronoi cells of the 21 city seats'
    approximate public coordinates, clipped to a rectangle of Guangdong's
    size (cells cross the sea and the provincial border). Nothing is taken
    from an official boundary or from ``../shared`` data.

    >>> batch = demo_centres()
    >>> len(batch), batch.columns["name_zh"][0], batch.ids[0]
    (21, '广州', '440100')
    """
    seats = shapely.points([(c[3], c[4]) for c in CENTRES])
    box = shapely.box(*DEMO_BOX)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seats), extend_to=box)
    )
    tree = shapely.STRtree(cells)
    order = tree.query(seats, predicate="within")
    geoms = np.empty(len(CENTRES), dtype=object)
    geoms[order[0]] = [
        shapely.multipolygons([shapely.intersection(cells[j], box)]) for j in order[1]
    ]
    return FeatureBatch(
        geometries=geoms,
        columns={
            "code": [c[0] for c in CENTRES],
            "name": [c[1] for c in CENTRES],
            "name_zh": [c[2] for c in CENTRES],
            "city": [f"{c[2]}市" for c in CENTRES],
        },
        ids=np.array([c[0] for c in CENTRES], dtype=object),
        crs="EPSG:4326",
        origin="demo",
        id_field="code",
    )


#: Demo centres drifting into each liquidity level by the last month, and the
#: centres given a high overdue rate / a flow above their limit.
DEMO_LEVELS = {"441400": 1, "440900": 1, "441600": 2, "445300": 2, "441500": 3}
DEMO_OVERDUE = {"440800": 1.3, "441700": 1.8}
DEMO_BIG_FLOW = {"440300": 2300.0, "441300": 1200.0}


def demo_records(
    conn: Connection | None = None,
    seed: int = 8,
    as_of: dt.date = dt.date(2026, 11, 30),
    *,
    months: int = 24,
) -> dict[str, list[dict[str, Any]]]:
    """Invented monthly metrics and limits of the 21 centres.

    ``months`` months per centre ending with the month before ``as_of``'s;
    balances are consistent with the flows (balance = previous + in - out).
    Most centres keep a loan ratio of 60-82 %; the centres of
    :data:`DEMO_LEVELS` drift into liquidity levels 1-3 (level 1 with three
    months of negative net flow), :data:`DEMO_OVERDUE` get a high overdue
    rate and :data:`DEMO_BIG_FLOW` a single flow above their limit in the last
    month. ``conn`` is not read (the signature matches the other domains).
    Load with :func:`ingest.feeds.load_feed`. Nothing is real.
    """
    del conn
    rng = np.random.default_rng(seed)
    last = _add_months(as_of.replace(day=1), -1)
    metrics: list[dict[str, Any]] = []
    limits: list[dict[str, Any]] = []
    for i, (code, *_rest) in enumerate(CENTRES):
        size = 4e7 if code in ("440100", "440300") else float(rng.uniform(2e6, 1.2e7))
        target = {0: float(rng.uniform(0.6, 0.82)), 1: 0.86, 2: 0.92, 3: 0.965}[
            DEMO_LEVELS.get(code, 0)
        ]
        start_ratio = target - float(rng.uniform(0.03, 0.08))
        deposit_balance = size
        loan_balance = size * start_ratio
        limit = float(rng.choice((800.0, 1000.0, 1500.0)))
        if code in DEMO_BIG_FLOW:
            limit = 1000.0
        limits.append(
            {
                "centre_code": code,
                "large_flow_limit": limit,
                "effective_from": _add_months(last, -months),
            }
        )
        for k in range(months):
            month = _add_months(last, k - months + 1)
            tail = months - k  # 1 = last month
            ratio = start_ratio + (target - start_ratio) * (k + 1) / months
            ratio += float(rng.normal(0, 0.002))
            deposits = size * float(rng.uniform(0.012, 0.016))
            withdrawals = size * float(rng.uniform(0.008, 0.012))
            if DEMO_LEVELS.get(code) == 1 and tail <= 3:
                withdrawals = deposits * float(rng.uniform(1.2, 1.4))
            new_deposit_balance = deposit_balance + deposits - withdrawals
            repaid = loan_balance * float(rng.uniform(0.006, 0.009))
            wanted = ratio * new_deposit_balance
            issued = max(wanted - loan_balance + repaid, 0.0)
            if DEMO_LEVELS.get(code) == 1 and tail <= 3:
                issued = max(issued, repaid + size * 0.001)  # loans keep growing
            loan_balance = loan_balance + issued - repaid
            deposit_balance = new_deposit_balance
            overdue_pm = DEMO_OVERDUE.get(code) if tail <= 2 else None
            overdue_pm = overdue_pm or float(rng.uniform(0.2, 0.8))
            biggest = float(rng.uniform(100, limit * 0.9))
            if tail == 1 and code in DEMO_BIG_FLOW:
                biggest = DEMO_BIG_FLOW[code]
            metrics.append(
                {
                    "centre_code": code,
                    "month": month,
                    "deposits": round(deposits, 1),
                    "withdrawals": round(withdrawals, 1),
                    "loans_issued": round(issued, 1),
                    "principal_repaid": round(repaid, 1),
                    "deposit_balance": round(deposit_balance, 1),
                    "loan_balance": round(loan_balance, 1),
                    "overdue_loan_balance": round(loan_balance * overdue_pm / 1000, 1),
                    "large_flows_count": int(rng.poisson(3 + i % 4)),
                    "largest_single_flow": round(biggest, 1),
                }
            )
    return {"fund_metrics": metrics, "fund_centre_limits": limits}
