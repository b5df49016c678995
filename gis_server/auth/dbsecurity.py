"""The access policy, enforced again by the database.

Four database roles stand for the non-administrator callers:

- ``gis_reader`` (analysts): reads, never writes;
- ``gis_housing`` (housing officers): reads what their role reads, rows of
  scoped layers only where the scope column equals ``gis.district``, and
  edits those rows;
- ``gis_chief`` (river chiefs): the same with ``gis.chief_id``;
- ``gis_anonymous`` (callers without credentials): reads only the layers
  open to anyone, which are runtime settings (``GIS_AUTH_ANONYMOUS=read``:
  every layer; ``GIS_AUTH_ANONYMOUS_LAYERS``: those), so they are not baked
  into grants but told per transaction in ``gis.anonymous_layers`` and
  checked by the policies.

What a role reads is derived, table by table, from the declarations -- so a
new layer or feed is secured by its declaration alone:

- a layer table: its :class:`~layers.base.Access` (one policy per role);
- a record feed (:class:`~layers.feeds.FeedSpec`): a record is visible when
  its subject feature is (an ``EXISTS`` on the subject layer's table, which
  row-level security filters for the role in turn), or its parent record
  is, or by the readers the feed declares;
- the other tables holding rows about features (:data:`SIDE_TABLES`: loop
  history, patrols, readings, credit history...): the same, by the layer
  they are about; the evidence register by the events and records citing
  a file (:func:`_evidence_visibility`);
- every other table is granted to no scoped role (accounts, the audit log,
  the risk models' bookkeeping, model registry, load reports): default deny.

:func:`sync` (re)applies roles, grants and policies idempotently;
``gis_server.db.upgrade`` runs it after the migrations. :func:`install`
makes every transaction of an engine begin with ``SET LOCAL ROLE`` and the
scope settings of the request's caller
(:data:`gis_server.auth.principal.CURRENT`): whatever a route does, the rows
outside the caller's scope are not there. The command line's ``--as``
pins its account instead (:func:`pin`): every connection its engines open is
scoped for the whole session (``SET ROLE``), so raw DBAPI connections and
worker threads, which begin no SQLAlchemy transaction or do not see the
context variable, are scoped too. Administrators, the CLI without ``--as``
and background jobs run as the owning role, which row-level security does
not restrict (the tables are not ``FORCE``d).

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
from typing import Literal

from sqlalchemy import Connection, Engine, event, text

from gis_server.auth.principal import CURRENT, Principal
from layers import LayerSpec, all_layers, get_layer
from layers.feeds import FeedSpec, all_feeds, get_feed

log = logging.getLogger("gis_server.auth.db")

#: the settings a scoped transaction sets (every one, empty when not the
#: caller's, so nothing of an earlier caller lingers)
USER_SETTING = "gis.username"
ANONYMOUS_SETTING = "gis.anonymous_layers"
SETTINGS = (USER_SETTING, "gis.district", "gis.chief_id", ANONYMOUS_SETTING)


@dataclass(frozen=True)
class DbRole:
    name: str
    app_role: str | None  # the account role it stands for (None: anonymous)
    setting: str | None  # the GUC holding the caller's scope attribute


DB_ROLES = (
    DbRole("gis_reader", "analyst", None),
    DbRole("gis_housing", "housing_officer", "gis.district"),
    DbRole("gis_chief", "river_chief", "gis.chief_id"),
    DbRole("gis_anonymous", None, ANONYMOUS_SETTING),
)
_BY_APP_ROLE = {r.app_role: r for r in DB_ROLES}
#: roles that change data (through the API, or the CLI's --as): they append
#: to the audit log in the transaction of their change
WRITER_ROLES = ("housing_officer", "river_chief")
#: tables every role reads: data versions (ETags), PostGIS' reference tables
PUBLIC_TABLES = (
    "layer_versions",
    "spatial_ref_sys",
    "geometry_columns",
    "geography_columns",
)


@dataclass(frozen=True)
class SideTable:
    """A table that is not a layer or a feed but holds rows about features.

    ``column`` names a feature of ``layer`` (its ``key``): a row is visible
    when that feature is. Without ``column`` the rows are about the layer as
    a whole and ``readers`` says who reads them (``"any"``: every reader of
    the layer; ``"all"``: only those reading all of its features).
    ``writers`` (account roles) may add rows about features they see; with
    ``own_column``, only rows naming themselves in it (their scope
    attribute), and a role scoped on the layer reads exactly those rows.
    """

    table: str
    layer: str
    column: str | None = None
    key: str = "source_id"
    readers: Literal["any", "all"] = "all"
    writers: tuple[str, ...] = ()
    own_column: str | None = None


SIDE_TABLES = (
    # the loop's history: with its warning (the steps a scoped mover takes
    # append to it)
    SideTable(
        "supervision_warning_events",
        "supervision_warnings",
        "warning_id",
        "id",
        writers=("housing_officer", "river_chief"),
    ),
    # patrols: of the segment; a river chief records patrols of their own
    # segments under their own id only (policy "patrols.record")
    SideTable(
        "water_patrol_records",
        "rivers",
        "segment_code",
        "code",
        writers=("river_chief",),
        own_column="chief_id",
    ),
    SideTable("water_observations", "monitoring_stations", "station_code", "code"),
    SideTable("water_samples", "monitoring_stations", "station_code", "code"),
    SideTable("concrete_credit_history", "plants", "plant_id"),
    # the rasters (the city-wide composite risk surface among them): for
    # those reading the whole risk grid
    SideTable("raster_layers", "risk_grid", readers="all"),
)
#: the audit log: appended to by writers, in their own name
AUDIT_TABLE = "audit_log"
#: the evidence register (photos are cited by loop events and inspection
#: problem records; an upload not cited yet is its uploader's)
EVIDENCE_TABLE = "supervision_evidence"
EVIDENCE_FEED = "inspection_problems"
EVIDENCE_COLUMN = "photo_sha256"
EVIDENCE_EVENTS = "supervision_warning_events"
#: the warnings whose loop events cite a photo, or whose evidence names it
#: (an inspection problem's photo: ``photo_sha256``); run as the owner, it
#: answers only ids
EVIDENCE_FUNCTION = "gis_evidence_warnings"
EVIDENCE_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {EVIDENCE_FUNCTION}(sha text) RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT id), '{{}}') FROM (
        SELECT warning_id AS id FROM {EVIDENCE_EVENTS}
        WHERE evidence @> jsonb_build_array(jsonb_build_object('sha256', sha))
        UNION ALL
        -- TODO(not measured at scale): no index on the warnings' evidence;
        -- one scan per photo lookup (an expression index would be declared
        -- in layers/supervision/warnings.py, with its migration)
        SELECT id FROM layer_supervision_warnings
        WHERE evidence ->> '{EVIDENCE_COLUMN}' = sha
    ) cited
$$
"""


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


