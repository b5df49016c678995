"""Accounts and API keys.

Passwords are stored as argon2id hashes (``argon2-cffi``, its default
parameters) and re-hashed on sign-in when those defaults change. An API key is
``gis_`` + 32 random bytes (URL-safe); only its SHA-256 is stored -- a key is
shown once, when it is created -- with an 8-character prefix to tell keys
apart in listings. Hashing keys with SHA-256 rather than argon2 is deliberate:
they are long random secrets, not guessable passwords, and every request
checks one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    Table,
    Text,
    func,
    select,
    update,
)

from gis_server.auth.principal import Principal
from gis_server.errors import Conflict, InvalidParameter, NotFound
from layers import ROLES, metadata

log = logging.getLogger("gis_server.auth")

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("username", Text, nullable=False, unique=True),
    Column("password_hash", Text),
    Column("role", Text, nullable=False),
    #: housing officers: the district (name, as in the layers) they serve
    Column("district", Text),
    #: river chiefs: their chief id (the rivers layer's ``chief_id``)
    Column("chief_id", Text),
    Column("display_name", Text),
    Column("disabled", Boolean, nullable=False, server_default="false"),
    #: raised when the password changes or the account is disabled; tokens
    #: carry the value they were issued with, and an older one is refused
    Column("token_version", Integer, nullable=False, server_default="0"),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
    CheckConstraint(
        "role IN ('admin', 'analyst', 'housing_officer', 'river_chief')",
        name="role_choice",
    ),
    comment="Accounts (passwords hashed with argon2id)",
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("prefix", Text, nullable=False),
    Column("key_sha256", Text, nullable=False, unique=True),
    Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
    Column("revoked_at", DateTime(timezone=True)),
    #: when the key was last accepted, to the minute (see account_for_key)
    Column("last_used_at", DateTime(timezone=True)),
    comment="API keys for scripts and GIS clients (only their SHA-256 is kept)",
)

KEY_PREFIX = "gis_"
_HASHER = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
#: scope attribute each scoped role must have
ROLE_ATTRIBUTES = {"housing_officer": "district", "river_chief": "chief_id"}
#: random bytes of a generated password (16 URL-safe characters)
GENERATED_PASSWORD_BYTES = 12
#: a key's last use is written at most this often (one UPDATE per key and
#: interval, not one per request)
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    role: str
    district: str | None
    chief_id: str | None
    disabled: bool
    #: the tokens of this account that are still good carry this number
    token_version: int = 0

    def principal(self, via: str) -> Principal:
        return Principal(
            self.username, self.role, self.district, self.chief_id, via=via
        )


def _account(row: Any) -> Account:
    return Account(
        row.id,
        row.username,
        row.role,
        row.district,
        row.chief_id,
        row.disabled,
        row.token_version,
    )


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < 8:
        raise InvalidParameter("a password needs at least 8 characters")


def generate_password() -> str:
    """A random password, for an administrator to hand over once."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def check_role(role: str, district: str | None, chief_id: str | None) -> None:
    """A known role, with the scope attribute it needs (a housing officer's
    district, a river chief's chief id) and no other."""
    if role not in ROLES:
        raise InvalidParameter(f"role {role!r} is not one of {', '.join(ROLES)}")
    values = {"district": district, "chief_id": chief_id}
    attribute = ROLE_ATTRIBUTES.get(role)
    if attribute and not values[attribute]:
        raise InvalidParameter(
            f"a {role} needs a {attribute} (--{attribute.replace('_', '-')})"
        )
    stray = [k for k, v in values.items() if v and k != attribute]
    if stray:
        raise InvalidParameter(f"a {role} has no {' or '.join(stray)}")


def add_user(
    conn: Connection,
    username: str,
    role: str,
    password: str | None = None,
    *,
    district: str | None = None,
    chief_id: str | None = None,
    display_name: str | None = None,
) -> Account:
    """Create an account; a scoped role needs its attribute."""
    if not _USERNAME.match(username):
        raise InvalidParameter(
            f"user name {username!r}: 2-64 letters, digits or . _ @ -"
        )
    check_role(role, district, chief_id)
    if password is not None:
        check_password_rules(password)
    exists = conn.execute(
        select(users.c.id).where(users.c.username == username)
    ).first()
    if exists:
        raise Conflict(f"user {username!r} exists")
    row = conn.execute(
        users.insert()
        .values(
            username=username,
            role=role,
            password_hash=hash_password(password) if password else None,
            district=district if role == "housing_officer" else None,
            chief_id=chief_id if role == "river_chief" else None,
            display_name=display_name,
        )
        .returning(*users.c)
    ).one()
    return _account(row)


