"""Rule settings an administrator changes at run time, kept in the database.

Every rule threshold is a field of a pydantic-settings class (``ConcreteRules``,
``LoopSettings``, ``WaterSettings``, ``RiskSettings``, ...). Those classes
derive from :class:`OverridableSettings`, which adds one settings source
between the constructor's arguments and the environment:

    arguments > override (table ``setting_overrides``) > environment > .env >
    default

A *group* is one such class, named after its env prefix without ``GIS_`` and
the trailing ``_``, lower-case (``GIS_RULES_CONCRETE_`` -> ``rules_concrete``,
``GIS_LOOP_`` -> ``loop``). :func:`set_override` validates a value with the
class itself (its field constraints and model validators, together with the
group's other overrides and the environment) before storing it, so a bad value
is refused when it is written with the field's own error, and records the
change in the audit log.

The overrides are held in memory (a snapshot) so that instantiating
``ConcreteRules()`` anywhere costs no query: :func:`load` reads them (the
server at start, every CLI command that reads rules before it starts), and a
:class:`Watcher` thread LISTENs on ``gis_settings_changed`` -- sent by a
statement trigger on the table (migration 0018), whoever changed it -- and
reloads within milliseconds of a commit, in every server worker. Getters that
cache a settings object (``loop_settings()``) use :func:`cached`, which
recomputes when the snapshot changes. One process serves one database: the
snapshot is the process's.

What is not overridable stays in the environment only: the classes of the
database, the server, sign-in, limits, tiles and the map (they are plain
``BaseSettings``), and in an overridable class every ``Path`` field (where
files are written) and the fields a class names in ``env_only``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar, TypeVar, get_args

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import sqlalchemy as sa
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
)
from sqlalchemy import Column, Connection, DateTime, Engine, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB, insert

from gis_server import audit
from gis_server.errors import InvalidParameter, NotFound
from gis_server.listen import Listener
from layers import metadata

log = logging.getLogger("gis_server.overrides")

#: sent by the table's statement trigger (migration 0018) on every change
CHANNEL = "gis_settings_changed"

setting_overrides = Table(
    "setting_overrides",
    metadata,
    #: the group: env prefix without GIS_ and the trailing _, lower-case
    Column("group_name", Text, primary_key=True),
    Column("field", Text, primary_key=True),
    #: the value as the settings class holds it, in JSON
    Column("value", JSONB, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column(
        "updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()
    ),
    comment="Rule settings changed by administrators (over environment and defaults)",
)

_MARK = re.compile(r"\[([SRD])\]")
T = TypeVar("T")


# -- the snapshot -----------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """One stored override."""

    group: str
    field: str
    value: Any
    updated_by: str
    updated_at: dt.datetime | None


class _Snapshot:
    """The overrides this process applies; replaced whole, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[tuple[str, str], Override] = {}
        self.by_group: dict[str, dict[str, Any]] = {}
        #: bumped on every replacement: what :func:`cached` getters follow
        self.version = 0
        self.loaded = False

    def replace(self, rows: list[Override]) -> None:
        by_group: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_group.setdefault(row.group, {})[row.field] = row.value
        with self.lock:
            changed = self.by_group != by_group or not self.loaded
            self.rows = {(r.group, r.field): r for r in rows}
            self.by_group = by_group
            self.loaded = True
            self.version += 1
            _REJECTED.clear()
        if changed:
            log.info(
                "setting overrides loaded",
                extra={
                    "overrides": len(rows),
                    "groups": sorted(by_group),
                    "version": self.version,
                },
            )


_SNAPSHOT = _Snapshot()
#: while validating a candidate value: the overrides of its group to apply
_CANDIDATE: contextvars.ContextVar[tuple[str, dict[str, Any]] | None] = (
    contextvars.ContextVar("gis_override_candidate", default=None)
)
#: groups whose stored overrides failed validation (logged once per version)
_REJECTED: dict[str, str] = {}


def version() -> int:
    """A number that changes whenever the overrides in force change."""
    return _SNAPSHOT.version


def current(group: str) -> dict[str, Any]:
    """The overrides of ``group`` in force in this process."""
    return dict(_SNAPSHOT.by_group.get(group, {}))


def clear() -> None:
    """Forget every override (the process no longer serves its database)."""
    _SNAPSHOT.replace([])


_READ_SQL = (
    "SELECT group_name, field, value, updated_by, updated_at FROM setting_overrides"
)