# -- what each role reads ------------------------------------------------------


@dataclass(frozen=True)
class Visible:
    """The rows of a table a database role reads.

    ``kind``: ``all``, ``none``, ``rows`` (``sql`` is a condition on the
    row) or ``if`` (``sql`` is a condition on the transaction's settings
    only: the anonymous layers).
    """

    kind: Literal["all", "none", "rows", "if"]
    sql: str = "true"


ALL_ROWS = Visible("all")
NO_ROWS = Visible("none")


def _setting(name: str) -> str:
    """A scope setting of the transaction, NULL when unset or empty (so an
    empty attribute matches no row)."""
    return f"nullif(current_setting('{name}', true), '')"


def anonymous_condition(layer_id: str) -> str:
    """True when the transaction's anonymous layers include ``layer_id``.

    Written as ``IS NOT NULL`` tests, which the planner takes as true for
    almost every row (an equality it would take for 0.5 %: every estimate,
    ``numberMatched`` among them, would shrink 200-fold).
    """
    listed = f"string_to_array(current_setting('{ANONYMOUS_SETTING}', true), ',')"
    return (
        f"(array_position({listed}, '{layer_id}') IS NOT NULL "
        f"OR array_position({listed}, '*') IS NOT NULL)"
    )


def layer_visibility(spec: LayerSpec, role: DbRole) -> Visible:
    """The features of ``spec`` ``role`` reads (its access declaration)."""
    if role.app_role is None:
        return Visible("if", anonymous_condition(spec.id))
    access = spec.access
    if role.app_role in access.read or role.app_role in access.write:
        return ALL_ROWS
    scoped = dict(access.scoped)
    if role.app_role in scoped and role.setting:
        return Visible("rows", f'"{scoped[role.app_role]}" = {_setting(role.setting)}')
    return NO_ROWS


