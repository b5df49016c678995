"""Run the supervision rules: every domain's evaluator, then the loop.

:func:`evaluate` asks each registered evaluator
(``models.supervision.rules.EVALUATORS``) for its findings at a date, raises
them as warnings (``loop.raise_findings``: new ones raised, known open ones
updated, closed ones re-raised only when observed more than
``LoopSettings.reopen_after_days`` after their closure: see
``rules.Finding``) and then escalates the overdue steps. It runs in the
caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import time
from collections.abc import Iterable

from pydantic_settings import BaseSettings
from sqlalchemy import Connection

from gis_server.audit import Actor
from gis_server.errors import InvalidParameter
from models.supervision.loop import RaiseResult, escalate_overdue, raise_findings
from models.supervision.rules import (
    AFTER_EVALUATE,
    DOMAINS,
    EVALUATORS,
    LOCAL_TZ,
    evaluation_time,
    load_domains,
)
from models.supervision.settings import LoopSettings, loop_settings

log = logging.getLogger("gis_server.supervision.engine")

__all__ = [
    "DOMAINS",
    "LOCAL_TZ",
    "SYSTEM",
    "domain_settings",
    "end_of_day",
    "evaluate",
    "load_domains",
]

#: Who scheduled evaluations are recorded against.
SYSTEM = Actor(name="system", role="system")


def domain_settings(domain: str) -> BaseSettings | None:
    """The current thresholds of ``domain``: its ``GIS_RULES_<DOMAIN>_`` class.

    The class the domain module names as ``SETTINGS`` (the rivers use the water
    model's ``GIS_WATER_*``), else the one pydantic-settings class with that
    env prefix in ``models.supervision.<domain>``, instantiated from the
    environment; None when the domain has neither.
    """
    prefix = f"GIS_RULES_{domain.upper()}_"
    try:
        module = importlib.import_module(f"models.supervision.{domain}")
    except ModuleNotFoundError:
        return None
    declared = getattr(module, "SETTINGS", None)  # a domain naming its class
    if isinstance(declared, type) and issubclass(declared, BaseSettings):
        return declared()
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value.model_config.get("env_prefix", "").upper() == prefix
        ):
            return value()
    return None


#: The end of an ``as_of`` day, or now if earlier (the evaluation time).
end_of_day = evaluation_time


def evaluate(
    conn: Connection,
    as_of: dt.date,
    domains: Iterable[str] | None = None,
    actor: Actor = SYSTEM,
    settings: LoopSettings | None = None,
    *,
    escalate: bool = True,
) -> dict[str, RaiseResult]:
    """Evaluate the rules of ``domains`` (default: all registered) at ``as_of``.

    Returns per domain what happened to its findings. Overdue warnings of
    every domain are escalated afterwards (at the end of ``as_of``, or now
    when that is earlier), unless ``escalate`` is false.
    """
    settings = settings or loop_settings()
    load_domains()
    chosen = list(domains) if domains is not None else sorted(EVALUATORS)
    unknown = [d for d in chosen if d not in EVALUATORS]
    if unknown:
        known = ", ".join(sorted(EVALUATORS)) or "none"
        raise InvalidParameter(
            f"no rules for domain(s) {', '.join(unknown)} (known: {known})"
        )
    now = end_of_day(as_of)
    results: dict[str, RaiseResult] = {}
    for domain in chosen:
        start = time.perf_counter()
        findings = EVALUATORS[domain](conn, as_of)
        results[domain] = raise_findings(
            conn, findings, actor, at=now, settings=settings
        )
        after = AFTER_EVALUATE.get(domain)
        if after is not None:
            after(conn, as_of, findings)
        log.info(
            "domain evaluated",
            extra={
                "domain": domain,
                "as_of": as_of.isoformat(),
                "findings": len(findings),
                "new": results[domain].new,
                "updated": results[domain].updated,
                "seconds": round(time.perf_counter() - start, 3),
            },
        )
    if escalate:
        escalate_overdue(conn, now, actor, settings)
    return results
