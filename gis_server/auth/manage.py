"""Account administration, each change audited: what the CLI (``gis-server
users ...``) and the API (``/admin/users``) both call.

Every function runs in the caller's transaction and writes its audit row
there (``gis_server.audit.record``) with the account's profile before and
after. Passwords and keys are never in an audit row or a log line: a password
change is recorded as ``{"password": "set"}`` or ``"generated"``, a key by
its id, name and prefix. A generated password or a new key is returned once,
to be handed over; only its hash is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from gis_server.audit import Actor, record
from gis_server.auth import accounts

log = logging.getLogger("gis_server.auth")

#: what an audit row shows of an account
_PROFILE = ("role", "district", "chief_id", "display_name", "disabled")


def _profile(view: dict[str, Any]) -> dict[str, Any]:
    return {k: view.get(k) for k in _PROFILE}


@dataclass
class NewKey:
    """An API key just created: the key itself is shown this once."""

    key: str
    row: dict[str, Any]


@dataclass
class Created:
    """An account just created, with the secrets to hand over (once)."""

    user: dict[str, Any]
    password: str | None = None  # only when generated
    key: NewKey | None = None


def create_user(
    conn: Connection,
    actor: Actor,
    username: str,
    role: str,
    *,
    district: str | None = None,
    chief_id: str | None = None,
    display_name: str | None = None,
    password: str | None = None,
    generate_password: bool = False,
    key_name: str | None = None,
) -> Created:
    """Create an account: with ``password``, a generated one (returned), or
    none (a key-only account for scripts); with a first API key when
    ``key_name`` is given."""
    generated = accounts.generate_password() if generate_password else None
    accounts.add_user(
        conn,
        username,
        role,
        password if password is not None else generated,
        district=district,
        chief_id=chief_id,
        display_name=display_name,
    )
    view = accounts.user_view(conn, username)
    after = _profile(view)
    if password is not None or generated:
        after["password"] = "generated" if generated else "set"
    created = Created(view, generated)
    record(conn, actor, "user.add", "user", username, after=after)
    if key_name is not None:
        created.key = create_key(conn, actor, username, key_name)
        created.user = accounts.user_view(conn, username)
    log.info(
        "user added",
        extra={"user": username, "role": role, "actor": actor.name},
    )
    return created


def update_user(
    conn: Connection, actor: Actor, username: str, **changes: Any
) -> dict[str, Any]:
    """Change an account's profile (:data:`accounts.PROFILE_FIELDS`); one
    audit row (``user.disable``, ``user.enable`` or ``user.update``) with the
    fields that changed, before and after. Returns the account after."""
    before = accounts.user_view(conn, username)
    accounts.update_user(conn, username, **changes)
    after = accounts.user_view(conn, username)
    old, new = _profile(before), _profile(after)
    changed = [k for k in _PROFILE if old[k] != new[k]]
    if not changed:
        return after
    if changed == ["disabled"]:
        action = "user.disable" if new["disabled"] else "user.enable"
    else:
        action = "user.update"
    record(
        conn,
        actor,
        action,
        "user",
        username,
        before={k: old[k] for k in changed},
        after={k: new[k] for k in changed},
    )
    log.info(
        "user changed",
        extra={"user": username, "fields": changed, "actor": actor.name},
    )
    return after


def set_password(
    conn: Connection, actor: Actor, username: str, password: str | None = None
) -> str | None:
    """Set ``password``, or a generated one (returned); audited without it."""
    generated = None if password is not None else accounts.generate_password()
    accounts.set_password(
        conn, username, password if password is not None else generated
    )
    record(
        conn,
        actor,
        "user.password",
        "user",
        username,
        after={"password": "generated" if generated else "set"},
    )
    log.info("password changed", extra={"user": username, "actor": actor.name})
    return generated


def create_key(conn: Connection, actor: Actor, username: str, name: str) -> NewKey:
    """A new API key of ``username`` (the key returned this once)."""
    key, row = accounts.new_key(conn, username, name)
    record(
        conn,
        actor,
        "key.create",
        "user",
        username,
        after={"key_id": row["id"], "name": row["name"], "prefix": row["prefix"]},
    )
    log.info(
        "api key created",
        extra={"user": username, "key_id": row["id"], "actor": actor.name},
    )
    return NewKey(key, row)


def revoke_key(
    conn: Connection, actor: Actor, username: str, key_id: int
) -> dict[str, Any]:
    """Revoke one key of ``username``; returns its row before."""
    row = accounts.revoke_key(conn, username, key_id)
    record(
        conn,
        actor,
        "key.revoke",
        "user",
        username,
        before={"key_id": key_id, "prefix": row["prefix"], "revoked": False},
        after={"key_id": key_id, "prefix": row["prefix"], "revoked": True},
    )
    log.info(
        "api key revoked",
        extra={"user": username, "key_id": key_id, "actor": actor.name},
    )
    return row


def revoke_keys(
    conn: Connection, actor: Actor, username: str, prefix: str | None = None
) -> int:
    """Revoke the live keys of ``username`` starting with ``prefix`` (or all)."""
    live = [
        k
        for k in accounts.list_keys(conn, username)
        if k["revoked_at"] is None and (not prefix or k["prefix"].startswith(prefix))
    ]
    for key in live:
        revoke_key(conn, actor, username, key["id"])
    return len(live)