def _following(
    table: str, layer: LayerSpec, column: str, key: str, role: DbRole
) -> Visible:
    """Rows of ``table`` naming a feature of ``layer`` (``column`` =
    ``key``): visible when that feature is. The subquery is filtered by the
    layer's own policy for the role, so the scope is stated once."""
    seen = layer_visibility(layer, role)
    if seen.kind != "rows":
        return seen
    return Visible(
        "rows",
        f'EXISTS (SELECT 1 FROM "{layer.table}" s '
        f'WHERE s."{key}" = "{table}"."{column}")',
    )


def _about_layer(layer: LayerSpec, readers: str, role: DbRole) -> Visible:
    seen = layer_visibility(layer, role)
    if seen.kind == "rows":
        return ALL_ROWS if readers == "any" else NO_ROWS
    return seen


def feed_visibility(feed: FeedSpec, role: DbRole) -> Visible:
    """The records of ``feed`` ``role`` reads (its subject, parent or readers)."""
    if feed.subject is not None:
        layer_id, column = feed.subject
        return _following(
            feed.table, get_layer(layer_id), column, feed.subject_key, role
        )
    if feed.parent is not None:
        parent_id, column = feed.parent
        parent = get_feed(parent_id)
        seen = feed_visibility(parent, role)
        if seen.kind != "rows":
            return seen
        return Visible(
            "rows",
            f'EXISTS (SELECT 1 FROM "{parent.table}" p '
            f'WHERE p."{column}" = "{feed.table}"."{column}")',
        )
    assert feed.readers is not None  # FeedSpec requires one of the three
    layer_id, readers = feed.readers
    return _about_layer(get_layer(layer_id), readers, role)


def side_visibility(side: SideTable, role: DbRole) -> Visible:
    layer = get_layer(side.layer)
    if side.column is None:
        return _about_layer(layer, side.readers, role)
    seen = _following(side.table, layer, side.column, side.key, role)
    if seen.kind == "rows" and side.own_column and role.setting:
        # a writer's own rows, by the column naming them (indexed): cheaper
        # than looking every row's feature up
        return Visible("rows", f'"{side.own_column}" = {_setting(role.setting)}')
    return seen


def _side(table: str) -> SideTable:
    return next(s for s in SIDE_TABLES if s.table == table)


def _evidence_visibility(role: DbRole) -> Visible:
    """An evidence file's row: visible to whoever sees a warning citing it
    (in its events or its evidence) or a problem record citing it, and to its
    uploader until one does (a reply's photos are stored, checked, then cited
    in one transaction)."""
    branches = []
    if role.app_role in WRITER_ROLES:
        branches.append(f"uploaded_by = {_setting(USER_SETTING)}")
    events = side_visibility(_side(EVIDENCE_EVENTS), role)
    if events.kind != "none":
        # cited by an event of a warning the role sees: the citing warnings
        # are found by the owner's function (a scoped role's own search of
        # the events could not use their GIN index, as ``@>`` is not
        # LEAKPROOF), whether the role sees one of them by its own policy
        warnings = get_layer(_side(EVIDENCE_EVENTS).layer).table
        branches.append(
            f'EXISTS (SELECT 1 FROM "{warnings}" w WHERE w.id = ANY '
            f'({EVIDENCE_FUNCTION}("{EVIDENCE_TABLE}".sha256)))'
        )
    problems = get_feed(EVIDENCE_FEED)
    if feed_visibility(problems, role).kind != "none":
        branches.append(
            f'EXISTS (SELECT 1 FROM "{problems.table}" p '
            f'WHERE p."{EVIDENCE_COLUMN}" = "{EVIDENCE_TABLE}".sha256)'
        )
    if not branches:
        return NO_ROWS
    return Visible("rows", "(" + " OR ".join(branches) + ")")


