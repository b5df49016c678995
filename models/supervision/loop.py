"""The closed loop of a supervision warning (预警闭环).

Every rule of every domain ends here. A :class:`~models.supervision.rules.Finding`
raises a warning (a point of layer ``supervision_warnings``); a supervisor
dispatches it to the responsible party with a deadline; the party replies with
a note and at least one evidence file (rectified); the supervisor verifies and
either closes it (销号) or sends it back with a reason and a new deadline.
No step can be skipped: :data:`TRANSITIONS` is the only table of legal moves,
and each step is taken under a row lock (``SELECT ... FOR UPDATE``), so of two
concurrent steps from one state the second finds the state moved and is
refused as an illegal transition.

Who may take which step is decided above the loop (the API and the CLI ask
``gis_server.auth.policy``: ``warnings.dispatch``, ``warnings.rectify``,
``warnings.verify``); the loop itself holds the four-eyes rule
(``LoopSettings.four_eyes``): whoever recorded a rectification may not verify
it.

Deadlines: the one the dispatcher gives, else the warning's domain's deadline
hook (``rules.register_evaluator(..., deadline=fn)``: inspections count their
notice's days by severity), else ``LoopSettings.deadline_days_<level>``; a
supervised-listed warning (``listed``, 挂牌督办) has the listing added to its
notice whichever path dispatches it.

Overdue steps escalate (:func:`escalate_overdue`): a raised warning not
dispatched within ``LoopSettings.dispatch_within_days``, a dispatched one past
its deadline, or a rectified one not verified within
``LoopSettings.verify_within_days`` goes up one escalation level
(1 督办 supervised, 2 约谈 summons, 3 通报 public notice) at most once per
``LoopSettings.escalation_interval_days``.

A finding seen again while its warning is open updates the warning's evidence,
summary, observation time, level and listing (only upwards), never its state.
``observed_at`` follows the one rule written down in
:class:`~models.supervision.rules.Finding`: the time of the latest evidence
(the evaluation time for a standing condition), clamped here to the time the
findings are raised at. A finding for a closed warning raises a NEW warning
only when observed later than ``closed_at + LoopSettings.reopen_after_days``:
same ``source_id`` (``<rule>|<subject_id>|<period>``) with the next
``occurrence`` (stored in ``source_part``, so the layer's unique key holds);
any other finding for a closed warning changes nothing.

Every change writes, in the caller's transaction, the warning row, one row of
``supervision_warning_events`` (the loop history) and one audit row
(``gis_server.audit.record``) with the state before and after. One exception,
on purpose: the ``overdue`` flag is derived (from the state, the deadline and
the step times at a given moment; :func:`list_warnings` recomputes it at its
``now``), and :func:`escalate_overdue` refreshes it without an event or audit
row -- the escalations themselves are recorded. The functions take a
connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Table,
    Text,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from gis_server.audit import Actor, record, record_many
from gis_server.errors import Forbidden, IllegalTransition, InvalidParameter, NotFound
from layers import get_layer, metadata, table_for
from layers.supervision.warnings import STATES
from models.supervision.evidence import (
    EvidenceRef,
    known_evidence,
    supervision_evidence,
)
from models.supervision.rules import LEVELS, RULES, Finding, deadline_hook
from models.supervision.settings import LoopSettings, loop_settings

__all__ = [
    "ACTIONS",
    "ESCALATION_NAMES",
    "STATES",
    "TRANSITIONS",
    "EvidenceRef",
    "IllegalTransition",
    "RaiseResult",
    "dispatch",
    "escalate_overdue",
    "get_warning",
    "list_warnings",
    "raise_findings",
    "rankings",
    "rectify",
    "supervision_evidence",
    "supervision_warning_events",
    "verify",
]

log = logging.getLogger("gis_server.supervision.loop")

LAYER_ID = "supervision_warnings"
#: pg_advisory_xact_lock key serialising raise_findings ("supervis" in ASCII)
_RAISE_LOCK = 0x7375706572766973
SOURCE = "supervision"
warnings_table = table_for(LAYER_ID)

#: The only legal moves: (state, action) -> next state. Everything else --
#: raised -> closed, dispatched -> closed, anything out of closed -- is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("raised", "dispatch"): "dispatched",
    ("dispatched", "rectify"): "rectified",
    ("rectified", "accept"): "closed",  # 销号
    ("rectified", "reject"): "dispatched",  # sent back with a reason
}
ACTIONS: tuple[str, ...] = ("dispatch", "rectify", "accept", "reject")

#: Escalation levels of an overdue warning (DOMAIN §6: summons, public notice).
ESCALATION_NAMES: dict[int, str] = {
    0: "none",
    1: "督办 supervised",
    2: "约谈 summons",
    3: "通报 public notice",
}
MAX_ESCALATION = max(ESCALATION_NAMES)

supervision_warning_events = Table(
    "supervision_warning_events",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "warning_id",
        BigInteger,
        ForeignKey(f"{warnings_table.name}.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("actor_role", Text),
    #: raise, update, dispatch, rectify, accept, reject, escalate
    Column("action", Text, nullable=False),
    Column("from_state", Text),
    Column("to_state", Text),
    Column("note", Text),
    #: [{sha256, name, size, content_type}, ...] (rectifications)
    Column("evidence", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("deadline", DateTime(timezone=True)),
    comment="History of every supervision warning's loop",
)
Index(
    "ix_supervision_warning_events_warning_id", supervision_warning_events.c.warning_id
)
#: the events citing a photo (the evidence register's row-level policy)
Index(
    "ix_supervision_warning_events_evidence",
    supervision_warning_events.c.evidence,
    postgresql_using="gin",
    postgresql_ops={"evidence": "jsonb_path_ops"},
)

#: Fields an audit row shows before and after a change.
_AUDITED = (
    "state",
    "level",
    "responsible",
    "deadline",
    "escalation",
    "overdue",
    "dispatched_at",
    "rectified_at",
    "closed_at",
    "listed",
)
_PUBLIC = [c for c in warnings_table.c if c.name not in ("geom", "geom_3857")]
_RANKING_KEYS = {
    "district": warnings_table.c.district,
    "responsible": warnings_table.c.responsible,
    "domain": warnings_table.c.domain,
    "rule": warnings_table.c.rule,
}


@dataclass
class RaiseResult:
    """What :func:`raise_findings` did: counts and the warning of each finding."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    ids: list[int] = field(default_factory=list)

    def __add__(self, other: RaiseResult) -> RaiseResult:
        return RaiseResult(
            self.new + other.new,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            [*self.ids, *other.ids],
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise InvalidParameter(f"time {value.isoformat()} has no time zone")
    return value


def _jsonable(value: Any) -> Any:
    """Plain JSON (dates as ISO strings) for jsonb columns and audit rows."""
    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, set | tuple):
        return list(value)
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _snapshot(row: Any) -> dict[str, Any]:
    m = row._mapping if hasattr(row, "_mapping") else row
    return _jsonable({k: m[k] for k in _AUDITED})