def get_user(conn: Connection, username: str) -> Account:
    row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user {username!r}")
    return _account(row)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    keys = (
        select(func.count())
        .where(api_keys.c.user_id == users.c.id, api_keys.c.revoked_at.is_(None))
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            users.c.username,
            users.c.role,
            users.c.district,
            users.c.chief_id,
            users.c.disabled,
            users.c.created_at,
            keys.label("keys"),
        ).order_by(users.c.username)
    )
    return [{str(k): v for k, v in r._mapping.items()} for r in rows]


def user_view(conn: Connection, username: str) -> dict[str, Any]:
    """One account as administrators see it (never its password hash)."""
    keys = (
        select(func.count())
        .where(api_keys.c.user_id == users.c.id, api_keys.c.revoked_at.is_(None))
        .scalar_subquery()
    )
    row = conn.execute(
        select(
            users.c.username,
            users.c.role,
            users.c.district,
            users.c.chief_id,
            users.c.display_name,
            users.c.disabled,
            (users.c.password_hash.is_not(None)).label("has_password"),
            users.c.created_at,
            keys.label("keys"),
        ).where(users.c.username == username)
    ).first()
    if row is None:
        raise NotFound(f"no user {username!r}")
    return dict(row._mapping)


#: the fields :func:`update_user` changes
PROFILE_FIELDS = ("role", "district", "chief_id", "display_name", "disabled")


