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
    comment="API keys for scripts and GIS clients (only their SHA-256 is kept)",
)

KEY_PREFIX = "gis_"
_HASHER = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
#: scope attribute each scoped role must have
ROLE_ATTRIBUTES = {"housing_officer": "district", "river_chief": "chief_id"}


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
    if role not in ROLES:
        raise InvalidParameter(f"role {role!r} is not one of {', '.join(ROLES)}")
    attribute = ROLE_ATTRIBUTES.get(role)
    values = {"district": district, "chief_id": chief_id}
    if attribute and not values[attribute]:
        raise InvalidParameter(f"a {role} needs --{attribute.replace('_', '-')}")
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


def set_disabled(conn: Connection, username: str, disabled: bool = True) -> Account:
    """Disable (or enable) an account; disabling also voids its tokens, so that
    enabling it again does not bring them back."""
    get_user(conn, username)
    values: dict[str, Any] = {"disabled": disabled}
    if disabled:
        values["token_version"] = users.c.token_version + 1
    row = conn.execute(
        update(users)
        .where(users.c.username == username)
        .values(**values)
        .returning(*users.c)
    ).one()
    return _account(row)


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


def create_key(conn: Connection, username: str, name: str = "default") -> str:
    """A new API key for ``username``; the only time the key is seen."""
    account = get_user(conn, username)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        api_keys.insert().values(
            user_id=account.id,
            name=name,
            prefix=key[: len(KEY_PREFIX) + 8],
            key_sha256=key_digest(key),
        )
    )
    return key


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
    """The enabled account owning an unrevoked ``key``."""
    if not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    row = conn.execute(
        select(users)
        .join(api_keys, api_keys.c.user_id == users.c.id)
        .where(
            api_keys.c.key_sha256 == key_digest(key),
            api_keys.c.revoked_at.is_(None),
            users.c.disabled.is_(False),
        )
    ).first()
    return None if row is None else _account(row)


def account_by_name(conn: Connection, username: str) -> Account | None:
    """The enabled account of this name (token checks)."""
    row = conn.execute(
        select(users).where(users.c.username == username, users.c.disabled.is_(False))
    ).first()
    return None if row is None else _account(row)