def _rows(records) -> list[Override]:
    return [Override(g, f, v, by, at) for g, f, v, by, at in records]


def load(engine: Engine) -> int:
    """Read the overrides of ``engine``'s database into this process.

    A database not yet migrated to 0018 has none (warned). Returns how many
    overrides are in force.
    """
    from gis_server.auth import dbsecurity

    if dbsecurity.pinned() is not None and _SNAPSHOT.loaded:
        # the command line's --as: the overrides were read before the account
        # was pinned; its role may not read them (the table is private)
        return sum(len(v) for v in _SNAPSHOT.by_group.values())
    try:
        with dbsecurity.as_server(), engine.connect() as conn:
            rows = _rows(conn.exec_driver_sql(_READ_SQL).all())
    except sa.exc.ProgrammingError as exc:
        if not isinstance(exc.orig, psycopg2.errors.UndefinedTable):
            raise
        log.warning(
            "no setting_overrides table (database not upgraded): env and defaults "
            "only; run gis-server db upgrade"
        )
        rows = []
    _SNAPSHOT.replace(rows)
    return len(rows)


def cached(fn: Callable[[], T]) -> Callable[[], T]:
    """Like ``functools.lru_cache`` on a settings getter, but recomputed when
    the overrides change; ``getter.cache_clear()`` forgets the value too."""
    memo: list[tuple[int, T]] = []

    @functools.wraps(fn)
    def getter() -> T:
        seen = _SNAPSHOT.version
        if memo and memo[0][0] == seen:
            return memo[0][1]
        value = fn()
        memo[:] = [(seen, value)]
        return value

    getter.cache_clear = memo.clear  # type: ignore[attr-defined]
    return getter


# -- the settings base class ------------------------------------------------------

#: every overridable group, by name (filled as the classes are defined)
GROUPS: dict[str, type[OverridableSettings]] = {}


def group_name(cls: type[BaseSettings]) -> str:
    """``GIS_RULES_CONCRETE_`` -> ``rules_concrete``."""
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    return prefix.removeprefix("GIS_").rstrip("_").lower()


def _field_key(name: str, field: FieldInfo) -> str:
    """The key pydantic validates ``name`` under (its alias, if it has one)."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return field.alias or name


def _is_path(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return True
    return any(_is_path(a) for a in get_args(annotation))


class OverrideSource(PydanticBaseSettingsSource):
    """Values stored in ``setting_overrides`` for the class's group."""

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        values = _values_for(self.settings_cls)
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        values = _values_for(self.settings_cls)
        allowed = overridable_fields(self.settings_cls)
        return {
            _field_key(name, self.settings_cls.model_fields[name]): value
            for name, value in values.items()
            if name in allowed
        }


def _values_for(cls: type[BaseSettings]) -> dict[str, Any]:
    group = group_name(cls)
    candidate = _CANDIDATE.get()
    if candidate is not None and candidate[0] == group:
        return candidate[1]
    if group in _REJECTED:
        return {}
    return _SNAPSHOT.by_group.get(group, {})


