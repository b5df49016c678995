"""Construction-site wage rules (实名制 / 工资支付) and enterprise credit scores.

The evaluator reads the six feeds of ``layers/supervision/sites.py`` and the
``construction_sites`` layer with a few set-based queries (one per rule
family, aggregated per site or site-month in SQL) and hands the facts to the
pure functions below, which decide whether and how loud a finding is. Every
threshold is a field of :class:`SiteRules` (environment ``GIS_RULES_SITES_*``)
whose description names its source and confidence mark (DOMAIN.md §4):

- State Council Decree 724 (保障农民工工资支付条例, 2020) [S]: labour cost is
  transferred to the dedicated wage account at least monthly; no labour
  contract and real-name registration, no site entry; a wage deposit is kept.
- 人社部发〔2021〕65号 [S]: the wage deposit is 1-3 % of the contract amount.
- Guangzhou's list of violations [S]: paid count differing from the real-name
  attendance count, attendance bypassing the gates, late registration. Both
  directions are checked: fewer of the attended workers paid
  (``sites.paid_ratio``) and wages paid to workers with no attendance that
  month (``sites.paid_without_attendance``, ghost payroll).
- The triggers (``有考勤无工资`` by the end of the next month, a 0.9 paid /
  attended ratio, a month without a transfer, 20 working days to pay the
  deposit) and the credit-score deductions are design defaults [D].

The responsible party of every finding is the site's contractor (施工总承包单位)
and its district is the site's, both from ``layer_construction_sites``.

When a finding is observed (``Finding.observed_at``, what the loop re-opens a
closed warning on): a condition that still holds at the evaluation -- workers
still unpaid, a paid ratio still short, no transfer, no or too small a
deposit, a blacklisted contractor's open site, unregistered attendance in a
month not yet over -- is observed at the end of the evaluation day
(:func:`models.supervision.engine.end_of_day`); a finding about records that
are over -- wages all paid but late, wages paid without attendance, late
registrations, a past month's unregistered attendance -- at its latest record
(the last payment, the last registration, the end of the month).

Demo records for the feeds (:func:`demo_records`) are at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy import Connection, text

from gis_server.overrides import OverridableSettings
from layers.supervision.sites import RECORD_KINDS, SEVERITIES
from models.supervision.engine import end_of_day
from models.supervision.rules import (
    Finding,
    Rule,
    register_evaluator,
    register_rule,
)

__all__ = [
    "SiteRules",
    "add_working_days",
    "credit_score",
    "demo_records",
    "enterprise_rankings",
    "enterprise_scores",
    "evaluate",
    "working_days_between",
]

log = logging.getLogger("gis_server.supervision.sites")

DOMAIN = "sites"
LAYER = "construction_sites"
TZ = ZoneInfo("Asia/Shanghai")

DECREE_724 = "State Council Decree 724 (保障农民工工资支付条例, 2020)"
DEPOSIT_2021 = "人社部发〔2021〕65号 (工程建设领域农民工工资保证金规定)"
GZ_LIST = "Guangzhou list of wage-payment violations"


class SiteRules(OverridableSettings):
    """Thresholds of the construction-site wage rules and the credit score."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_RULES_SITES_", env_file=".env", extra="ignore"
    )

    lookback_months: int = Field(
        default=12,
        ge=1,
        description="[D] Months of attendance, wages and registrations the rules "
        "look back over (older months are history, not warnings).",
    )
    wage_due_months: int = Field(
        default=1,
        ge=0,
        description="[D] A month's wage is due by the end of this many months "
        "after it (1: attendance in M, no wage by the end of M+1 = 有考勤无工资).",
    )
    unpaid_red_workers: int = Field(
        default=10,
        ge=1,
        description="[D] Workers of one site-month still unpaid after the due date "
        "from which the finding is red (below: orange; all paid late: yellow).",
    )
    paid_ratio_min: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="[D] Workers paid / workers attended for a site-month below "
        "this is a finding (Guangzhou lists a paid count that differs from the "
        "real-name attendance count as a violation [S]; the ratio is ours).",
    )
    paid_ratio_red: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="[D] Paid / attended below this is red (else orange).",
    )
    ghost_red_workers: int = Field(
        default=5,
        ge=1,
        description="[D] Workers of one site-month paid a wage without any "
        "attendance that month from which the finding is red (below: orange). "
        "Guangzhou lists a paid count that differs from the real-name attendance "
        "count as a violation [S]; one such worker is a finding.",
    )
    transfer_max_gap_days: int = Field(
        default=31,
        ge=1,
        description="[S] Decree 724: labour cost is transferred to the dedicated "
        "wage account at least monthly; [D] 31 days without one is a finding.",
    )
    transfer_red_gap_days: int = Field(
        default=62,
        ge=1,
        description="[D] Days without a labour-cost transfer from which it is red.",
    )
    deposit_due_working_days: int = Field(
        default=20,
        ge=0,
        description="[D] Working days after the start date by which the wage "
        "deposit must be paid (Decree 724 requires the deposit [S]; the period is "
        "ours).",
    )
    working_weekdays: tuple[int, ...] = Field(
        default=(0, 1, 2, 3, 4),
        description="[D] Weekdays counted as working days (0 = Monday). Chinese "
        "public holidays and make-up working weekends (调休) are NOT modelled; "
        "list holidays in `holidays` to skip them.",
    )
    holidays: tuple[dt.date, ...] = Field(
        default=(),
        description="[D] Dates that are not working days although their weekday "
        "is (none by default: the official holiday calendar is not built in).",
    )
    deposit_min_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=f"[S] {DEPOSIT_2021}: the wage deposit is 1-3 % of the "
        "contract amount; below the 1 % floor is a finding. The 3 % is a cap on "
        "what a department may require, not a violation of the enterprise: a "
        "larger deposit is never a finding.",
    )
    unregistered_red_workers: int = Field(
        default=5,
        ge=1,
        description="[D] Workers of one site-month attending without real-name "
        "registration or labour contract from which the finding is red "
        "(Decree 724: no contract and registration, no site entry [S]).",
    )
    open_statuses: tuple[str, ...] = Field(
        default=("planned", "active", "suspended"),
        description="[D] Site statuses counted as open (a blacklisted contractor's "
        "open sites are flagged; the deposit is checked on them).",
    )
    paying_statuses: tuple[str, ...] = Field(
        default=("active",),
        description="[D] Site statuses on which monthly labour-cost transfers are "
        "expected.",
    )
    score_start: float = Field(
        default=100.0,
        description="[D] Credit score of an enterprise without records.",
    )
    score_deductions: dict[str, float] = Field(
        default={
            "bad_behaviour:general": 2.0,
            "bad_behaviour:serious": 5.0,
            "bad_behaviour:severe": 10.0,
            "credit:general": 5.0,
            "credit:serious": 10.0,
            "credit:severe": 20.0,
        },
        description="[D] Points deducted per record, by `kind:severity` (a record "
        "without severity counts as general). The seed platform scores on "
        "bad-behaviour records, credit records and blacklists; the points are ours.",
    )
    score_floor: float = Field(default=0.0, description="[D] Lowest score.")
    record_validity_days: int = Field(
        default=730,
        ge=1,
        description="[D] Days a bad-behaviour or credit record counts in the score.",
    )
    blacklist_days: int = Field(
        default=1095,
        ge=1,
        description="[D] Days a blacklisting lasts (without a later record lifting "
        "it: the feed has no removal records).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SiteRules:
        if not self.working_weekdays or not set(self.working_weekdays) <= set(range(7)):
            raise ValueError("working_weekdays: weekday numbers 0 (Monday) to 6")
        for key in self.score_deductions:
            kind, _, severity = key.partition(":")
            if kind not in RECORD_KINDS or severity not in SEVERITIES:
                raise ValueError(f"score_deductions: unknown kind:severity {key!r}")
        if self.paid_ratio_red > self.paid_ratio_min:
            raise ValueError("paid_ratio_red must not exceed paid_ratio_min")
        if self.transfer_red_gap_days < self.transfer_max_gap_days:
            raise ValueError("transfer_red_gap_days below transfer_max_gap_days")
        return self


# -- rules ---------------------------------------------------------------------

UNPAID = register_rule(
    Rule(
        id="sites.attendance_without_wage",
        domain=DOMAIN,
        title="Attendance without wages",
        title_zh="有考勤无工资",
        source=f"{DECREE_724} [S]; trigger: no wage by the end of M+1 [D]",
        confidence="D",
        subject_layer=LAYER,
        description="Workers who attended in month M and have no wage record paid "
        "by the end of M+1; one finding per site-month with the worker count.",
        settings=("wage_due_months", "unpaid_red_workers", "lookback_months"),
    )
)
PAID_RATIO = register_rule(
    Rule(
        id="sites.paid_ratio",
        domain=DOMAIN,
        title="Fewer workers paid than attended",
        title_zh="发薪人数与考勤人数不符",
        source=f"{GZ_LIST} [S]; ratio 0.9 [D]",
        confidence="D",
        subject_layer=LAYER,
        description="Workers paid among those who attended / workers attended, "
        "for a site-month whose wages are due, below the minimum (a wage paid to "
        "someone without attendance does not make up for an unpaid worker: see "
        "sites.paid_without_attendance).",
        settings=("paid_ratio_min", "paid_ratio_red", "wage_due_months"),
    )
)
GHOST_PAYROLL = register_rule(
    Rule(
        id="sites.paid_without_attendance",
        domain=DOMAIN,
        title="Wages paid without attendance",
        title_zh="有工资无考勤",
        source=f"{GZ_LIST}: paid count differs from real-name attendance [S]",
        confidence="S",
        subject_layer=LAYER,
        description="Workers paid a wage for a month (that is over) in which they "
        "have no real-name attendance at the site (ghost payroll, or attendance "
        "bypassing the gates); one finding per site-month with the worker count.",
        settings=("ghost_red_workers", "lookback_months"),
    )
)
NO_TRANSFER = register_rule(
    Rule(
        id="sites.no_labour_cost_transfer",
        domain=DOMAIN,
        title="No labour-cost transfer for over a month",
        title_zh="人工费用未按月拨付",
        source=f"{DECREE_724}: monthly transfers [S]; 31 days [D]",
        confidence="D",
        subject_layer=LAYER,
        description="An active site whose dedicated wage account received no "
        "labour cost for longer than the gap allowed (since the start date when "
        "it never did).",
        settings=("transfer_max_gap_days", "transfer_red_gap_days", "paying_statuses"),
    )
)
NO_DEPOSIT = register_rule(
    Rule(
        id="sites.no_wage_deposit",
        domain=DOMAIN,
        title="No wage deposit",
        title_zh="未缴存工资保证金",
        source=f"{DECREE_724}: wage deposit [S]; 20 working days [D]",
        confidence="D",
        subject_layer=LAYER,
        description="An open site with no wage deposit paid this many working days "
        "after its start (Mon-Fri; Chinese holidays not modelled).",
        settings=("deposit_due_working_days", "working_weekdays", "holidays"),
    )
)
LOW_DEPOSIT = register_rule(
    Rule(
        id="sites.deposit_below_minimum",
        domain=DOMAIN,
        title="Wage deposit below 1 % of the contract",
        title_zh="工资保证金不足",
        source=f"{DEPOSIT_2021} [S]",
        confidence="S",
        subject_layer=LAYER,
        description="Deposits paid / contract amount below the floor.",
        settings=("deposit_min_share",),
    )
)
UNREGISTERED = register_rule(
    Rule(
        id="sites.unregistered_attendance",
        domain=DOMAIN,
        title="Attendance without registration or contract",
        title_zh="未实名登记或未签合同进场",
        source=f"{DECREE_724}: no contract and registration, no entry [S]",
        confidence="S",
        subject_layer=LAYER,
        description="Workers with attendance in a month who have no real-name "
        "registration or no signed labour contract; one finding per site-month.",
        settings=("unregistered_red_workers", "lookback_months"),
    )
)
LATE_REGISTRATION = register_rule(
    Rule(
        id="sites.late_registration",
        domain=DOMAIN,
        title="Late real-name registration",
        title_zh="实名登记滞后",
        source=f"{GZ_LIST} [S]",
        confidence="S",
        subject_layer=LAYER,
        description="Workers who entered the site before their real-name "
        "registration; one finding per site and month of registration.",
        settings=("lookback_months",),
    )
)
BLACKLISTED = register_rule(
    Rule(
        id="sites.blacklisted_contractor",
        domain=DOMAIN,
        title="Open site of a blacklisted contractor",
        title_zh="黑名单企业在建项目",
        source="seed platform: blacklist checked at every gate [S]; red [D]",
        confidence="D",
        subject_layer=LAYER,
        description="Every open site whose contractor is on the blacklist.",
        settings=("blacklist_days", "open_statuses"),
    )
)


# -- pure functions -------------------------------------------------------------


def add_working_days(
    start: dt.date,
    n: int,
    weekdays: Sequence[int] = (0, 1, 2, 3, 4),
    holidays: Iterable[dt.date] = (),
) -> dt.date:
    """The ``n``-th working day after ``start`` (``start`` itself not counted).

    Working days are the given weekdays (0 = Monday) minus ``holidays``.
    Chinese public holidays and make-up working weekends are not built in.

    Examples
    --------
    >>> add_working_days(dt.date(2026, 11, 6), 1)  # a Friday: next is Monday
    datetime.date(2026, 11, 9)
    >>> add_working_days(dt.date(2026, 11, 2), 20)  # Monday + 4 weeks
    datetime.date(2026, 11, 30)
    >>> add_working_days(dt.date(2026, 11, 6), 1, holidays=[dt.date(2026, 11, 9)])
    datetime.date(2026, 11, 10)
    """
    days = set(weekdays)
    if not days:
        raise ValueError("no working weekday")
    off = set(holidays)
    day = start
    left = n
    while left > 0:
        day += dt.timedelta(days=1)
        if day.weekday() in days and day not in off:
            left -= 1
    return day


def working_days_between(
    start: dt.date,
    end: dt.date,
    weekdays: Sequence[int] = (0, 1, 2, 3, 4),
    holidays: Iterable[dt.date] = (),
) -> int:
    """Working days after ``start`` up to and including ``end`` (0 if none).

    Examples
    --------
    >>> working_days_between(dt.date(2026, 11, 6), dt.date(2026, 11, 9))
    1
    >>> working_days_between(dt.date(2026, 11, 2), dt.date(2026, 11, 30))
    20
    """
    if end <= start:
        return 0
    span = np.arange(
        np.datetime64(start + dt.timedelta(days=1)),
        np.datetime64(end + dt.timedelta(1)),
    )
    weekday = (span.astype("datetime64[D]").view("int64") + 3) % 7  # 1970-01-01: Thu
    keep = np.isin(weekday, list(weekdays))
    if holidays:
        keep &= ~np.isin(span, np.array(sorted(holidays), dtype="datetime64[D]"))
    return int(keep.sum())


def add_months(month: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months after ``month``'s.

    >>> add_months(dt.date(2026, 11, 15), 2), add_months(dt.date(2026, 1, 1), -1)
    (datetime.date(2027, 1, 1), datetime.date(2025, 12, 1))
    """
    k = month.year * 12 + month.month - 1 + n
    return dt.date(k // 12, k % 12 + 1, 1)


def wage_due_date(month: dt.date, due_months: int = 1) -> dt.date:
    """The last day by which the wages of ``month`` must be paid.

    >>> wage_due_date(dt.date(2026, 9, 1))  # September's wages: by 31 October
    datetime.date(2026, 10, 31)
    """
    return add_months(month, due_months + 1) - dt.timedelta(days=1)


def unpaid_level(unpaid_now: int, unpaid_at_due: int, red_workers: int) -> str | None:
    """Level of a site-month with workers unpaid at the due date.

    Parameters
    ----------
    unpaid_now : workers who attended and have no wage paid by the evaluation day.
    unpaid_at_due : workers who had none paid by the due date (>= ``unpaid_now``).
    red_workers : workers still unpaid from which the finding is red.

    Returns
    -------
    None when everyone was paid in time; ``"yellow"`` when all were paid, but
    late; ``"orange"``, or ``"red"`` from ``red_workers`` still unpaid.

    Examples
    --------
    >>> unpaid_level(0, 0, 10), unpaid_level(0, 3, 10), unpaid_level(3, 3, 10)
    (None, 'yellow', 'orange')
    >>> unpaid_level(10, 12, 10)
    'red'
    """
    if unpaid_at_due <= 0:
        return None
    if unpaid_now <= 0:
        return "yellow"
    return "red" if unpaid_now >= red_workers else "orange"


def paid_ratio_level(
    paid: int, attended: int, minimum: float, red_below: float
) -> tuple[float | None, str | None]:
    """Paid / attended workers of a site-month and the finding's level.

    Examples
    --------
    >>> paid_ratio_level(9, 10, 0.9, 0.5)
    (0.9, None)
    >>> paid_ratio_level(8, 10, 0.9, 0.5)
    (0.8, 'orange')
    >>> paid_ratio_level(4, 10, 0.9, 0.5)
    (0.4, 'red')
    >>> paid_ratio_level(0, 0, 0.9, 0.5)
    (None, None)
    """
    if attended <= 0:
        return None, None
    ratio = paid / attended
    if ratio >= minimum:
        return ratio, None
    return ratio, "red" if ratio < red_below else "orange"


def transfer_gap_level(gap_days: int, max_gap: int, red_gap: int) -> str | None:
    """Level of a gap (days) since the last labour-cost transfer.

    >>> [transfer_gap_level(d, 31, 62) for d in (31, 32, 62, 63)]
    [None, 'orange', 'orange', 'red']
    """
    if gap_days <= max_gap:
        return None
    return "red" if gap_days > red_gap else "orange"


def deposit_short(deposited: float, contract: float | None, share: float) -> bool:
    """Whether the deposits are below ``share`` of the contract amount.

    Unknown (no contract amount) is not a finding.

    >>> deposit_short(9_999, 1_000_000, 0.01), deposit_short(10_000, 1_000_000, 0.01)
    (True, False)
    >>> deposit_short(0, None, 0.01)
    False
    """
    if not contract or contract <= 0:
        return False
    return deposited < share * contract


def registration_level(workers: int, red_workers: int) -> str | None:
    """Level of a site-month with ``workers`` attending unregistered/uncontracted.

    >>> registration_level(0, 5), registration_level(4, 5), registration_level(5, 5)
    (None, 'orange', 'red')
    """
    if workers <= 0:
        return None
    return "red" if workers >= red_workers else "orange"


def ghost_level(workers: int, red_workers: int) -> str | None:
    """Level of a site-month with ``workers`` paid without attendance.

    >>> ghost_level(0, 5), ghost_level(1, 5), ghost_level(4, 5), ghost_level(5, 5)
    (None, 'orange', 'orange', 'red')
    """
    if workers <= 0:
        return None
    return "red" if workers >= red_workers else "orange"


def credit_score(
    records: Iterable[tuple[str, str | None, dt.date]],
    as_of: dt.date,
    settings: SiteRules,
) -> tuple[float, bool]:
    """Credit score and blacklist state of an enterprise from its records.

    Parameters
    ----------
    records : ``(kind, severity, recorded_on)`` of the enterprise's records.
    as_of : records after this day are ignored; older ones expire after
        ``record_validity_days`` (``blacklist_days`` for a blacklisting).
    settings : the deductions per ``kind:severity`` and the starting score.

    Returns
    -------
    ``(score, blacklisted)``; the score starts at ``score_start``, loses the
    deduction of every valid record and stops at ``score_floor``. A
    blacklisting deducts nothing itself: it is reported as the flag.

    Examples
    --------
    >>> s = SiteRules()
    >>> day = dt.date(2026, 11, 30)
    >>> credit_score([("bad_behaviour", "serious", day),
    ...               ("credit", None, day)], day, s)
    (90.0, False)
    >>> credit_score([("bad_behaviour", "severe", dt.date(2020, 1, 1))], day, s)
    (100.0, False)
    >>> credit_score([("blacklist", "severe", dt.date(2026, 1, 5))], day, s)
    (100.0, True)
    """
    score = settings.score_start
    blacklisted = False
    for kind, severity, recorded_on in records:
        age = (as_of - recorded_on).days
        if age < 0:
            continue
        if kind == "blacklist":
            blacklisted |= age <= settings.blacklist_days
            continue
        if age > settings.record_validity_days:
            continue
        score -= settings.score_deductions.get(f"{kind}:{severity or 'general'}", 0.0)
    return max(score, settings.score_floor), blacklisted


# -- reads -----------------------------------------------------------------------

#: One row per site: the newest version of each source id.
_SITES = """
sites AS (
    SELECT DISTINCT ON (source_id)
        source_id AS site_id, project, contractor, district, status, started_on
    FROM layer_construction_sites
    ORDER BY source_id, updated_at DESC, id DESC
)"""


def _at(day: dt.date) -> dt.datetime:
    """The start of ``day`` in China Standard Time (a record's day)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=TZ)


def _month_over(month: dt.date, as_of: dt.date) -> dt.datetime:
    """When the records of ``month`` stand: its end, or the end of the
    evaluation day while the month is not over."""
    return min(_at(add_months(month, 1)), end_of_day(as_of))


def _finding(
    rule: Rule,
    row: Any,
    level: str,
    observed: dt.datetime,
    period: str,
    summary: str,
    evidence: dict[str, Any],
) -> Finding:
    return Finding(
        rule=rule.id,
        subject_layer=LAYER,
        subject_id=row.site_id,
        level=level,
        observed_at=observed,
        period=period,
        summary=summary,
        evidence={"project": row.project, **evidence},
        responsible=row.contractor,
        district=row.district,
    )


#: The due date of a site-month's wages in SQL (``wage_due_date``), for rows
#: ``a`` with a ``month`` and the parameter ``:k`` = ``wage_due_months + 1``.
_DUE = "((a.month + make_interval(months => :k))::date - 1)"


def _wage_findings(conn: Connection, as_of: dt.date, s: SiteRules) -> list[Finding]:
    """有考勤无工资 and paid / attended, per site-month whose wages are due.

    Only the workers who attended count on either side of the ratio: a wage
    paid to someone with no attendance that month is ghost payroll
    (:func:`_ghost_findings`), not a paid worker.
    """
    last_due = add_months(as_of, -(s.wage_due_months + 1))
    first = add_months(as_of, -s.lookback_months)
    now = end_of_day(as_of)
    rows = conn.execute(
        text(
            f"""
            WITH {_SITES},
            att AS (
                SELECT site_id, worker_id, month FROM feed_site_attendance
                WHERE days > 0 AND month BETWEEN :first AND :last_due
            ),
            facts AS (
                SELECT a.site_id, a.month, count(*) AS attended,
                    count(*) FILTER (
                        WHERE w.paid_on IS NULL OR w.paid_on > :as_of
                    ) AS unpaid_now,
                    count(*) FILTER (
                        WHERE w.paid_on IS NULL OR w.paid_on > {_DUE}
                    ) AS unpaid_at_due,
                    max(w.paid_on) FILTER (
                        WHERE w.paid_on <= :as_of AND w.paid_on > {_DUE}
                    ) AS last_late_paid
                FROM att a
                LEFT JOIN feed_site_wages w USING (site_id, worker_id, month)
                GROUP BY a.site_id, a.month
            )
            SELECT f.*, f.attended - f.unpaid_now AS paid,
                s.project, s.contractor, s.district
            FROM facts f
            LEFT JOIN sites s USING (site_id)
            ORDER BY f.site_id, f.month
            """
        ),
        {
            "first": first,
            "last_due": last_due,
            "as_of": as_of,
            "k": s.wage_due_months + 1,
        },
    ).all()
    out: list[Finding] = []
    for r in rows:
        period = r.month.strftime("%Y-%m")
        due = wage_due_date(r.month, s.wage_due_months)
        level = unpaid_level(r.unpaid_now, r.unpaid_at_due, s.unpaid_red_workers)
        if level:
            # still unpaid: a standing condition; all paid late: the last payment
            seen = now if r.unpaid_now else _at(r.last_late_paid)
            out.append(
                _finding(
                    UNPAID,
                    r,
                    level,
                    seen,
                    period,
                    f"{r.unpaid_at_due} of {r.attended} workers attended in "
                    f"{period} without wages by {due.isoformat()} "
                    f"({r.unpaid_now} still unpaid)",
                    {
                        "month": r.month.isoformat(),
                        "due": due.isoformat(),
                        "attended": r.attended,
                        "unpaid_at_due": r.unpaid_at_due,
                        "unpaid_now": r.unpaid_now,
                    },
                )
            )
        ratio, level = paid_ratio_level(
            r.paid, r.attended, s.paid_ratio_min, s.paid_ratio_red
        )
        if level:
            out.append(
                _finding(
                    PAID_RATIO,
                    r,
                    level,
                    now,  # attended workers still unpaid at the evaluation
                    period,
                    f"{r.paid} of {r.attended} workers attended in {period} paid "
                    f"({ratio:.0%} < {s.paid_ratio_min:.0%})",
                    {
                        "month": r.month.isoformat(),
                        "paid": r.paid,
                        "attended": r.attended,
                        "ratio": round(ratio, 4),
                    },
                )
            )
    return out


def _ghost_findings(conn: Connection, as_of: dt.date, s: SiteRules) -> list[Finding]:
    """Wages paid for a month that is over to workers with no attendance in it."""
    first = add_months(as_of, -s.lookback_months)
    last = add_months(as_of, -1)  # the last month that is over
    rows = conn.execute(
        text(
            f"""
            WITH {_SITES},
            ghost AS (
                SELECT w.site_id, w.month, count(*) AS workers,
                    sum(w.amount_yuan) AS amount_yuan, max(w.paid_on) AS last_paid
                FROM feed_site_wages w
                WHERE w.paid_on <= :as_of AND w.month BETWEEN :first AND :last
                  AND NOT EXISTS (
                    SELECT 1 FROM feed_site_attendance a
                    WHERE a.site_id = w.site_id AND a.worker_id = w.worker_id
                      AND a.month = w.month AND a.days > 0
                  )
                GROUP BY w.site_id, w.month
            ),
            att AS (
                SELECT site_id, month, count(*) AS attended
                FROM feed_site_attendance
                WHERE days > 0 AND month BETWEEN :first AND :last
                GROUP BY site_id, month
            )
            SELECT g.*, coalesce(t.attended, 0) AS attended,
                s.project, s.contractor, s.district
            FROM ghost g
            LEFT JOIN att t USING (site_id, month)
            LEFT JOIN sites s USING (site_id)
            ORDER BY g.site_id, g.month
            """
        ),
        {"first": first, "last": last, "as_of": as_of},
    ).all()
    out: list[Finding] = []
    for r in rows:
        level = ghost_level(r.workers, s.ghost_red_workers)
        if not level:
            continue
        period = r.month.strftime("%Y-%m")
        out.append(
            _finding(
                GHOST_PAYROLL,
                r,
                level,
                _at(r.last_paid),  # the latest such payment
                period,
                f"{r.workers} workers paid for {period} without attendance at the "
                f"site that month ({r.attended} attended)",
                {
                    "month": r.month.isoformat(),
                    "workers": r.workers,
                    "attended": r.attended,
                    "amount_yuan": r.amount_yuan,
                    "last_paid": r.last_paid.isoformat(),
                },
            )
        )
    return out


def _money_findings(conn: Connection, as_of: dt.date, s: SiteRules) -> list[Finding]:
    """Transfers to the wage account and the wage deposit, per site."""
    rows = conn.execute(
        text(
            f"""
            WITH {_SITES},
            tr AS (
                SELECT site_id, max(transferred_on) AS last_transfer
                FROM feed_site_wage_transfers WHERE transferred_on <= :as_of
                GROUP BY site_id
            ),
            dep AS (
                SELECT site_id, sum(amount_yuan) AS deposited,
                    min(paid_on) AS first_paid,
                    (array_agg(contract_amount_yuan ORDER BY paid_on DESC)
                        FILTER (WHERE contract_amount_yuan IS NOT NULL))[1]
                        AS contract
                FROM feed_site_deposits WHERE paid_on <= :as_of
                GROUP BY site_id
            )
            SELECT s.*, tr.last_transfer, dep.deposited, dep.first_paid,
                dep.contract
            FROM sites s
            LEFT JOIN tr USING (site_id)
            LEFT JOIN dep USING (site_id)
            WHERE s.started_on <= :as_of
            ORDER BY s.site_id
            """
        ),
        {"as_of": as_of},
    ).all()
    now = end_of_day(as_of)  # every money finding is a standing condition
    out: list[Finding] = []
    for r in rows:
        if r.status in s.paying_statuses:
            since = r.last_transfer or r.started_on
            gap = (as_of - since).days
            level = transfer_gap_level(
                gap, s.transfer_max_gap_days, s.transfer_red_gap_days
            )
            if level:
                what = "last transfer" if r.last_transfer else "start, never any"
                out.append(
                    _finding(
                        NO_TRANSFER,
                        r,
                        level,
                        now,
                        since.isoformat(),
                        f"No labour cost transferred for {gap} days "
                        f"(since {since.isoformat()}: {what})",
                        {
                            "since": since.isoformat(),
                            "gap_days": gap,
                            "last_transfer": r.last_transfer
                            and r.last_transfer.isoformat(),
                        },
                    )
                )
        if r.status not in s.open_statuses:
            continue
        due = add_working_days(
            r.started_on, s.deposit_due_working_days, s.working_weekdays, s.holidays
        )
        if r.deposited is None and as_of > due:
            out.append(
                _finding(
                    NO_DEPOSIT,
                    r,
                    "orange",
                    now,
                    "",
                    f"No wage deposit {s.deposit_due_working_days} working days "
                    f"after the start on {r.started_on.isoformat()} "
                    f"(due {due.isoformat()})",
                    {
                        "started_on": r.started_on.isoformat(),
                        "due": due.isoformat(),
                        "holidays_modelled": bool(s.holidays),
                    },
                )
            )
        if r.deposited is not None and deposit_short(
            r.deposited, r.contract, s.deposit_min_share
        ):
            share = r.deposited / r.contract
            out.append(
                _finding(
                    LOW_DEPOSIT,
                    r,
                    "orange",
                    now,
                    "",
                    f"Wage deposit {r.deposited:,.0f} yuan is {share:.2%} of the "
                    f"contract (< {s.deposit_min_share:.0%})",
                    {
                        "deposited_yuan": r.deposited,
                        "contract_yuan": r.contract,
                        "share": round(share, 6),
                    },
                )
            )
    return out


def _registration_findings(
    conn: Connection, as_of: dt.date, s: SiteRules
) -> list[Finding]:
    """Attendance without registration / contract; late registration."""
    first = add_months(as_of, -s.lookback_months)
    params = {"first": first, "as_of": as_of}
    rows = conn.execute(
        text(
            f"""
            WITH {_SITES},
            facts AS (
                SELECT a.site_id, a.month,
                    count(*) FILTER (
                        WHERE w.worker_id IS NULL OR w.registered_on IS NULL
                    ) AS unregistered,
                    count(*) FILTER (
                        WHERE w.registered_on IS NOT NULL
                          AND w.contract_signed IS NOT TRUE
                    ) AS no_contract,
                    count(*) AS attended
                FROM feed_site_attendance a
                LEFT JOIN feed_site_workers w USING (site_id, worker_id)
                WHERE a.days > 0 AND a.month BETWEEN :first AND :as_of
                GROUP BY a.site_id, a.month
            )
            SELECT f.*, s.project, s.contractor, s.district
            FROM facts f LEFT JOIN sites s USING (site_id)
            WHERE f.unregistered + f.no_contract > 0
            ORDER BY f.site_id, f.month
            """
        ),
        params,
    ).all()
    out: list[Finding] = []
    for r in rows:
        period = r.month.strftime("%Y-%m")
        bad = r.unregistered + r.no_contract
        level = registration_level(bad, s.unregistered_red_workers)
        if level:
            out.append(
                _finding(
                    UNREGISTERED,
                    r,
                    level,
                    _month_over(r.month, as_of),
                    period,
                    f"{period}: {r.unregistered} workers attended without real-name "
                    f"registration, {r.no_contract} without a labour contract",
                    {
                        "month": r.month.isoformat(),
                        "unregistered": r.unregistered,
                        "no_contract": r.no_contract,
                        "attended": r.attended,
                    },
                )
            )
    rows = conn.execute(
        text(
            f"""
            WITH {_SITES},
            late AS (
                SELECT site_id, date_trunc('month', registered_on)::date AS month,
                    count(*) AS workers,
                    max(registered_on - entered_on) AS max_days_late,
                    max(registered_on) AS last_registered
                FROM feed_site_workers
                WHERE entered_on < registered_on
                  AND registered_on BETWEEN :first AND :as_of
                GROUP BY site_id, 2
            )
            SELECT l.*, s.project, s.contractor, s.district
            FROM late l LEFT JOIN sites s USING (site_id)
            ORDER BY l.site_id, l.month
            """
        ),
        params,
    ).all()
    for r in rows:
        period = r.month.strftime("%Y-%m")
        out.append(
            _finding(
                LATE_REGISTRATION,
                r,
                "yellow",
                _at(r.last_registered),
                period,
                f"{r.workers} workers registered in {period} after entering the "
                f"site (up to {r.max_days_late} days late)",
                {
                    "month": r.month.isoformat(),
                    "workers": r.workers,
                    "max_days_late": r.max_days_late,
                },
            )
        )
    return out


def _enterprise_records(
    conn: Connection, as_of: dt.date
) -> dict[str, list[tuple[str, str | None, dt.date]]]:
    rows = conn.execute(
        text(
            "SELECT enterprise, kind, severity, recorded_on "
            "FROM feed_enterprise_records WHERE recorded_on <= :as_of"
        ),
        {"as_of": as_of},
    ).all()
    out: dict[str, list[tuple[str, str | None, dt.date]]] = defaultdict(list)
    for r in rows:
        out[r.enterprise].append((r.kind, r.severity, r.recorded_on))
    return out


def enterprise_scores(
    conn: Connection, as_of: dt.date, settings: SiteRules | None = None
) -> list[dict[str, Any]]:
    """Credit score of every enterprise with records or open sites.

    One dict per enterprise: ``enterprise``, ``score``, ``blacklisted``,
    ``records`` (counted per kind, valid or not) and ``open_sites``; sorted by
    name.
    """
    s = settings or SiteRules()
    records = _enterprise_records(conn, as_of)
    open_sites = dict(
        conn.execute(
            text(
                f"WITH {_SITES} SELECT contractor, count(*) FROM sites "
                "WHERE contractor IS NOT NULL AND status = ANY(:open) "
                "GROUP BY contractor"
            ),
            {"open": list(s.open_statuses)},
        ).all()
    )
    out = []
    for name in sorted(set(records) | set(open_sites)):
        recs = records.get(name, [])
        score, blacklisted = credit_score(recs, as_of, s)
        kinds = defaultdict(int)
        for kind, _, _ in recs:
            kinds[kind] += 1
        out.append(
            {
                "enterprise": name,
                "score": score,
                "blacklisted": blacklisted,
                "records": dict(kinds),
                "open_sites": open_sites.get(name, 0),
            }
        )
    return out


def enterprise_rankings(
    conn: Connection,
    as_of: dt.date,
    settings: SiteRules | None = None,
    *,
    worst_first: bool = True,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Enterprises ranked by credit score (blacklisted first when worst first).

    Ties share a rank (1, 2, 2, 4); each dict is an :func:`enterprise_scores`
    row with ``rank`` added.
    """
    rows = enterprise_scores(conn, as_of, settings)
    sign = 1 if worst_first else -1

    def key(r: dict[str, Any]) -> tuple:
        return (sign * (not r["blacklisted"]), sign * r["score"])

    rows.sort(key=lambda r: (*key(r), r["enterprise"]))
    previous = None
    for i, r in enumerate(rows, 1):
        if key(r) != previous:
            rank = i
            previous = key(r)
        r["rank"] = rank
    return rows[:limit] if limit is not None else rows


def _blacklist_findings(
    conn: Connection, as_of: dt.date, s: SiteRules
) -> list[Finding]:
    records = _enterprise_records(conn, as_of)
    listed = {}
    for name, recs in records.items():
        score, blacklisted = credit_score(recs, as_of, s)
        if blacklisted:
            since = max(d for k, _, d in recs if k == "blacklist")
            listed[name] = (score, since)
    if not listed:
        return []
    rows = conn.execute(
        text(
            f"WITH {_SITES} SELECT * FROM sites "
            "WHERE contractor = ANY(:names) AND status = ANY(:open) ORDER BY site_id"
        ),
        {"names": list(listed), "open": list(s.open_statuses)},
    ).all()
    now = end_of_day(as_of)  # listed and building now: a standing condition
    out = []
    for r in rows:
        score, since = listed[r.contractor]
        out.append(
            _finding(
                BLACKLISTED,
                r,
                "red",
                now,
                "",
                f"Contractor {r.contractor} is blacklisted (since "
                f"{since.isoformat()}); site status {r.status}",
                {
                    "blacklisted_on": since.isoformat(),
                    "score": score,
                    "status": r.status,
                },
            )
        )
    return out


def evaluate(
    conn: Connection, as_of: dt.date, settings: SiteRules | None = None
) -> list[Finding]:
    """Every sites rule at ``as_of``: the domain's evaluator."""
    s = settings or SiteRules()
    findings = [
        *_wage_findings(conn, as_of, s),
        *_ghost_findings(conn, as_of, s),
        *_money_findings(conn, as_of, s),
        *_registration_findings(conn, as_of, s),
        *_blacklist_findings(conn, as_of, s),
    ]
    log.info(
        "sites evaluated",
        extra={"as_of": as_of.isoformat(), "findings": len(findings)},
    )
    return findings


register_evaluator(DOMAIN, evaluate)


# -- demo records ------------------------------------------------------------------


def _opaque(seed: int, *parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).hexdigest()
    return f"W{digest[:15]}"


def demo_records(
    conn: Connection,
    seed: int = 8,
    as_of: dt.date = dt.date(2026, 11, 30),
    *,
    max_workers: int = 12,
    months: int = 6,
) -> dict[str, list[dict[str, Any]]]:
    """Invented records of the six sites feeds for the sites in the layer.

    Reads ``layer_construction_sites`` (the demo city's sites) and draws, per
    open site, up to ``max_workers`` workers with opaque ids and ``months``
    months of attendance and wages, monthly transfers and a deposit; a seeded
    share of sites gets each kind of defect (unpaid months, few paid, missing
    transfers or deposit, a small deposit, unregistered or late-registered
    workers), and a few contractors get bad records or a blacklisting. Load
    with :func:`ingest.feeds.load_feed` (``records=...``). Nothing is real.
    """
    rng = np.random.default_rng(seed)
    sites = conn.execute(
        text(
            f"WITH {_SITES} SELECT site_id, contractor, status, started_on "
            "FROM sites WHERE started_on IS NOT NULL ORDER BY site_id"
        )
    ).all()
    out: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "site_workers",
            "site_attendance",
            "site_wages",
            "site_wage_transfers",
            "site_deposits",
            "enterprise_records",
        )
    }
    this_month = as_of.replace(day=1)
    for site in sites:
        if site.status not in ("active", "suspended") or site.started_on > as_of:
            continue
        defect = rng.random(7) < (0.06, 0.06, 0.06, 0.08, 0.06, 0.06, 0.08)
        unpaid_month, few_paid, no_transfer, no_deposit, small_deposit = defect[:5]
        unregistered, late = defect[5], defect[6]
        start = site.started_on
        n = int(rng.integers(4, max_workers + 1))
        workers = [_opaque(seed, site.site_id, i) for i in range(n)]
        for i, w in enumerate(workers):
            entered = start + dt.timedelta(days=int(rng.integers(0, 60)))
            registered = entered - dt.timedelta(days=int(rng.integers(0, 3)))
            if late and i < 2:
                registered = entered + dt.timedelta(days=int(rng.integers(3, 20)))
            if unregistered and i == 0:
                continue  # attends, never registered
            out["site_workers"].append(
                {
                    "site_id": site.site_id,
                    "worker_id": w,
                    "enterprise": site.contractor,
                    "contract_signed": True,
                    "registered_on": min(registered, as_of),
                    "entered_on": entered,
                }
            )
        bad_month = add_months(this_month, -int(rng.integers(2, months)))
        for k in range(months, 0, -1):
            month = add_months(this_month, -k)
            if month < start.replace(day=1):
                continue
            for i, w in enumerate(workers):
                out["site_attendance"].append(
                    {
                        "site_id": site.site_id,
                        "worker_id": w,
                        "month": month,
                        "days": int(rng.integers(8, 27)),
                    }
                )
                skip = (unpaid_month and month == bad_month) or (
                    few_paid and month == bad_month and i % 3 == 0
                )
                paid_on = wage_due_date(month, 0) + dt.timedelta(
                    days=int(rng.integers(5, 20))
                )
                if not skip and paid_on <= as_of:
                    out["site_wages"].append(
                        {
                            "site_id": site.site_id,
                            "worker_id": w,
                            "month": month,
                            "paid_on": paid_on,
                            "amount_yuan": float(rng.integers(60, 120) * 100),
                        }
                    )
        for k in range(months, -1, -1):  # monthly transfers, this month's too
            month = add_months(this_month, -k)
            on = max(month, start) + dt.timedelta(days=int(rng.integers(0, 8)))
            if on > as_of or (no_transfer and k < 3):
                continue
            out["site_wage_transfers"].append(
                {
                    "site_id": site.site_id,
                    "transferred_on": on,
                    "amount_yuan": float(n * rng.integers(80, 130) * 100),
                }
            )
        if not no_deposit:
            contract = float(rng.integers(20, 400)) * 1e6
            share = 0.004 if small_deposit else float(rng.choice((0.01, 0.02, 0.03)))
            out["site_deposits"].append(
                {
                    "site_id": site.site_id,
                    "paid_on": add_working_days(start, int(rng.integers(3, 18))),
                    "amount_yuan": round(contract * share, 2),
                    "contract_amount_yuan": contract,
                }
            )
    contractors = sorted({s.contractor for s in sites if s.contractor})
    for j, name in enumerate(contractors):
        draws = int(rng.poisson(0.8))
        for d in range(draws):
            day = as_of - dt.timedelta(days=int(rng.integers(10, 900)))
            kind = str(rng.choice(("bad_behaviour", "bad_behaviour", "credit")))
            out["enterprise_records"].append(
                {
                    "record_id": f"DEMO-{seed}-{j:03d}-{d}",
                    "enterprise": name,
                    "recorded_on": day,
                    "kind": kind,
                    "severity": str(rng.choice(("general", "serious", "severe"))),
                    "note": f"demo record {j}-{d}",
                }
            )
        if j % 17 == 5:
            out["enterprise_records"].append(
                {
                    "record_id": f"DEMO-{seed}-{j:03d}-B",
                    "enterprise": name,
                    "recorded_on": as_of
                    - dt.timedelta(days=int(rng.integers(20, 300))),
                    "kind": "blacklist",
                    "severity": "severe",
                    "note": "demo blacklisting (拖欠农民工工资)",
                }
            )
    # an empty feed is left out: there is nothing to load
    return {feed: rows for feed, rows in out.items() if rows}