def source_id(finding: Finding) -> str:
    """The warning key of a finding: ``<rule>|<subject_id>|<period>``."""
    return f"{finding.rule}|{finding.subject_id}|{finding.period}"


#: The states whose step can be overdue (everything but closed).
_OPEN = ("raised", "dispatched", "rectified")


def _overdue_clause(now: dt.datetime, settings: LoopSettings):
    """Overdue at ``now``: raised and not dispatched in time, dispatched and
    past its deadline, rectified and not verified in time."""
    t = warnings_table.c
    undispatched = now - dt.timedelta(days=settings.dispatch_within_days)
    unverified = now - dt.timedelta(days=settings.verify_within_days)
    return or_(
        and_(t.state == "raised", t.raised_at < undispatched),
        and_(t.state == "dispatched", t.deadline < now),
        and_(t.state == "rectified", t.rectified_at < unverified),
    )


# -- writing ------------------------------------------------------------------


def _event_row(
    warning_id: int,
    actor: Actor,
    action: str,
    from_state: str | None,
    to_state: str | None,
    at: dt.datetime,
    *,
    note: str | None = None,
    evidence: Sequence[EvidenceRef] = (),
    deadline: dt.datetime | None = None,
) -> dict[str, Any]:
    return {
        "warning_id": warning_id,
        "at": at,
        "actor": actor.name,
        "actor_role": actor.role,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "note": note or None,
        "evidence": [e.as_dict() for e in evidence],
        "deadline": deadline,
    }


def _event(conn: Connection, *args: Any, **kwargs: Any) -> None:
    conn.execute(insert(supervision_warning_events), [_event_row(*args, **kwargs)])