class OverridableSettings(BaseSettings):
    """A settings class whose fields an administrator may override at run time
    (see the module doc). A subclass with its own ``env_prefix`` is a group."""

    #: fields that stay env-only (besides every ``Path`` field)
    env_only: ClassVar[frozenset[str]] = frozenset()
    #: set on a class holding part of a group (``WallScheduleRules``): the
    #: subclass with the same prefix (``BuildingRules``) is then the group
    partial_group: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = group_name(cls)
        parent = next(
            (b for b in cls.__mro__[1:] if issubclass(b, OverridableSettings)), None
        )
        if not name:
            return
        if parent is not None and group_name(parent) == name:
            if not vars(parent).get("partial_group", False):
                return  # no prefix of its own (a variant of its parent): not a group
            # the parent holds part of the group's fields: the subclass is the group
            GROUPS[name] = cls
            return
        known = GROUPS.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(
                f"settings group {name!r}: {cls.__qualname__} and "
                f"{known.__qualname__} share the env prefix"
            )
        GROUPS[name] = cls

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            OverrideSource(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            group = group_name(type(self))
            if _CANDIDATE.get() is not None or not _SNAPSHOT.by_group.get(group):
                raise
            # Do the stored overrides no longer validate (code or environment
            # changed since they were written)? Then run on env and defaults,
            # and say so once; if the arguments are at fault, raise as usual.
            _REJECTED[group] = _error_text(exc)
            try:
                super().__init__(**values)
            except ValidationError:
                del _REJECTED[group]
                raise exc from None
            log.error(
                "stored setting overrides refused; using env and defaults",
                extra={"group": group, "error": _REJECTED[group]},
            )


def overridable_fields(cls: type[BaseSettings]) -> set[str]:
    """The fields of ``cls`` an administrator may override."""
    env_only = getattr(cls, "env_only", frozenset())
    return {
        name
        for name, field in cls.model_fields.items()
        if name not in env_only and not _is_path(field.annotation)
    }


def group(name: str) -> type[OverridableSettings]:
    """The class of group ``name`` (its module must have been imported)."""
    try:
        return GROUPS[name]
    except KeyError:
        known = ", ".join(sorted(GROUPS))
        raise NotFound(f"no settings group {name!r} (groups: {known})") from None


def _error_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


# -- describing ---------------------------------------------------------------------


def _env_keys(cls: type[BaseSettings]) -> set[str]:
    """Field keys that the environment or ``.env`` sets for ``cls``."""
    keys: set[str] = set()
    for source_cls in (EnvSettingsSource, DotEnvSettingsSource):
        try:
            keys |= set(source_cls(cls)())
        except SettingsError as exc:  # a malformed variable: the class says so
            log.debug("env source unreadable", extra={"error": str(exc)})
    return keys


def describe(name: str) -> dict[str, Any]:
    """Group ``name``: every field with its value in force, where it comes from
    (``override``, ``env`` or ``default``), its default and description."""
    cls = group(name)
    in_force = cls().model_dump(mode="json")
    defaults = cls.model_construct().model_dump(mode="json")
    env = _env_keys(cls)
    stored = _SNAPSHOT.rows
    allowed = overridable_fields(cls)
    applied = {} if name in _REJECTED else _SNAPSHOT.by_group.get(name, {})
    fields = []
    for field_name, field in cls.model_fields.items():
        row = stored.get((name, field_name))
        if field_name in applied and field_name in allowed:
            source = "override"
        elif _field_key(field_name, field) in env or field_name in env:
            source = "env"
        else:
            source = "default"
        description = field.description or ""
        mark = _MARK.search(description)
        fields.append(
            {
                "field": field_name,
                "env": (cls.model_config.get("env_prefix") or "") + field_name.upper(),
                "value": in_force.get(field_name),
                "source": source,
                "default": defaults.get(field_name),
                "mark": mark.group(1) if mark else None,
                "description": description,
                "overridable": field_name in allowed,
                "updated_by": row.updated_by if row else None,
                "updated_at": row.updated_at if row else None,
            }
        )
    doc = (cls.__doc__ or "").strip().splitlines()
    return {
        "group": name,
        "class": cls.__name__,
        "env_prefix": cls.model_config.get("env_prefix"),
        "title": doc[0] if doc else "",
        "problem": _REJECTED.get(name),
        "fields": fields,
    }


def describe_field(name: str, field: str) -> dict[str, Any]:
    described = describe(name)
    for row in described["fields"]:
        if row["field"] == field:
            return {"group": name, **row}
    raise NotFound(f"settings group {name!r} has no field {field!r}")


# -- writing ------------------------------------------------------------------------


def _check_field(cls: type[OverridableSettings], name: str, field: str) -> None:
    if field not in cls.model_fields:
        raise NotFound(f"settings group {name!r} has no field {field!r}")
    if field not in overridable_fields(cls):
        env = (cls.model_config.get("env_prefix") or "") + field.upper()
        raise InvalidParameter(
            f"{name}.{field} is set in the environment only ({env}): paths and "
            "server-level settings are not changed at run time"
        )


def validate(name: str, field: str, value: Any, others: dict[str, Any]) -> Any:
    """``value`` as group ``name`` would hold it beside ``others`` (the group's
    other overrides), in JSON; InvalidParameter with the class's error."""
    cls = group(name)
    _check_field(cls, name, field)
    token = _CANDIDATE.set((name, {**others, field: value}))
    try:
        instance = cls()
    except ValidationError as exc:
        raise InvalidParameter(f"{name}.{field}: {_error_text(exc)}") from exc
    finally:
        _CANDIDATE.reset(token)
    return instance.model_dump(mode="json", include={field})[field]


def _stored(conn: Connection, name: str) -> dict[str, Any]:
    """The group's stored overrides, rows locked until the transaction ends
    (two administrators changing one group are serialised)."""
    rows = conn.execute(
        sa.select(setting_overrides.c.field, setting_overrides.c.value)
        .where(setting_overrides.c.group_name == name)
        .with_for_update()
    )
    return {row.field: row.value for row in rows}


def set_override(
    conn: Connection, actor: audit.Actor, name: str, field: str, value: Any
) -> dict[str, Any]:
    """Validate and store an override, audited; in the caller's transaction.

    Returns the stored value and what it replaced. The process's snapshot is
    refreshed by :func:`load` after the commit (and by the watchers of every
    server on the database).
    """
    # TODO(one field per write): fields a model validator ties together (the
    # chloride table and its environment) change one at a time, in an order
    # that keeps every step valid; a batch write would lift that.
    group(name)
    stored = _stored(conn, name)
    if field in stored:
        before = {"value": stored[field], "source": "override"}
    else:
        described = describe_field(name, field)
        before = {"value": described["value"], "source": described["source"]}
    others = {k: v for k, v in stored.items() if k != field}
    clean = validate(name, field, value, others)
    conn.execute(
        insert(setting_overrides)
        .values(group_name=name, field=field, value=clean, updated_by=actor.name)
        .on_conflict_do_update(
            index_elements=["group_name", "field"],
            set_={"value": clean, "updated_by": actor.name, "updated_at": func.now()},
        )
    )
    audit.record(
        conn,
        actor,
        "setting.set",
        "setting",
        f"{name}.{field}",
        before=before,
        after={"value": clean, "source": "override"},
    )
    return {"group": name, "field": field, "value": clean, "before": before["value"]}


def unset_override(
    conn: Connection, actor: audit.Actor, name: str, field: str
) -> dict[str, Any]:
    """Remove an override (back to env or default), audited."""
    cls = group(name)
    if field not in cls.model_fields:
        raise NotFound(f"settings group {name!r} has no field {field!r}")
    stored = _stored(conn, name)
    if field not in stored:
        raise NotFound(f"{name}.{field} has no override")
    others = {k: v for k, v in stored.items() if k != field}
    token = _CANDIDATE.set((name, others))
    try:
        after = cls().model_dump(mode="json", include={field})[field]
    except ValidationError as exc:
        # the remaining overrides need this one (e.g. a key of a table they name)
        raise InvalidParameter(
            f"{name}.{field} cannot be removed alone: {_error_text(exc)}"
        ) from exc
    finally:
        _CANDIDATE.reset(token)
    conn.execute(
        sa.delete(setting_overrides).where(
            setting_overrides.c.group_name == name, setting_overrides.c.field == field
        )
    )
    audit.record(
        conn,
        actor,
        "setting.unset",
        "setting",
        f"{name}.{field}",
        before={"value": stored[field], "source": "override"},
        after={"value": after},
    )
    return {"group": name, "field": field, "value": after, "before": stored[field]}


def parse_value(text: str) -> Any:
    """A value typed on the command line: JSON when it parses, else the text
    (``0.1`` -> 0.1, ``true`` -> True, ``Asia/Shanghai`` -> the string)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- keeping the snapshot current ---------------------------------------------------


class Watcher(Listener):
    """LISTEN on :data:`CHANNEL` and reload the snapshot on every change.

    Reads the overrides right after LISTEN (no change can fall between the
    two) and again after every reconnection, so a change made while the
    connection was lost is picked up when it is back.
    """

    channel = CHANNEL
    thread_name = "gis-settings-listener"
    application_name = "gis-server-settings"
    lost_message = "overrides are reloaded when it is back"
    log = log

    def __init__(self, dsn: str, *, reconnect_s: float = 1.0) -> None:
        super().__init__(dsn, reconnect_s=reconnect_s)
        #: reloads made by this watcher (tests wait on it)
        self.reloads = 0

    def connected(self, cur) -> None:
        self._reload(cur)

    def notified(self, cur, payloads: set[str]) -> None:
        self._reload(cur)

    def _reload(self, cur) -> None:
        try:
            cur.execute(_READ_SQL)
            rows = _rows(cur.fetchall())
        except psycopg2.errors.UndefinedTable:
            rows = []
        _SNAPSHOT.replace(rows)
        self.reloads += 1
