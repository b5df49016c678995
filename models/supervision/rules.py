"""The vocabulary every supervision domain declares its rules in.

A :class:`Rule` is a named check with the standard it comes from and a
confidence mark ([S] published, [R] commonly cited, [D] design default); its
thresholds are fields of the domain's settings class (environment variables,
so an administrator can change them). A domain registers an *evaluator*: a
function reading the domain's feeds and layers and returning
:class:`Finding` objects. The loop (``models.supervision.loop``) turns
findings into warnings; a finding seen again (same rule, subject and
``period``) updates its open warning instead of raising a second one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
    """A rule found something: the evidence a warning is raised with."""

    rule: str  # Rule.id
    subject_layer: str | None  # layer of the subject (None: no map position)
    subject_id: str  # the subject's source_id in that layer (or its code)
    level: str  # one of LEVELS
    observed_at: dt.datetime  # when the condition was seen (latest evidence)
    #: with rule + subject, identifies the warning: "2026-11", a record id,
    #: "" for a standing condition
    period: str
    summary: str  # one line for lists and the map popup
    evidence: dict[str, Any] = field(default_factory=dict)
    responsible: str | None = None  # party the warning is dispatched to
    district: str | None = None  # for rankings per district / centre

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"finding of {self.rule}: unknown level {self.level!r}")
        if self.rule not in RULES:
            raise ValueError(f"finding of an undeclared rule {self.rule!r}")


#: An evaluator reads the database at ``as_of`` and returns findings.
Evaluator = Callable[[Connection, dt.date], list[Finding]]

#: Run after a domain's findings are raised (e.g. concrete credit scores).
AfterHook = Callable[[Connection, dt.date, list["Finding"]], object]

RULES: dict[str, Rule] = {}
EVALUATORS: dict[str, Evaluator] = {}
AFTER_EVALUATE: dict[str, AfterHook] = {}


def register_rule(rule: Rule) -> Rule:
    """Declare a rule; ids are unique across domains."""
    if rule.id in RULES and RULES[rule.id] != rule:
        raise ValueError(f"two rules share the id {rule.id!r}")
    if not rule.id.startswith(f"{rule.domain}."):
        raise ValueError(f"rule id {rule.id!r} must start with its domain")
    RULES[rule.id] = rule
    return rule


def register_evaluator(
    domain: str, evaluator: Evaluator, *, after: AfterHook | None = None
) -> Evaluator:
    """Declare the function that evaluates every rule of ``domain``, and what
    to do with its findings once they are raised (``after``)."""
    EVALUATORS[domain] = evaluator
    if after is not None:
        AFTER_EVALUATE[domain] = after
    return evaluator


def rules_of(domain: str) -> list[Rule]:
    return [r for r in RULES.values() if r.domain == domain]