def update_user(conn: Connection, username: str, **changes: Any) -> Account:
    """Change an account's role, scope attribute, display name or disabled
    flag (only the ``changes`` given).

    A new role keeps the attribute it needs when the account has it already
    and drops the one it does not; an account that would leave no enabled
    administrator is refused.
    """
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise InvalidParameter(f"cannot change {', '.join(sorted(unknown))}")
    row = conn.execute(
        select(users).where(users.c.username == username).with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no user {username!r}")
    role = changes.get("role", row.role)
    needed = ROLE_ATTRIBUTES.get(role)
    values: dict[str, str | None] = {}
    for attr in ("district", "chief_id"):
        if attr in changes:
            values[attr] = changes[attr]
        elif attr == needed:
            values[attr] = getattr(row, attr)  # kept when the account has it
        else:
            values[attr] = None  # the (new) role has no such attribute
    check_role(role, values["district"], values["chief_id"])
    disabled = bool(changes.get("disabled", row.disabled))
    if row.role == "admin" and not row.disabled and (role != "admin" or disabled):
        _keep_an_admin(conn, row.id)
    new = conn.execute(
        update(users)
        .where(users.c.id == row.id)
        .values(
            role=role,
            district=values["district"],
            chief_id=values["chief_id"],
            display_name=changes.get("display_name", row.display_name),
            disabled=disabled,
            # disabling voids the tokens issued before, so that enabling the
            # account again does not bring them back
            token_version=users.c.token_version + int(disabled and not row.disabled),
        )
        .returning(*users.c)
    ).one()
    return _account(new)


def _keep_an_admin(conn: Connection, user_id: int) -> None:
    others = conn.execute(
        select(func.count()).where(
            users.c.role == "admin",
            users.c.disabled.is_(False),
            users.c.id != user_id,
        )
    ).scalar_one()
    if not others:
        raise Conflict(
            "this is the last enabled administrator: enable or create another first"
        )


def set_disabled(conn: Connection, username: str, disabled: bool = True) -> Account:
    return update_user(conn, username, disabled=disabled)


def set_password(conn: Connection, username: str, password: str) -> None:
    """A new password; the tokens issued before it stop working."""
    check_password_rules(password)
    get_user(conn, username)
    conn.execute(
        update(users)
        .where(users.c.username == username)
        .values(
            password_hash=hash_password(password),
            token_version=users.c.token_version + 1,
        )
    )


def verify_password(conn: Connection, username: str, password: str) -> Account | None:
    """The account when the password is right and the account enabled."""
    row = conn.execute(select(users).where(users.c.username == username)).first()
    if row is None or row.password_hash is None:
        # spend the same time as a real check: no user enumeration by timing
        _burn(password)
        return None
    try:
        _HASHER.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if row.disabled:
        return None
    if _HASHER.check_needs_rehash(row.password_hash):
        conn.execute(
            update(users)
            .where(users.c.id == row.id)
            .values(password_hash=hash_password(password))
        )
    return _account(row)


_DUMMY_HASH = _HASHER.hash("not a password of anyone")


def _burn(password: str) -> None:
    try:
        _HASHER.verify(_DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        pass


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


#: what a listing shows of a key (never its digest)
_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def new_key(
    conn: Connection, username: str, name: str = "default"
) -> tuple[str, dict[str, Any]]:
    """A new API key for ``username`` and its listing row; the only time the
    key itself is seen."""
    if not name or len(name) > 100:
        raise InvalidParameter("a key's name: 1-100 characters")
    account = get_user(conn, username)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        api_keys.insert()
        .values(
            user_id=account.id,
            name=name,
            prefix=key[: len(KEY_PREFIX) + 8],
            key_sha256=key_digest(key),
        )
        .returning(*_KEY_COLUMNS)
    ).one()
    return key, dict(row._mapping)


def create_key(conn: Connection, username: str, name: str = "default") -> str:
    """A new API key for ``username``; the only time the key is seen."""
    return new_key(conn, username, name)[0]


def list_keys(conn: Connection, username: str) -> list[dict[str, Any]]:
    """Every key of ``username``, live and revoked, newest first."""
    account = get_user(conn, username)
    rows = conn.execute(
        select(*_KEY_COLUMNS)
        .where(api_keys.c.user_id == account.id)
        .order_by(api_keys.c.id.desc())
    )
    return [dict(r._mapping) for r in rows]


def revoke_key(conn: Connection, username: str, key_id: int) -> dict[str, Any]:
    """Revoke one key of ``username``; its listing row before the change."""
    account = get_user(conn, username)
    row = conn.execute(
        select(*_KEY_COLUMNS)
        .where(api_keys.c.id == key_id, api_keys.c.user_id == account.id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"user {username!r} has no key {key_id}")
    if row.revoked_at is not None:
        raise Conflict(f"key {key_id} of {username!r} is revoked already")
    conn.execute(
        update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=func.now())
    )
    return dict(row._mapping)


def revoke_keys(conn: Connection, username: str, prefix: str | None = None) -> int:
    """Revoke a user's keys (those starting with ``prefix``, or all)."""
    account = get_user(conn, username)
    query = update(api_keys).where(
        api_keys.c.user_id == account.id, api_keys.c.revoked_at.is_(None)
    )
    if prefix:
        query = query.where(api_keys.c.prefix.startswith(prefix))
    return conn.execute(query.values(revoked_at=func.now())).rowcount


def account_for_key(conn: Connection, key: str) -> Account | None:
    """The enabled account owning an unrevoked ``key``.

    Notes the key's use (``last_used_at``, at most once per
    :data:`LAST_USED_RESOLUTION`); the caller's transaction commits it.
    """
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    row = conn.execute(
        select(users, api_keys.c.id.label("key_id"), api_keys.c.last_used_at)
        .join(api_keys, api_keys.c.user_id == users.c.id)
        .where(
            api_keys.c.key_sha256 == key_digest(key),
            api_keys.c.revoked_at.is_(None),
            users.c.disabled.is_(False),
        )
    ).first()
    if row is None:
        return None
    conn.execute(
        update(api_keys)
        .where(
            api_keys.c.id == row.key_id,
            api_keys.c.last_used_at.is_(None)
            | (api_keys.c.last_used_at < func.now() - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=func.now())
    )
    return _account(row)


def account_by_name(conn: Connection, username: str) -> Account | None:
    """The enabled account of this name (token checks)."""
    row = conn.execute(
        select(users).where(users.c.username == username, users.c.disabled.is_(False))
    ).first()
    return None if row is None else _account(row)