def _audit_many(
    conn: Connection,
    actor: Actor,
    action: str,
    changes: list[tuple[int, Any, Any]],
) -> None:
    """The audit rows of many warnings at once; ``changes``: (id, before, after)."""
    record_many(conn, actor, action, "warning", [(str(w), b, a) for w, b, a in changes])


def _positions(
    conn: Connection, findings: Sequence[Finding], settings: LoopSettings
) -> list[tuple[float, float, bool]]:
    """(lon, lat, located) per finding: its subject's point, else its
    district's (layer ``districts`` by name), else city hall (a lon/lat in
    the evidence comes before the district); one query per
    subject layer and one for the districts."""
    wanted: dict[str, set[str]] = {}
    for f in findings:
        if f.subject_layer:
            wanted.setdefault(f.subject_layer, set()).add(f.subject_id)
    points: dict[tuple[str, str], tuple[float, float]] = {}
    for layer_id, ids in wanted.items():
        try:
            table = get_layer(layer_id).table
        except KeyError:
            continue
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (source_id) source_id, ST_X(p) AS x, ST_Y(p) AS y "
                "FROM (SELECT id, source_id, source_part, ST_PointOnSurface(geom) AS p "
                f"FROM {table} WHERE source_id = ANY(:ids)) s "
                "ORDER BY source_id, source_part, id"
            ),
            {"ids": sorted(ids)},
        )
        points.update({(layer_id, r.source_id): (r.x, r.y) for r in rows})
    names = sorted(
        {
            f.district
            for f in findings
            if f.district and (f.subject_layer, f.subject_id) not in points
        }
    )
    districts: dict[str, tuple[float, float]] = {}
    if names:
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (name) name, ST_X(p) AS x, ST_Y(p) AS y "
                "FROM (SELECT id, name, ST_PointOnSurface(geom) AS p "
                "FROM layer_districts WHERE name = ANY(:names)) s ORDER BY name, id"
            ),
            {"names": names},
        )
        districts = {r.name: (r.x, r.y) for r in rows}
    out = []
    for f in findings:
        located = _evidence_point(f.evidence)
        if (f.subject_layer, f.subject_id) in points:
            out.append((*points[(f.subject_layer, f.subject_id)], True))
        elif located is not None:  # where the inspector stood, say
            out.append((*located, True))
        elif f.district in districts:
            out.append((*districts[f.district], False))
        else:
            out.append((settings.fallback_lon, settings.fallback_lat, False))
    return out


def _evidence_point(evidence: Any) -> tuple[float, float] | None:
    """A lon/lat recorded in a finding's evidence (an inspection's position),
    when it is a valid WGS84 coordinate."""
    if not isinstance(evidence, dict):
        return None
    try:
        lon, lat = float(evidence["lon"]), float(evidence["lat"])
    except (KeyError, TypeError, ValueError):
        return None
    if -180 <= lon <= 180 and -90 <= lat <= 90:
        return lon, lat
    return None


@dataclass
class _Seen:
    """The findings of one warning key in one call, merged."""

    finding: Finding  # the last one
    level: str
    observed: dt.datetime
    evidence: Any
    listed: bool


def _merge(
    findings: Iterable[Finding], at: dt.datetime
) -> tuple[dict[str, _Seen], list[str]]:
    """Findings by warning key (highest level, latest observation clamped to
    ``at``, last evidence, listed if any is), and the key of each finding in
    order."""
    seen: dict[str, _Seen] = {}
    keys: list[str] = []
    for f in findings:
        key = source_id(f)
        keys.append(key)
        observed = min(_aware(f.observed_at), at)
        evidence = _jsonable(f.evidence)
        if key in seen:
            prev = seen[key]
            level = max(prev.level, f.level, key=LEVELS.index)
            seen[key] = _Seen(
                f,
                level,
                max(prev.observed, observed),
                evidence,
                prev.listed or f.listed,
            )
        else:
            seen[key] = _Seen(f, f.level, observed, evidence, f.listed)
    return seen, keys


def _reopens(closed: Any, observed: dt.datetime, settings: LoopSettings) -> bool:
    """Whether a finding observed at ``observed`` raises a new occurrence of
    the closed warning ``closed`` (see :class:`~models.supervision.rules.Finding`)."""
    if closed.closed_at is None:
        return False
    return observed > closed.closed_at + dt.timedelta(days=settings.reopen_after_days)


