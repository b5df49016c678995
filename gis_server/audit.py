"""The append-only audit log: who changed what, when, before and after.

Every write made through the API or the CLI on behalf of a person -- a
feature created, edited or deleted, a warning moved along its loop, a patrol
recorded, a user or key managed -- is one row of ``audit_log``, written in the
same transaction as the change (so there is no change without its record and
no record of a change that was rolled back); a file ingested from the command
line is one row with its counts (the rows are in the ingest's report). The
table refuses ``UPDATE``, ``DELETE`` and ``TRUNCATE`` with a trigger
(migration 0006): not even the server can rewrite history. Administrators
read it with ``GET /audit`` or ``gis-server audit``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Identity,
    Index,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from layers import metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    #: the account name, ``cli:<os user>`` for the command line, ``system`` for
    #: scheduled jobs
    Column("actor", Text, nullable=False),
    Column("actor_role", Text),
    #: ``feature.create``, ``feature.update``, ``warning.dispatch``, ...
    Column("action", Text, nullable=False),
    #: what was acted on: ``feature``, ``warning``, ``patrol``, ``user``, ``key``
    Column("target_kind", Text, nullable=False),
    #: ``buildings/123``, a warning id, a user name
    Column("target", Text, nullable=False),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("request_id", Text),
    Column("client", Text),
    comment="Append-only record of every change made on someone's behalf",
)
Index("ix_audit_log_at", audit_log.c.at)
Index("ix_audit_log_target", audit_log.c.target_kind, audit_log.c.target)
Index("ix_audit_log_actor", audit_log.c.actor)


@dataclass(frozen=True)
class Actor:
    """Who a change is recorded against."""

    name: str
    role: str | None = None
    request_id: str | None = None
    client: str | None = None


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    target_kind: str,
    target: str,
    *,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one audit row in the caller's transaction; returns its id."""
    return conn.execute(
        insert(audit_log)
        .values(
            actor=actor.name,
            actor_role=actor.role,
            action=action,
            target_kind=target_kind,
            target=target,
            before=before,
            after=after,
            request_id=actor.request_id,
            client=actor.client,
        )
        .returning(audit_log.c.id)
    ).scalar_one()


def cli_actor() -> Actor:
    """The person at the command line: ``cli:<os user>``, or the ``--as``
    account when one was given."""
    import getpass

    from gis_server.auth.principal import CURRENT

    principal = CURRENT.get()
    if principal is not None:
        return Actor(principal.username, principal.role, client="cli")
    return Actor(f"cli:{getpass.getuser()}", "admin", client="cli")


def record_ingest(engine: Engine, target_kind: str, target: str, report: Any) -> None:
    """One row for a whole file loaded from the command line (a layer, a feed,
    readings): who, which file, and the counts; the rows themselves are in the
    ingest's report file."""
    counts = {
        key: getattr(report, key)
        for key in (
            "source",
            "origin",
            "read",
            "inserted",
            "updated",
            "unchanged",
            "deleted",
            "duplicates",
            "rejected",
        )
        if hasattr(report, key)
    }
    with engine.begin() as conn:
        record(conn, cli_actor(), "ingest", target_kind, target, after=counts)


def record_many(
    conn: Connection,
    actor: Actor,
    action: str,
    target_kind: str,
    changes: list[tuple[str, Any, Any]],
) -> None:
    """Many :func:`record` rows in one statement: ``changes`` holds (target,
    before, after) of one action (a rule evaluation raising many warnings)."""
    if not changes:
        return
    conn.execute(
        insert(audit_log),
        [
            {
                "actor": actor.name,
                "actor_role": actor.role,
                "action": action,
                "target_kind": target_kind,
                "target": target,
                "before": before,
                "after": after,
                "request_id": actor.request_id,
                "client": actor.client,
            }
            for target, before, after in changes
        ],
    )


def entries(
    conn: Connection,
    *,
    target_kind: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Audit rows, newest first, filtered by any of the arguments."""
    query = (
        select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    )
    if target_kind:
        query = query.where(audit_log.c.target_kind == target_kind)
    if target:
        query = query.where(audit_log.c.target == target)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if since:
        query = query.where(audit_log.c.at >= since)
    return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(query)]