def table_visibility(existing: set[str]) -> dict[str, dict[str, Visible]]:
    """Every secured table -> database role -> the rows it reads."""
    out: dict[str, dict[str, Visible]] = {}
    for spec in all_layers():
        out[spec.table] = {r.name: layer_visibility(spec, r) for r in DB_ROLES}
    for feed in all_feeds():
        out[feed.table] = {r.name: feed_visibility(feed, r) for r in DB_ROLES}
    for side in SIDE_TABLES:
        out[side.table] = {r.name: side_visibility(side, r) for r in DB_ROLES}
    out[EVIDENCE_TABLE] = {r.name: _evidence_visibility(r) for r in DB_ROLES}
    return {t: v for t, v in out.items() if t in existing}


def _write_policies(table: str, role: DbRole, seen: Visible) -> list[str]:
    """Grants and policies letting ``role`` change rows of ``table``."""
    prefix = _prefix(role)
    spec = next((s for s in all_layers() if s.table == table), None)
    if spec is not None:
        if role.app_role not in spec.access.scoped_write or seen.kind != "rows":
            return []
        return [
            f'GRANT INSERT, UPDATE, DELETE ON "{table}" TO {role.name}',
            f'CREATE POLICY {prefix}_write ON "{table}" FOR ALL TO {role.name} '
            f"USING ({seen.sql}) WITH CHECK ({seen.sql})",
        ]
    if table == EVIDENCE_TABLE:
        if role.app_role not in WRITER_ROLES:
            return []
        check = f"uploaded_by = {_setting(USER_SETTING)}"
    else:
        side = next((s for s in SIDE_TABLES if s.table == table), None)
        if side is None or role.app_role not in side.writers or seen.kind == "none":
            return []
        check = _following(
            side.table, get_layer(side.layer), side.column or "", side.key, role
        ).sql
        if side.own_column and role.setting:
            check = f'"{side.own_column}" = {_setting(role.setting)} AND {check}'
    return [
        f'GRANT INSERT ON "{table}" TO {role.name}',
        f'CREATE POLICY {prefix}_insert ON "{table}" FOR INSERT TO {role.name} '
        f"WITH CHECK ({check})",
    ]


def _prefix(role: DbRole) -> str:
    return f"gis_{role.app_role or 'anonymous'}"


def security_sql(
    existing_tables: set[str], own_tables: set[str] | None = None
) -> list[str]:
    """Every statement :func:`sync` runs, for the tables that exist.

    ``own_tables``: the tables the connected role owns (their grants are
    revoked first, so the grants below are all a role has); default: all.
    """
    own = existing_tables if own_tables is None else own_tables
    out: list[str] = []
    for role in DB_ROLES:
        out.append(f"GRANT USAGE ON SCHEMA public TO {role.name}")
        out += [f'REVOKE ALL ON "{t}" FROM {role.name}' for t in sorted(own)]
        out += [
            f'GRANT SELECT ON "{t}" TO {role.name}'
            for t in PUBLIC_TABLES
            if t in existing_tables
        ]
        if role.app_role in WRITER_ROLES:  # scoped roles write through the API
            out.append(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role.name}")
            if AUDIT_TABLE in existing_tables:  # INSERT ... RETURNING id
                out += [
                    f"GRANT INSERT ON {AUDIT_TABLE} TO {role.name}",
                    f"GRANT SELECT (id) ON {AUDIT_TABLE} TO {role.name}",
                ]
    if AUDIT_TABLE in existing_tables:
        # a writer appends rows in its own name only, and reads back only
        # those (the id of what it just wrote)
        own = f"actor = {_setting(USER_SETTING)}"
        out.append(f"ALTER TABLE {AUDIT_TABLE} ENABLE ROW LEVEL SECURITY")
        for role in DB_ROLES:
            if role.app_role in WRITER_ROLES:
                prefix = _prefix(role)
                out += [
                    f"CREATE POLICY {prefix}_read ON {AUDIT_TABLE} FOR SELECT "
                    f"TO {role.name} USING ({own})",
                    f"CREATE POLICY {prefix}_insert ON {AUDIT_TABLE} FOR INSERT "
                    f"TO {role.name} WITH CHECK ({own})",
                ]
    for table, by_role in table_visibility(existing_tables).items():
        out.append(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')
        for role in DB_ROLES:
            seen = by_role[role.name]
            if seen.kind == "none":
                continue
            out += [
                f'GRANT SELECT ON "{table}" TO {role.name}',
                f'CREATE POLICY {_prefix(role)}_read ON "{table}" FOR SELECT '
                f"TO {role.name} USING ({seen.sql})",
            ]
            out += _write_policies(table, role, seen)
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
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                "AND c.relkind IN ('r', 'p', 'v', 'm')"
            )
        ).scalars()
    )
    own = set(
        conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tableowner = current_user"
            )
        ).scalars()
    )
    # every policy of ours goes first: the ones below are all there are
    # (a renamed or withdrawn one does not linger)
    statements = [
        f'DROP POLICY "{name}" ON "{table}"'
        for table, name in conn.execute(
            text(
                "SELECT tablename, policyname FROM pg_policies "
                "WHERE schemaname = 'public' AND policyname LIKE 'gis\\_%'"
            )
        ).all()
    ]
    if EVIDENCE_EVENTS in existing:  # before the policies calling it
        statements.append(EVIDENCE_FUNCTION_SQL)
    statements += security_sql(existing, own)
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