def _changes(current: Any, seen: _Seen) -> dict[str, Any]:
    """What a finding seen again changes on its open warning."""
    f = seen.finding
    level = max(current.level, seen.level, key=LEVELS.index)
    changes: dict[str, Any] = {}
    if level != current.level:
        changes["level"] = level
    if seen.evidence != current.evidence:
        changes["evidence"] = seen.evidence
    if f.summary != current.summary:
        changes["summary"] = f.summary
    if current.observed_at is None or seen.observed > current.observed_at:
        changes["observed_at"] = seen.observed
    if seen.listed and not current.listed:  # like the level: only upwards
        changes["listed"] = True
    if (
        current.state == "raised"
        and f.responsible
        and f.responsible != current.responsible
    ):
        changes["responsible"] = f.responsible
    return changes


#: Columns a finding seen again may change (bulk UPDATE parameters).
_UPDATABLE = (
    "level",
    "evidence",
    "summary",
    "observed_at",
    "responsible",
    "listed",
)


def raise_findings(
    conn: Connection,
    findings: Iterable[Finding],
    actor: Actor,
    *,
    at: dt.datetime | None = None,
    settings: LoopSettings | None = None,
) -> RaiseResult:
    """Raise a warning per new finding; update the open warning of a known one.

    ``at`` is the evaluation time; every ``observed_at`` later than it counts
    as ``at``. A finding for an open warning (raised, dispatched, rectified)
    updates its evidence, summary, observation time, level and listing (never
    lower), and its responsible party while it is still only raised; its state
    never changes. A finding for a closed warning raises the next occurrence
    when observed later than ``closed_at + settings.reopen_after_days``, else
    it changes nothing. Findings sharing a key within one call are merged
    (highest level, latest observation, the last one's evidence); the repeats
    count as unchanged. ``ids`` has the warning of every finding, in order.
    """
    settings = settings or loop_settings()
    at = _aware(at or _now())
    t = warnings_table
    seen, keys = _merge(findings, at)
    result = RaiseResult(unchanged=len(keys) - len(seen))
    if not seen:
        return result
    # One raiser at a time: two evaluations inserting the same new key would
    # otherwise collide on the unique key (the row locks below only cover
    # warnings that exist already). Held until the caller's transaction ends.
    conn.execute(select(func.pg_advisory_xact_lock(_RAISE_LOCK)))
    latest: dict[str, Any] = {}
    for row in conn.execute(
        select(*_PUBLIC)
        .where(t.c.source == SOURCE, t.c.source_id.in_(list(seen)))
        .order_by(t.c.source_part)
        .with_for_update()
    ):
        latest[row.source_id] = row  # the last occurrence wins
    id_of: dict[str, int] = {}
    updates: list[tuple[Any, dict[str, Any]]] = []
    new: list[tuple[str, _Seen, int]] = []
    for key, s in seen.items():
        current = latest.get(key)
        if current is not None and current.state != "closed":
            id_of[key] = current.id
            changes = _changes(current, s)
            if changes:
                updates.append((current, changes))
            else:
                result.unchanged += 1
        elif current is not None and not _reopens(current, s.observed, settings):
            id_of[key] = current.id
            result.unchanged += 1
        else:
            occurrence = 1 if current is None else (current.occurrence or 1) + 1
            new.append((key, s, occurrence))
    if updates:
        conn.execute(
            update(t)
            .where(t.c.id == bindparam("_id"))
            .values(
                {c: bindparam(f"_{c}", type_=t.c[c].type) for c in _UPDATABLE}
                | {"updated_at": func.now()}
            ),
            [
                {"_id": cur.id}
                | {f"_{c}": changes.get(c, cur._mapping[c]) for c in _UPDATABLE}
                for cur, changes in updates
            ],
        )
        events = []
        for cur, changes in updates:
            note = (
                f"level {cur.level} -> {changes['level']}"
                if "level" in changes
                else None
            )
            events.append(
                _event_row(cur.id, actor, "update", cur.state, cur.state, at, note=note)
            )
        conn.execute(insert(supervision_warning_events), events)
        _audit_many(
            conn,
            actor,
            "warning.update",
            [
                (cur.id, _snapshot(cur), _snapshot({**cur._mapping, **changes}))
                for cur, changes in updates
            ],
        )
        result.updated = len(updates)
    if new:
        positions = _positions(conn, [s.finding for _, s, _ in new], settings)
        rows = []
        for (key, s, occurrence), (lon, lat, located) in zip(
            new, positions, strict=True
        ):
            f = s.finding
            rule = RULES[f.rule]
            rows.append(
                {
                    "source": SOURCE,
                    "source_id": key,
                    "source_part": occurrence - 1,
                    "rule": f.rule,
                    "domain": rule.domain,
                    "level": s.level,
                    "state": "raised",
                    "occurrence": occurrence,
                    "subject_layer": f.subject_layer,
                    "subject_id": f.subject_id,
                    "summary": f.summary,
                    "responsible": f.responsible,
                    "district": f.district,
                    "period": f.period,
                    "raised_at": at,
                    "observed_at": s.observed,
                    "escalation": 0,
                    "overdue": False,
                    "evidence": s.evidence,
                    "source_standard": rule.source,
                    "located": located,
                    "listed": s.listed,
                    "lon": lon,
                    "lat": lat,
                }
            )
        point = func.ST_SetSRID(
            func.ST_MakePoint(
                bindparam("lon", type_=Double()), bindparam("lat", type_=Double())
            ),
            4326,
        )
        new_ids = (
            conn.execute(
                insert(t)
                .values(geom=point)
                .returning(t.c.id, sort_by_parameter_order=True),
                rows,
            )
            .scalars()
            .all()
        )
        conn.execute(
            insert(supervision_warning_events),
            [
                _event_row(wid, actor, "raise", None, "raised", at, note=r["summary"])
                for wid, r in zip(new_ids, rows, strict=True)
            ],
        )
        _audit_many(
            conn,
            actor,
            "warning.raise",
            [
                (wid, None, _jsonable({k: r.get(k) for k in _AUDITED}))
                for wid, r in zip(new_ids, rows, strict=True)
            ],
        )
        for (key, _, _), wid in zip(new, new_ids, strict=True):
            id_of[key] = wid
        result.new = len(new)
    result.ids = [id_of[k] for k in keys]
    log.info(
        "findings raised",
        extra={
            "new": result.new,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "actor": actor.name,
        },
    )
    return result


