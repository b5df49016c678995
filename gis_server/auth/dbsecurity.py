"""The access policy, enforced again by the database.

Three database roles stand for the non-administrator callers:

- ``gis_reader`` (analysts, anonymous readers): reads, never writes;
- ``gis_housing`` (housing officers): reads what their role reads, rows of
  scoped layers only where the scope column equals ``gis.district``, and
  edits those rows;
- ``gis_chief`` (river chiefs): the same with ``gis.chief_id``.

Every layer table has row-level security enabled, with one policy per role
derived from the layer's :class:`~layers.base.Access` declaration -- so a new
layer is secured by its declaration alone. :func:`sync` (re)applies roles,
grants and policies idempotently; ``gis_server.db.upgrade`` runs it after the
migrations. :func:`install` makes every transaction of an engine begin with
``SET LOCAL ROLE`` and the scope settings of the request's caller
(:data:`gis_server.auth.principal.CURRENT`): whatever a route does, the rows
outside the caller's scope are not there. Administrators, the CLI and
background jobs run as the owning role, which row-level security does not
restrict (the tables are not ``FORCE``d).

Account tables (``users``, ``api_keys``), the audit log and the setting
overrides are not granted to any scoped role.

Speed: PostgreSQL lets an operator of the caller's query use an index under
a row-level policy only if the operator is LEAKPROOF, and PostGIS does not
mark its bounding-box operator ``&&`` so. A housing officer's tile would then
read every building of the district (measured: 8x slower tiles, 19x slower
items on 1M buildings, ``bench/bench_auth.py``). ``&&`` on two geometries
compares bounding boxes and raises only for mixed SRIDs, which the typed
geometry columns rule out, so we mark its function LEAKPROOF
(:data:`LEAKPROOF_FUNCTIONS`); that needs a superuser, so it is done where one
is at hand (the embedded cluster, test databases, a superuser
``DATABASE_URL``), and :func:`sync` warns, with the statement to run, where
it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, event, text

from gis_server.auth.principal import CURRENT, Principal
from layers import LayerSpec, all_layers

log = logging.getLogger("gis_server.auth.db")


@dataclass(frozen=True)
class DbRole:
    name: str
    app_role: str  # the account role it stands for
    setting: str | None  # the GUC holding the caller's scope attribute


DB_ROLES = (
    DbRole("gis_reader", "analyst", None),
    DbRole("gis_housing", "housing_officer", "gis.district"),
    DbRole("gis_chief", "river_chief", "gis.chief_id"),
)
_BY_APP_ROLE = {r.app_role: r for r in DB_ROLES}
#: tables no scoped role may touch
PRIVATE_TABLES = (
    "users",
    "api_keys",
    "audit_log",
    "setting_overrides",
    "alembic_version",
)
#: append-only side tables a scoped writer's changes insert into
WRITE_SIDE_TABLES = (
    "audit_log",
    "supervision_warning_events",
    "supervision_evidence",
    "water_patrol_records",
)


class SecuritySetupError(RuntimeError):
    pass


#: Functions marked LEAKPROOF so spatial indexes serve scoped callers (above).
LEAKPROOF_FUNCTIONS = ("geometry_overlaps(geometry, geometry)",)


def mark_leakproof(cursor) -> None:
    """As a superuser, in the database holding PostGIS: mark the functions."""
    for fn in LEAKPROOF_FUNCTIONS:
        cursor.execute(f"ALTER FUNCTION {fn} LEAKPROOF")


def _check_leakproof(conn: Connection) -> None:
    for fn in LEAKPROOF_FUNCTIONS:
        leakproof = conn.execute(
            text(
                "SELECT proleakproof FROM pg_proc WHERE oid = CAST(:f AS regprocedure)"
            ),
            {"f": fn},
        ).scalar()
        if leakproof:
            continue
        try:
            with conn.begin_nested():
                conn.execute(text(f"ALTER FUNCTION {fn} LEAKPROOF"))
        except Exception:
            log.warning(
                "spatial index unusable under row-level security; as a superuser "
                "run: ALTER FUNCTION %s LEAKPROOF",
                fn,
                extra={"function": fn},
            )


def _policy_sql(spec: LayerSpec, role: DbRole) -> list[str]:
    """Grants and policies of one layer table for one database role."""
    table = f'"{spec.table}"'
    access = spec.access
    prefix = f"gis_{role.app_role}"
    out = [
        f"REVOKE ALL ON {table} FROM {role.name}",
        f"DROP POLICY IF EXISTS {prefix}_read ON {table}",
        f"DROP POLICY IF EXISTS {prefix}_write ON {table}",
    ]
    scoped = dict(access.scoped)
    if role.app_role in access.read or role.app_role in access.write:
        out += [
            f"GRANT SELECT ON {table} TO {role.name}",
            f"CREATE POLICY {prefix}_read ON {table} FOR SELECT TO {role.name} "
            "USING (true)",
        ]
    elif role.app_role in scoped:
        condition = (
            f"\"{scoped[role.app_role]}\" = current_setting('{role.setting}', true)"
        )
        out += [
            f"GRANT SELECT ON {table} TO {role.name}",
            f"CREATE POLICY {prefix}_read ON {table} FOR SELECT TO {role.name} "
            f"USING ({condition})",
        ]
        if role.app_role in access.scoped_write:
            out += [
                f"GRANT INSERT, UPDATE, DELETE ON {table} TO {role.name}",
                f"CREATE POLICY {prefix}_write ON {table} FOR ALL TO {role.name} "
                f"USING ({condition}) WITH CHECK ({condition})",
            ]
    return out


def security_sql(existing_tables: set[str]) -> list[str]:
    """Every statement :func:`sync` runs, for the tables that exist."""
    out: list[str] = []
    for role in DB_ROLES:
        out += [
            f"GRANT USAGE ON SCHEMA public TO {role.name}",
            # reference and side tables: readable; private ones revoked below
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role.name}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role.name}",
        ]
        out += [
            f'REVOKE ALL ON "{t}" FROM {role.name}'
            for t in PRIVATE_TABLES
            if t in existing_tables
        ]
        if role.setting:  # scoped roles write through the API
            out += [
                f'GRANT INSERT ON "{t}" TO {role.name}'
                for t in WRITE_SIDE_TABLES
                if t in existing_tables
            ]
            if "audit_log" in existing_tables:  # INSERT ... RETURNING id
                out.append(f"GRANT SELECT (id) ON audit_log TO {role.name}")
    for spec in all_layers():
        if spec.table not in existing_tables:
            continue
        out.append(f'ALTER TABLE "{spec.table}" ENABLE ROW LEVEL SECURITY')
        for role in DB_ROLES:
            out += _policy_sql(spec, role)
    return out


def sync(conn: Connection) -> int:
    """Create the roles if missing, then apply grants and policies; returns
    the number of statements run. Needs CREATEROLE for the first run."""
    me = conn.execute(text("SELECT current_user")).scalar_one()
    for role in DB_ROLES:
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role.name}
        ).first()
        if not exists:
            try:
                with conn.begin_nested():
                    conn.execute(text(f"CREATE ROLE {role.name} NOLOGIN"))
            except Exception as exc:
                raise SecuritySetupError(
                    f"the database role {me!r} cannot create the role {role.name} "
                    "needed for row-level security; as a superuser run: "
                    f"CREATE ROLE {role.name} NOLOGIN; GRANT {role.name} TO {me};"
                ) from exc
        member = conn.execute(
            text("SELECT pg_has_role(current_user, :r, 'MEMBER')"), {"r": role.name}
        ).scalar_one()
        if not member:
            try:
                with conn.begin_nested():
                    conn.execute(text(f'GRANT {role.name} TO "{me}"'))
            except Exception as exc:
                raise SecuritySetupError(
                    f"as a superuser run: GRANT {role.name} TO {me};"
                ) from exc
    _check_leakproof(conn)
    existing = set(
        conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
    )
    statements = security_sql(existing)
    # the bookkeeping triggers (data versions, risk dirty-tracking) write
    # tables no scoped role is granted: they run as their owner
    triggers = conn.execute(
        text(
            "SELECT DISTINCT p.oid::regprocedure::text FROM pg_trigger t "
            "JOIN pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = 'public' "
            "AND p.proname LIKE 'gis\\_%' AND p.proowner = "
            "(SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )
    ).scalars()
    statements += [
        f"ALTER FUNCTION {fn} SECURITY DEFINER SET search_path = public, pg_temp"
        for fn in triggers
    ]
    for stmt in statements:
        conn.execute(text(stmt))
    log.info("row-level security applied", extra={"statements": len(statements)})
    return len(statements)


def scope_statements(principal: Principal | None) -> tuple[str, dict] | None:
    """SQL making the current transaction run with ``principal``'s scope.

    None for administrators and for no principal (the server's own work).
    """
    if principal is None or principal.role == "admin":
        return None
    role = _BY_APP_ROLE.get(principal.role or "analyst")
    if role is None:  # pragma: no cover - roles are checked at account creation
        raise SecuritySetupError(f"no database role for {principal.role}")
    if principal.role is None:
        role = _BY_APP_ROLE["analyst"]  # anonymous readers read, like analysts
    sql = f"SET LOCAL ROLE {role.name}"
    if role.setting:
        value = principal.attribute(role.app_role) or ""
        sql += f"; SELECT set_config('{role.setting}', %(v)s, true)"
        return sql, {"v": value}
    return sql, {}


def apply_scope(dbapi_conn, principal: Principal | None) -> bool:
    """Run the scope statements on a DBAPI connection inside a transaction."""
    statements = scope_statements(principal)
    if statements is None:
        return False
    sql, params = statements
    with dbapi_conn.cursor() as cur:
        cur.execute(sql, params)
    return True


@contextmanager
def as_server() -> Iterator[None]:
    """Run the enclosed queries as the server itself (unscoped): for sign-in,
    which must read the accounts, and for city-wide aggregates."""
    token = CURRENT.set(None)
    try:
        yield
    finally:
        CURRENT.reset(token)


def install(engine: Engine) -> Engine:
    """Scope every transaction ``engine`` begins to the request's caller."""

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        principal = CURRENT.get()
        if principal is not None and principal.role != "admin":
            apply_scope(conn.connection.dbapi_connection, principal)

    return engine