# -- applying a caller's scope ----------------------------------------------------


def scope_values(principal: Principal | None) -> tuple[DbRole, dict[str, str]] | None:
    """The database role and scope settings of ``principal``; None for
    administrators and for no principal (the server's own work)."""
    if principal is None or principal.role == "admin":
        return None
    role = _BY_APP_ROLE.get(principal.role)
    if role is None:  # pragma: no cover - roles are checked at account creation
        raise SecuritySetupError(f"no database role for {principal.role}")
    values = dict.fromkeys(SETTINGS, "")
    if principal.anonymous:
        values[ANONYMOUS_SETTING] = ",".join(principal.anonymous_layers)
    else:
        values[USER_SETTING] = principal.username
        if role.setting:
            values[role.setting] = principal.attribute(role.app_role or "") or ""
    return role, values


def scope_statements(
    principal: Principal | None, *, local: bool = True
) -> tuple[str, dict] | None:
    """SQL giving the current transaction (``local``) or the whole session
    ``principal``'s scope; None for administrators and the server itself."""
    found = scope_values(principal)
    if found is None:
        return None
    role, values = found
    is_local = "true" if local else "false"
    params = {f"v{i}": values[name] for i, name in enumerate(SETTINGS)}
    configs = ", ".join(
        f"set_config('{name}', %(v{i})s, {is_local})" for i, name in enumerate(SETTINGS)
    )
    return f"SET {'LOCAL ' if local else ''}ROLE {role.name}; SELECT {configs}", params


def apply_scope(dbapi_conn, principal: Principal | None, *, local: bool = True) -> bool:
    """Run the scope statements on a DBAPI connection (inside a transaction
    when ``local``)."""
    statements = scope_statements(principal, local=local)
    if statements is None:
        return False
    sql, params = statements
    with dbapi_conn.cursor() as cur:
        cur.execute(sql, params)
    return True


@contextmanager
def as_server() -> Iterator[None]:
    """Run the enclosed queries as the server itself (unscoped): for sign-in,
    which must read the accounts, and for city-wide aggregates.

    Does not lift a :func:`pin` (the command line's ``--as``)."""
    token = CURRENT.set(None)
    try:
        yield
    finally:
        CURRENT.reset(token)


#: The account the command line runs as (``--as``), for every connection of
#: every engine made while it is set (not a context variable: the risk
#: models and ingest work on raw connections in worker threads).
_PINNED: Principal | None = None


def pin(principal: Principal | None) -> None:
    """Scope every connection of the engines made from now on to
    ``principal`` for its whole session (None: stop; administrators are not
    scoped). For the command line's ``--as``."""
    global _PINNED
    _PINNED = None if principal is None or principal.role == "admin" else principal


def pinned() -> Principal | None:
    return _PINNED


def install(engine: Engine) -> Engine:
    """Scope every transaction ``engine`` begins to the request's caller, and
    every connection it opens to the pinned account if there is one."""
    session = _PINNED
    if session is not None:

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:
            apply_scope(dbapi_conn, session, local=False)
            dbapi_conn.commit()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        principal = CURRENT.get()
        if principal is not None and principal.role != "admin":
            apply_scope(conn.connection.dbapi_connection, principal)

    return engine
