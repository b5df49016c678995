"""Declarations of the housing provident fund domain (住房公积金), 21 centres.

One map layer, ``fund_centres`` (the area each of Guangdong's 21
prefecture-level management centres serves), and two feeds: the monthly
metrics every centre reports and each centre's own large-flow limit (the
seed system's 大额资金风险值). Amounts are in thousand yuan. The rules are in
:mod:`models.supervision.fund`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from layers.base import LayerSpec, Prop, Style
from layers.feeds import FeedSpec, register_feed

FUND_CENTRES = LayerSpec(
    id="fund_centres",
    title="Housing provident fund centres",
    title_zh="住房公积金管理中心",
    description="The area each of Guangdong's 21 prefecture-level provident fund "
    "management centres serves; `code` is the prefecture's administrative code.",
    geometry_types=("MultiPolygon",),
    properties=(
        Prop(
            "code",
            "text",
            "Centre code",
            "中心编码",
            aliases=("code", "centre_code", "center_code", "adcode", "编码"),
            indexed=True,
        ),
        Prop("name", "text", "Name", "名称", aliases=("name", "name_en")),
        Prop(
            "name_zh", "text", "Chinese name", "中文名称", aliases=("name_zh", "名称")
        ),
        Prop(
            "city",
            "text",
            "Prefecture-level city",
            "地级市",
            aliases=("city", "地级市", "城市"),
        ),
    ),
    id_aliases=("code", "centre_code", "adcode", "id", "fid"),
    min_zoom=0,
    max_zoom=14,
    style=Style(color="#2c7fb8", fill_color="#7fcdbb", weight=1.0),
    keywords=("provident fund", "公积金", "liquidity"),
)

#: Map layers this domain adds.
LAYERS: tuple[LayerSpec, ...] = (FUND_CENTRES,)

SUBJECT = ("fund_centres", "centre_code")


def _centre() -> Prop:
    return Prop(
        "centre_code",
        "text",
        "Centre code",
        "中心编码",
        aliases=("centre_code", "center_code", "code", "中心编码"),
    )


def _amount(name: str, title: str, title_zh: str) -> Prop:
    return Prop(
        name,
        "float",
        title,
        title_zh,
        unit="thousand yuan",
        aliases=(name, title_zh),
        non_negative=True,
    )


def _check_month(row: dict[str, Any]) -> str | None:
    month = row.get("month")
    if isinstance(month, dt.date) and month.day != 1:
        return f"month={month.isoformat()} is not the first day of a month"
    return None


FUND_METRICS = register_feed(
    FeedSpec(
        id="fund_metrics",
        title="Provident fund monthly metrics",
        title_zh="公积金月度指标",
        description="One row per centre and month: the month's flows and the "
        "balances at its end, in thousand yuan.",
        columns=(
            _centre(),
            Prop(
                "month",
                "date",
                "Month (first day)",
                "月份",
                aliases=("month", "月份", "period"),
                temporal=True,
            ),
            _amount("deposits", "Deposits (contributions)", "缴存额"),
            _amount("withdrawals", "Withdrawals", "提取额"),
            _amount("loans_issued", "Loans issued", "贷款发放额"),
            _amount("principal_repaid", "Principal repaid", "回收本金"),
            _amount("deposit_balance", "Deposit balance", "缴存余额"),
            _amount("loan_balance", "Personal housing-loan balance", "个贷余额"),
            _amount("overdue_loan_balance", "Overdue loan balance", "逾期贷款余额"),
            Prop(
                "large_flows_count",
                "int",
                "Large flows",
                "大额资金笔数",
                aliases=("large_flows_count", "large_flows", "大额资金笔数"),
                non_negative=True,
            ),
            _amount("largest_single_flow", "Largest single flow", "最大单笔金额"),
        ),
        key=("centre_code", "month"),
        required=("deposit_balance", "loan_balance"),
        domain="fund",
        subject=SUBJECT,
        subject_key="code",
        row_check=_check_month,
    )
)

FUND_CENTRE_LIMITS = register_feed(
    FeedSpec(
        id="fund_centre_limits",
        title="Large-flow limits of the centres",
        title_zh="大额资金风险值",
        description="Each centre's own limit above which a single flow is large, "
        "in force from a date until the next one.",
        columns=(
            _centre(),
            _amount("large_flow_limit", "Large-flow limit", "大额资金风险值"),
            Prop(
                "effective_from",
                "date",
                "Effective from",
                "生效日期",
                aliases=("effective_from", "from", "生效日期"),
                temporal=True,
            ),
        ),
        key=("centre_code", "effective_from"),
        required=("large_flow_limit",),
        domain="fund",
        subject=SUBJECT,
        subject_key="code",
    )
)

FEEDS = (FUND_METRICS, FUND_CENTRE_LIMITS)
