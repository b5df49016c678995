"""Declarations of the construction-site wages domain (实名制 / 工资支付).

Six record feeds about the ``construction_sites`` layer (its ``source_id`` is
the feeds' ``site_id``) and the enterprises building them: real-name
registrations, monthly attendance, wages, transfers to the dedicated wage
account, wage deposits, and enterprise bad-behaviour / credit / blacklist
records. The rules reading them are in :mod:`models.supervision.sites`.

Worker ids are opaque (a hash or a platform's own number): a value shaped like
a resident identity number (18 characters, or 15 digits) is rejected at ingest,
so no real ID number is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from layers.base import LayerSpec, Prop
from layers.feeds import FeedSpec, register_feed

#: Map layers this domain adds (none: the sites are ``construction_sites``).
LAYERS: tuple[LayerSpec, ...] = ()

SUBJECT = ("construction_sites", "site_id")

#: Kinds of enterprise records (不良行为记录 / 信用记录 / 黑名单).
RECORD_KINDS = ("bad_behaviour", "credit", "blacklist")
#: Severity of an enterprise record (general / serious / severe).
SEVERITIES = ("general", "serious", "severe")

#: A mainland resident identity number (GB 11643-1999: 17 digits and a check
#: character; the old 15-digit form) -- never accepted as a worker id.
_ID_NUMBER = re.compile(r"^(\d{17}[\dXx]|\d{15})$")


def looks_like_id_number(value: str) -> bool:
    """Whether ``value`` has the shape of a resident identity number.

    Examples
    --------
    >>> looks_like_id_number("44010619900101123X"), looks_like_id_number("W9f3a")
    (True, False)
    """
    return bool(_ID_NUMBER.match(value.strip()))


def _site_id() -> Prop:
    return Prop(
        "site_id",
        "text",
        "Site id",
        "工地编号",
        aliases=("site_id", "site", "project_id", "项目编号", "工地编号"),
        indexed=True,
    )


def _worker_id() -> Prop:
    return Prop(
        "worker_id",
        "text",
        "Worker id (opaque)",
        "工人编号",
        aliases=("worker_id", "worker", "工人编号"),
        description="An opaque id (a hash or the platform's number), never an "
        "identity number: values shaped like one are rejected.",
    )


def _month() -> Prop:
    return Prop(
        "month",
        "date",
        "Month (first day)",
        "月份",
        aliases=("month", "月份", "period"),
        temporal=True,
    )


def _yuan(name: str, title: str, title_zh: str, *aliases: str) -> Prop:
    return Prop(
        name,
        "float",
        title,
        title_zh,
        unit="yuan",
        aliases=(name, *aliases),
        non_negative=True,
    )


def _check_worker(row: dict[str, Any]) -> str | None:
    worker = row.get("worker_id")
    if worker and looks_like_id_number(worker):
        return "worker_id looks like an identity number: give an opaque id"
    return None


def _check_month(row: dict[str, Any]) -> str | None:
    month = row.get("month")
    if isinstance(month, dt.date) and month.day != 1:
        return f"month={month.isoformat()} is not the first day of a month"
    return _check_worker(row)


def _check_attendance(row: dict[str, Any]) -> str | None:
    days = row.get("days")
    if days is not None and days > 31:
        return f"days={days}: more than a month has"
    return _check_month(row)


SITE_WORKERS = register_feed(
    FeedSpec(
        id="site_workers",
        title="Real-name worker registrations",
        title_zh="实名制登记",
        description="One row per worker and site: employer, labour contract, "
        "real-name registration date and first site entry.",
        columns=(
            _site_id(),
            _worker_id(),
            Prop(
                "enterprise",
                "text",
                "Employer",
                "用工企业",
                aliases=("enterprise", "employer", "用工企业", "company"),
            ),
            Prop(
                "contract_signed",
                "bool",
                "Labour contract signed",
                "已签劳动合同",
                aliases=("contract_signed", "contract", "劳动合同"),
            ),
            Prop(
                "registered_on",
                "date",
                "Registered on",
                "实名登记日期",
                aliases=("registered_on", "registration_date", "登记日期"),
                temporal=True,
            ),
            Prop(
                "entered_on",
                "date",
                "First entered the site",
                "进场日期",
                aliases=("entered_on", "entry_date", "进场日期"),
            ),
        ),
        key=("site_id", "worker_id"),
        domain="sites",
        subject=SUBJECT,
        row_check=_check_worker,
    )
)

SITE_ATTENDANCE = register_feed(
    FeedSpec(
        id="site_attendance",
        title="Monthly attendance",
        title_zh="考勤",
        description="Days a worker attended (gate records) in a month.",
        columns=(
            _site_id(),
            _worker_id(),
            _month(),
            Prop(
                "days",
                "int",
                "Days attended",
                "出勤天数",
                aliases=("days", "出勤天数", "attendance_days"),
                non_negative=True,
            ),
        ),
        key=("site_id", "worker_id", "month"),
        required=("days",),
        domain="sites",
        subject=SUBJECT,
        row_check=_check_attendance,
    )
)

SITE_WAGES = register_feed(
    FeedSpec(
        id="site_wages",
        title="Wages paid",
        title_zh="工资发放",
        description="The wage of a worker for a month, paid on a day.",
        columns=(
            _site_id(),
            _worker_id(),
            _month(),
            Prop(
                "paid_on",
                "date",
                "Paid on",
                "发放日期",
                aliases=("paid_on", "pay_date", "发放日期"),
                temporal=True,
            ),
            _yuan("amount_yuan", "Amount", "金额", "amount", "金额"),
        ),
        key=("site_id", "worker_id", "month"),
        required=("paid_on", "amount_yuan"),
        domain="sites",
        subject=SUBJECT,
        row_check=_check_month,
    )
)

SITE_WAGE_TRANSFERS = register_feed(
    FeedSpec(
        id="site_wage_transfers",
        title="Labour-cost transfers to the wage account",
        title_zh="人工费用拨付",
        description="Labour cost the developer transferred to the site's dedicated "
        "wage account (several transfers of one day are given as one sum).",
        columns=(
            _site_id(),
            Prop(
                "transferred_on",
                "date",
                "Transferred on",
                "拨付日期",
                aliases=("transferred_on", "transfer_date", "拨付日期"),
                temporal=True,
            ),
            _yuan("amount_yuan", "Amount", "金额", "amount", "金额"),
        ),
        key=("site_id", "transferred_on"),
        required=("amount_yuan",),
        domain="sites",
        subject=SUBJECT,
    )
)

SITE_DEPOSITS = register_feed(
    FeedSpec(
        id="site_deposits",
        title="Wage deposits",
        title_zh="工资保证金",
        description="Wage deposit paid for a site, with the contract amount it is "
        "measured against (人社部发〔2021〕65号: 1-3 % of the contract).",
        columns=(
            _site_id(),
            Prop(
                "paid_on",
                "date",
                "Paid on",
                "缴存日期",
                aliases=("paid_on", "deposit_date", "缴存日期"),
                temporal=True,
            ),
            _yuan("amount_yuan", "Deposit", "保证金金额", "amount", "保证金金额"),
            _yuan(
                "contract_amount_yuan",
                "Contract amount",
                "合同金额",
                "contract_amount",
                "合同金额",
            ),
        ),
        key=("site_id", "paid_on"),
        required=("amount_yuan",),
        domain="sites",
        subject=SUBJECT,
    )
)

ENTERPRISE_RECORDS = register_feed(
    FeedSpec(
        id="enterprise_records",
        title="Enterprise credit records",
        title_zh="企业信用记录",
        description="Bad-behaviour records, credit (breach-of-trust) records and "
        "blacklistings of construction enterprises, one row per record under the "
        "number the issuing platform gave it: a record loaded again (a corrected "
        "note, severity or date) replaces the one of the same number and is "
        "deducted once.",
        columns=(
            Prop(
                "record_id",
                "text",
                "Record number",
                "记录编号",
                aliases=(
                    "record_id",
                    "record_no",
                    "record_number",
                    "记录编号",
                    "文号",
                    "决定文号",
                ),
                description="The issuing platform's number of the record "
                "(记录编号, or the decision's document number): what identifies it.",
            ),
            Prop(
                "enterprise",
                "text",
                "Enterprise",
                "企业名称",
                aliases=("enterprise", "company", "企业名称"),
                indexed=True,
            ),
            Prop(
                "recorded_on",
                "date",
                "Recorded on",
                "记录日期",
                aliases=("recorded_on", "date", "记录日期"),
                temporal=True,
            ),
            Prop(
                "kind",
                "text",
                "Kind",
                "类型",
                aliases=("kind", "type", "类型"),
                choices=RECORD_KINDS,
            ),
            Prop(
                "severity",
                "text",
                "Severity",
                "严重程度",
                aliases=("severity", "严重程度"),
                choices=SEVERITIES,
            ),
            Prop("note", "text", "Note", "说明", aliases=("note", "说明", "reason")),
        ),
        key=("record_id",),
        required=("enterprise", "recorded_on", "kind"),
        domain="sites",
        # an enterprise works in many districts: its records are read by
        # those reading every construction site (as its credit score is)
        readers=("construction_sites", "all"),
    )
)

FEEDS = (
    SITE_WORKERS,
    SITE_ATTENDANCE,
    SITE_WAGES,
    SITE_WAGE_TRANSFERS,
    SITE_DEPOSITS,
    ENTERPRISE_RECORDS,
)