def _lock(conn: Connection, warning_id: int):
    row = conn.execute(
        select(*_PUBLIC).where(warnings_table.c.id == warning_id).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no warning {warning_id}")
    return row


def _step(row, action: str) -> str:
    """The state ``action`` leads to from ``row``'s state, or IllegalTransition."""
    target = TRANSITIONS.get((row.state, action))
    if target is None:
        legal = [a for (s, a) in TRANSITIONS if s == row.state]
        allowed = ", ".join(legal) if legal else "nothing (closed)"
        raise IllegalTransition(
            f"warning {row.id} is {row.state}: cannot {action} (allowed: {allowed})"
        )
    return target


def _apply(
    conn: Connection,
    row,
    actor: Actor,
    action: str,
    to_state: str,
    changes: dict[str, Any],
    at: dt.datetime,
    *,
    note: str | None,
    evidence: Sequence[EvidenceRef] = (),
    deadline: dt.datetime | None = None,
) -> dict[str, Any]:
    t = warnings_table
    changes = {**changes, "state": to_state}
    conn.execute(
        update(t).where(t.c.id == row.id).values(**changes, updated_at=func.now())
    )
    _event(
        conn,
        row.id,
        actor,
        action,
        row.state,
        to_state,
        at,
        note=note,
        evidence=evidence,
        deadline=deadline,
    )
    after = {**row._mapping, **changes}
    record(
        conn,
        actor,
        f"warning.{action}",
        "warning",
        str(row.id),
        before=_snapshot(row),
        after=_snapshot(after),
    )
    log.info(
        "warning moved",
        extra={
            "warning": row.id,
            "action": action,
            "from": row.state,
            "to": to_state,
            "actor": actor.name,
        },
    )
    return _jsonable(after) | {"id": row.id}


def _deadline(
    row, deadline: dt.datetime | None, at: dt.datetime, settings: LoopSettings
) -> dt.datetime:
    """The deadline given, else the domain's (its deadline hook), else by level."""
    if deadline is None:
        hook = deadline_hook(row.domain)
        due = hook(row._mapping, at) if hook is not None else None
        if due is None:
            return at + dt.timedelta(days=settings.deadline_days(row.level))
        return _aware(due)
    deadline = _aware(deadline)
    if deadline <= at:
        raise InvalidParameter(f"deadline {deadline.isoformat()} is not in the future")
    return deadline


#: What a supervised-listed warning's notice says (挂牌督办, DOMAIN §6).
LISTING_NOTE = "挂牌督办"


def _notice(row, note: str) -> str:
    """The dispatcher's note, with the supervised listing when it is listed."""
    note = (note or "").strip()
    if not row.listed or LISTING_NOTE in note:
        return note
    return f"{note}（{LISTING_NOTE}）" if note else LISTING_NOTE


def dispatch(
    conn: Connection,
    warning_id: int,
    actor: Actor,
    responsible: str | None = None,
    deadline: dt.datetime | None = None,
    note: str = "",
    *,
    at: dt.datetime | None = None,
    settings: LoopSettings | None = None,
) -> dict[str, Any]:
    """raised -> dispatched: to ``responsible`` (default: the finding's party),
    due by ``deadline`` (default: the domain's deadline hook, else by level,
    ``LoopSettings.deadline_days_*``); a listed warning's note says so."""
    settings = settings or loop_settings()
    at = _aware(at or _now())
    row = _lock(conn, warning_id)
    to_state = _step(row, "dispatch")
    party = (responsible or row.responsible or "").strip()
    if not party:
        raise InvalidParameter(
            f"warning {warning_id} has no responsible party: name one"
        )
    due = _deadline(row, deadline, at, settings)
    return _apply(
        conn,
        row,
        actor,
        "dispatch",
        to_state,
        {"responsible": party, "deadline": due, "dispatched_at": at, "overdue": False},
        at,
        note=_notice(row, note),
        deadline=due,
    )


def rectify(
    conn: Connection,
    warning_id: int,
    actor: Actor,
    note: str,
    evidence: Sequence[EvidenceRef],
    *,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """dispatched -> rectified: the party's reply and at least one stored file."""
    at = _aware(at or _now())
    row = _lock(conn, warning_id)
    to_state = _step(row, "rectify")
    if not (note or "").strip():
        raise InvalidParameter("a rectification needs a reply note")
    evidence = list(evidence)
    if not evidence:
        raise InvalidParameter("a rectification needs at least one evidence file")
    hashes = [e.sha256 for e in evidence]
    missing = sorted(set(hashes) - known_evidence(conn, hashes))
    if missing:
        raise InvalidParameter(f"evidence not stored: {', '.join(missing)}")
    return _apply(
        conn,
        row,
        actor,
        "rectify",
        to_state,
        {"rectified_at": at, "overdue": False},
        at,
        note=note.strip(),
        evidence=evidence,
    )


def verify(
    conn: Connection,
    warning_id: int,
    actor: Actor,
    accept: bool,
    note: str = "",
    *,
    deadline: dt.datetime | None = None,
    at: dt.datetime | None = None,
    settings: LoopSettings | None = None,
) -> dict[str, Any]:
    """rectified -> closed (accept, 销号) or -> dispatched (reject: sent back
    with a reason in ``note`` and a new deadline, the domain's or by level
    unless given). With ``settings.four_eyes``, whoever recorded the
    rectification may not verify it (:class:`Forbidden`)."""
    settings = settings or loop_settings()
    at = _aware(at or _now())
    row = _lock(conn, warning_id)
    action = "accept" if accept else "reject"
    to_state = _step(row, action)
    if settings.four_eyes:
        rectifier = _rectifier(conn, warning_id)
        if rectifier == actor.name:
            raise Forbidden(
                f"warning {warning_id}: {actor.name} recorded its rectification "
                "and may not verify it too (four-eyes rule, GIS_LOOP_FOUR_EYES)"
            )
    if accept:
        return _apply(
            conn,
            row,
            actor,
            action,
            to_state,
            {"closed_at": at, "overdue": False},
            at,
            note=note,
        )
    if not (note or "").strip():
        raise InvalidParameter("sending a rectification back needs a reason")
    due = _deadline(row, deadline, at, settings)
    return _apply(
        conn,
        row,
        actor,
        action,
        to_state,
        {"deadline": due, "rectified_at": None, "overdue": False},
        at,
        note=note.strip(),
        deadline=due,
    )


def _rectifier(conn: Connection, warning_id: int) -> str | None:
    """Who recorded the warning's latest rectification."""
    e = supervision_warning_events
    return conn.execute(
        select(e.c.actor)
        .where(e.c.warning_id == warning_id, e.c.action == "rectify")
        .order_by(e.c.id.desc())
        .limit(1)
    ).scalar()


def escalate_overdue(
    conn: Connection,
    now: dt.datetime,
    actor: Actor,
    settings: LoopSettings | None = None,
) -> list[int]:
    """Escalate every overdue warning by one level (at most once per interval).

    Overdue: raised and not dispatched within ``dispatch_within_days``,
    dispatched and past its deadline, or rectified and not verified within
    ``verify_within_days``. Each escalation writes an event and an audit row.
    Also refreshes the ``overdue`` flag of every warning, a derived value,
    without an event or audit row (see the module doc). Returns the ids
    escalated.
    """
    settings = settings or loop_settings()
    now = _aware(now)
    t = warnings_table
    overdue = _overdue_clause(now, settings)
    since = now - dt.timedelta(days=settings.escalation_interval_days)
    rows = conn.execute(
        select(*_PUBLIC)
        .where(t.c.state.in_(_OPEN), overdue)
        .order_by(t.c.id)
        .with_for_update()
    ).all()
    due = [
        row
        for row in rows
        if row.escalation < MAX_ESCALATION
        and (row.escalated_at is None or row.escalated_at <= since)
    ]
    escalated = [row.id for row in due]
    if due:
        conn.execute(
            update(t)
            .where(t.c.id.in_(escalated))
            .values(
                escalation=t.c.escalation + 1,
                escalated_at=now,
                overdue=True,
                updated_at=func.now(),
            )
        )
        events, audits = [], []
        for row in due:
            level = row.escalation + 1
            if row.state == "raised":
                late = f"not dispatched since {row.raised_at.isoformat()}"
            elif row.state == "dispatched":
                late = f"deadline {row.deadline.isoformat()}"
            else:
                late = f"not verified since {row.rectified_at.isoformat()}"
            note = f"escalated to {ESCALATION_NAMES[level]} ({late})"
            events.append(
                _event_row(
                    row.id, actor, "escalate", row.state, row.state, now, note=note
                )
            )
            changes = {"escalation": level, "overdue": True}
            after = _snapshot({**row._mapping, **changes})
            audits.append((row.id, _snapshot(row), after))
        conn.execute(insert(supervision_warning_events), events)
        _audit_many(conn, actor, "warning.escalate", audits)
    # the flag the map colours by: true exactly for the overdue open warnings.
    # Derived (state, deadline and step times at ``now``), so no event or
    # audit row: the escalations above and the steps are what is recorded.
    conn.execute(
        update(t)
        .where(t.c.state != "closed", overdue, t.c.overdue.isnot(True))
        .values(overdue=True, updated_at=func.now())
    )
    conn.execute(
        update(t)
        .where(t.c.overdue.is_(True), or_(t.c.state == "closed", ~overdue))
        .values(overdue=False, updated_at=func.now())
    )
    if escalated:
        log.info(
            "warnings escalated", extra={"count": len(escalated), "actor": actor.name}
        )
    return escalated


# -- reading ------------------------------------------------------------------


def _plain_text(**filters: str | None) -> None:
    """Text filters PostgreSQL can compare: no NUL character (it cannot hold
    one, so no warning matches it; the caller is told instead of a 500)."""
    for name, value in filters.items():
        if value is not None and "\x00" in value:
            raise InvalidParameter(f"{name} contains a NUL character")


def get_warning(conn: Connection, warning_id: int) -> dict[str, Any]:
    """One warning with its position (lon, lat) and its events, oldest first."""
    t = warnings_table
    row = conn.execute(
        select(
            *_PUBLIC, func.ST_X(t.c.geom).label("lon"), func.ST_Y(t.c.geom).label("lat")
        ).where(t.c.id == warning_id)
    ).first()
    if row is None:
        raise NotFound(f"no warning {warning_id}")
    out = dict(row._mapping)
    e = supervision_warning_events
    out["events"] = [
        dict(r._mapping)
        for r in conn.execute(
            select(e).where(e.c.warning_id == warning_id).order_by(e.c.at, e.c.id)
        )
    ]
    return out


def list_warnings(
    conn: Connection,
    *,
    responsible: str | None = None,
    state: str | None = None,
    domain: str | None = None,
    district: str | None = None,
    level: str | None = None,
    overdue: bool | None = None,
    rule: str | None = None,
    listed: bool | None = None,
    limit: int = 100,
    offset: int = 0,
    now: dt.datetime | None = None,
    settings: LoopSettings | None = None,
) -> list[dict[str, Any]]:
    """Warnings matching every given filter, most severe and newest first.

    ``listed``: only the supervised-listed (挂牌督办) warnings, or only the
    others.

    ``overdue`` is decided at ``now`` (default: the current time), not read
    from the stored flag, so it is right between escalation runs.
    """
    settings = settings or loop_settings()
    if state is not None and state not in STATES:
        raise InvalidParameter(f"state must be one of {', '.join(STATES)}")
    if level is not None and level not in LEVELS:
        raise InvalidParameter(f"level must be one of {', '.join(LEVELS)}")
    if not 0 < limit <= 10_000 or offset < 0:
        raise InvalidParameter("limit must be 1..10000 and offset >= 0")
    _plain_text(responsible=responsible, domain=domain, district=district, rule=rule)
    t = warnings_table
    late = _overdue_clause(_aware(now or _now()), settings)
    query = select(
        *_PUBLIC,
        late.label("overdue_now"),
        func.ST_X(t.c.geom).label("lon"),
        func.ST_Y(t.c.geom).label("lat"),
    )
    for col, value in (
        (t.c.responsible, responsible),
        (t.c.state, state),
        (t.c.domain, domain),
        (t.c.district, district),
        (t.c.level, level),
        (t.c.rule, rule),
    ):
        if value is not None:
            query = query.where(col == value)
    if overdue is not None:
        query = query.where(late if overdue else ~late)
    if listed is not None:
        query = query.where(func.coalesce(t.c.listed, False).is_(listed))
    level_rank = func.array_position(
        text(f"ARRAY[{', '.join(repr(x) for x in LEVELS)}]::text[]"), t.c.level
    )
    query = query.order_by(level_rank.desc(), t.c.raised_at.desc(), t.c.id.desc())
    rows = conn.execute(query.limit(limit).offset(offset))
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["overdue"] = bool(item.pop("overdue_now"))
        out.append(item)
    return out


def rankings(
    conn: Connection,
    by: Literal["district", "responsible", "domain", "rule"],
    state: str | None = None,
    *,
    domain: str | None = None,
    district: str | None = None,
    now: dt.datetime | None = None,
    settings: LoopSettings | None = None,
) -> list[dict[str, Any]]:
    """Counts per district / party / domain / rule, most open first (charts).

    Each row: ``key``, ``total``, ``open``, ``overdue``, ``closed``, one count
    per level and one per state; ``state``, ``domain`` and ``district``
    restrict the warnings counted.
    """
    if by not in _RANKING_KEYS:
        raise InvalidParameter(f"rank by one of {', '.join(_RANKING_KEYS)}")
    _plain_text(domain=domain, district=district)
    settings = settings or loop_settings()
    t = warnings_table
    key = _RANKING_KEYS[by]
    late = and_(t.c.state != "closed", _overdue_clause(_aware(now or _now()), settings))
    cols = [
        key.label("key"),
        func.count().label("total"),
        func.count().filter(t.c.state != "closed").label("open"),
        func.count().filter(late).label("overdue"),
        func.count().filter(t.c.state == "closed").label("closed"),
        *(func.count().filter(t.c.level == lv).label(lv) for lv in LEVELS),
        *(
            func.count().filter(t.c.state == s).label(s)
            for s in STATES
            if s != "closed"
        ),
    ]
    query = select(*cols).group_by(key)
    if state is not None:
        if state not in STATES:
            raise InvalidParameter(f"state must be one of {', '.join(STATES)}")
        query = query.where(t.c.state == state)
    if domain is not None:
        query = query.where(t.c.domain == domain)
    if district is not None:
        query = query.where(t.c.district == district)
    query = query.order_by(text("open DESC, overdue DESC, total DESC"), key)
    return [dict(r._mapping) for r in conn.execute(query)]
