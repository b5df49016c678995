"""The vocabulary every supervision domain declares its rules in.

A :class:`Rule` is a named check with the standard it comes from and a
confidence mark ([S] published, [R] commonly cited, [D] design default); its
thresholds are fields of the domain's settings class (environment variables,
so an administrator can change them). A domain registers an *evaluator*: a
function reading the domain's feeds and layers and returning
:class:`Finding` objects. The loop (``models.supervision.loop``) turns
findings into warnings; a finding seen again (same rule, subject and
``period``) updates its open warning instead of raising a second one; when
a closed warning's key comes back is decided by ``Finding.observed_at`` (see
:class:`Finding`, one rule for every domain).

A domain may also register how long its warnings have to be rectified
(``register_evaluator(..., deadline=fn)``): the loop asks that hook whichever
path dispatches a warning (API, CLI, demo), and falls back to the deadlines by
level of ``LoopSettings``.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

Confidence = Literal["S", "R", "D"]

#: Warning levels, lowest first; a finding's level decides the deadline of its
#: rectification and its colour on the map (the river-chief ladder, 2021
#: guidance; inspection severities general/serious/severe map onto it).
LEVELS: tuple[str, ...] = ("yellow", "orange", "red")
LEVEL_ZH = {"yellow": "黄色", "orange": "橙色", "red": "红色"}


@dataclass(frozen=True)
class Rule:
    """One named, sourced check; the thresholds live in the domain's settings."""

    id: str  # "concrete.chloride": <domain>.<name>, public (filters, exports)
    domain: str
    title: str
    title_zh: str
    source: str  # "GB 50164-2011 §3.1; JGJ 55"
    confidence: Confidence
    #: the layer whose features the findings sit on (for the warnings map)
    subject_layer: str | None
    description: str = ""
    #: names of the settings fields holding this rule's thresholds
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """A rule found something: the evidence a warning is raised with.

    ``(rule, subject_id, period)`` is the warning's key. ``observed_at``
    follows ONE rule in every domain, because the loop decides with it
    whether a key whose warning was closed comes back:

    1. ``observed_at`` is the time of the latest evidence of the condition:
       the reading, record, inspection or model scoring the finding is made
       of (the newest one when several), timezone-aware.
    2. A *standing condition* -- an absence, or a state that holds at the
       evaluation: no deposit, no transfer, no wage record, no check recorded,
       a liquidity level, a check or a deadline overdue -- has no record of its
       own: its latest evidence is the evaluation itself, and ``observed_at``
       is the evaluation time, :func:`evaluation_time` of the evaluator's
       ``as_of`` (the end of that day in China Standard Time, or now when
       earlier). Never a fixed date standing in for it (a due date, the end
       of a month, the first reading of a streak).
    3. The loop clamps ``observed_at`` to the evaluation time it raises at
       (``raise_findings(at=...)``): a time in the future (an end of month,
       mid-month) counts as the evaluation time.
    4. While the key's warning is open a finding only updates it. Once it is
       closed (销号) at ``closed_at``, the key raises a new occurrence only
       when ``observed_at > closed_at + LoopSettings.reopen_after_days``:
       evidence up to then is taken for record feeds catching up with a
       rectification verified on site. So a standing condition that persists
       comes back ``reopen_after_days`` after the closure (on the first
       evaluation after it), and a record-based one when a record dated that
       long after the closure still shows the condition.

    ``listed`` marks a warning for supervised listing (挂牌督办, e.g. a severe
    inspection problem); it is a filterable property of the warning and the
    loop adds the listing to the rectification notice.
    """

    rule: str  # Rule.id
    subject_layer: str | None  # layer of the subject (None: no map position)
    subject_id: str  # the subject's source_id in that layer (or its code)
    level: str  # one of LEVELS
    observed_at: dt.datetime  # time of the latest evidence (see above)
    #: with rule + subject, identifies the warning: "2026-11", a record id,
    #: "" for a standing condition
    period: str
    summary: str  # one line for lists and the map popup
    evidence: dict[str, Any] = field(default_factory=dict)
    responsible: str | None = None  # party the warning is dispatched to
    district: str | None = None  # for rankings per district / centre
    listed: bool = False  # supervised listing (挂牌督办)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"finding of {self.rule}: unknown level {self.level!r}")
        if self.rule not in RULES:
            raise ValueError(f"finding of an undeclared rule {self.rule!r}")


