"""Database access: the engine, start-up of the embedded cluster, migrations."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from gis_server.settings import DatabaseSettings

log = logging.getLogger("gis_server.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(
    settings: DatabaseSettings, *, statement_timeout: bool = False
) -> Engine:
    """An engine for the configured database (the embedded one must be running)."""
    engine = create_engine(
        settings.effective_url(),
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5, "application_name": "gis-server"},
    )
    if statement_timeout and settings.statement_timeout_ms:
        timeout = int(settings.statement_timeout_ms)

        @event.listens_for(engine, "connect")
        def _set_timeout(dbapi_conn, _record) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {timeout}")
            dbapi_conn.commit()

    # every transaction runs with the scope of the caller being served (the
    # request's account, or the CLI's --as): row-level security
    from gis_server.auth import dbsecurity

    return dbsecurity.install(engine)


def ensure_database(settings: DatabaseSettings) -> str:
    """Start the embedded cluster when no DATABASE_URL is set; return the URL."""
    if settings.embedded:
        from gis_server.embedded import EmbeddedCluster

        EmbeddedCluster(settings).start()
    return settings.effective_url()


def open_engine(settings: DatabaseSettings) -> Engine:
    """Start the embedded cluster if it is the one configured; an engine on it."""
    ensure_database(settings)
    return make_engine(settings)


def admin_dsn(settings: DatabaseSettings, database: str = "postgres") -> str:
    """A libpq DSN for administration: ``postgres`` on the embedded cluster, the
    URL's own (super)user on an external server."""
    if settings.url:
        from sqlalchemy.engine import make_url

        return (
            make_url(settings.url)
            .set(drivername="postgresql", database=database)
            .render_as_string(hide_password=False)
        )
    return f"host={settings.host} port={settings.port} user=postgres dbname={database}"


def create_database(settings: DatabaseSettings, name: str) -> DatabaseSettings:
    """A fresh database ``name`` beside the configured one, with PostGIS and
    migrated to head (one of that name is dropped first); its settings.

    For tests and benchmarks that need a database of their own.
    """
    import psycopg2
    from sqlalchemy.engine import make_url

    owner = make_url(settings.effective_url()).username
    admin = psycopg2.connect(admin_dsn(settings))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    finally:
        admin.close()
    conn = psycopg2.connect(admin_dsn(settings, name))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            from gis_server.auth import dbsecurity

            dbsecurity.mark_leakproof(cur)  # scoped callers keep spatial indexes
    finally:
        conn.close()
    if settings.url:
        url = make_url(settings.url).set(database=name)
        created = DatabaseSettings(url=url.render_as_string(hide_password=False))
    else:
        created = settings.model_copy(update={"name": name})
    upgrade(created.effective_url())
    return created


def drop_database(settings: DatabaseSettings, name: str) -> None:
    """Drop database ``name`` on the server of ``settings`` (if it exists)."""
    import psycopg2

    admin = psycopg2.connect(admin_dsn(settings))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply migrations up to ``revision``."""
    from alembic import command

    log.info("applying migrations", extra={"revision": revision})
    command.upgrade(alembic_config(url), revision)
    # roles, grants and row-level policies follow the layer declarations, not
    # the migration history: re-derived after every upgrade
    from sqlalchemy import create_engine

    from gis_server.auth import dbsecurity

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            dbsecurity.sync(conn)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(
                text("SELECT version_num FROM alembic_version")
            ).scalar()
        except Exception:
            return None