#: The supervision domains, each a module ``models.supervision.<domain>``
#: registering its rules and evaluator when imported.
DOMAINS: tuple[str, ...] = (
    "buildings",
    "concrete",
    "sites",
    "fund",
    "inspections",
    "water",
)

#: Day boundaries of ``as_of`` dates: the supervised systems are in Guangdong.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def evaluation_time(as_of: dt.date) -> dt.datetime:
    """The time an evaluation at ``as_of`` stands for: the last instant of
    that day in China Standard Time, or now when that is earlier.

    The ``observed_at`` of a standing condition (see :class:`Finding`).

    >>> evaluation_time(dt.date(2020, 1, 31)).isoformat()
    '2020-01-31T23:59:59.999999+08:00'
    """
    end = dt.datetime.combine(
        as_of + dt.timedelta(days=1), dt.time(), tzinfo=LOCAL_TZ
    ) - dt.timedelta(microseconds=1)
    return min(end, dt.datetime.now(dt.UTC))


#: An evaluator reads the database at ``as_of`` and returns findings.
Evaluator = Callable[[Connection, dt.date], list[Finding]]

#: Run after a domain's findings are raised (e.g. concrete credit scores).
AfterHook = Callable[[Connection, dt.date, list["Finding"]], object]

#: A domain's rectification deadline: given a warning (its row as a mapping:
#: ``rule``, ``level``, ``evidence``...) and the time of the notice (a
#: dispatch, or a rejection sending it back), the deadline, or None for the
#: loop's default by level.
DeadlineHook = Callable[[Mapping[str, Any], dt.datetime], dt.datetime | None]

RULES: dict[str, Rule] = {}
EVALUATORS: dict[str, Evaluator] = {}
AFTER_EVALUATE: dict[str, AfterHook] = {}
DEADLINES: dict[str, DeadlineHook] = {}


def register_rule(rule: Rule) -> Rule:
    """Declare a rule; ids are unique across domains."""
    if rule.id in RULES and RULES[rule.id] != rule:
        raise ValueError(f"two rules share the id {rule.id!r}")
    if not rule.id.startswith(f"{rule.domain}."):
        raise ValueError(f"rule id {rule.id!r} must start with its domain")
    RULES[rule.id] = rule
    return rule


def register_evaluator(
    domain: str,
    evaluator: Evaluator,
    *,
    after: AfterHook | None = None,
    deadline: DeadlineHook | None = None,
) -> Evaluator:
    """Declare the function that evaluates every rule of ``domain``, what to
    do with its findings once they are raised (``after``) and how long its
    warnings have to be rectified (``deadline``, default: by level)."""
    EVALUATORS[domain] = evaluator
    if after is not None:
        AFTER_EVALUATE[domain] = after
    if deadline is not None:
        DEADLINES[domain] = deadline
    return evaluator


def load_domains() -> list[str]:
    """Import every domain module; return the domains that registered an
    evaluator (their rules, evaluator and hooks register on import)."""
    for domain in DOMAINS:
        importlib.import_module(f"models.supervision.{domain}")
    return [d for d in DOMAINS if d in EVALUATORS]


def deadline_hook(domain: str) -> DeadlineHook | None:
    """The deadline hook ``domain`` registered, if any (domains loaded first)."""
    if domain in DOMAINS and domain not in EVALUATORS:
        load_domains()
    return DEADLINES.get(domain)


def rules_of(domain: str) -> list[Rule]:
    return [r for r in RULES.values() if r.domain == domain]
