"""Alembic environment: the target metadata is built from the layer declarations."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool

import gis_server.audit
import gis_server.auth.accounts  # noqa: F401  (users, api_keys)
import models.supervision.concrete  # registers concrete_credit_history
import models.supervision.loop  # registers the warning events, evidence tables
import models.water.store  # noqa: F401  (registers the water tables on metadata)
from layers import metadata

config = context.config


def _include(obj, name, type_, reflected, compare_to):
    # PostGIS' own tables are not ours to manage.
    # Nor are the risk models' bookkeeping tables (hand-written in 0002).
    if type_ == "table" and name in {"spatial_ref_sys", "risk_dirty",
                                     "risk_grid_dirty", "risk_river_local",
                                     "risk_runs"}:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        include_object=_include,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = create_engine(config.get_main_option("sqlalchemy.url"),
                                    poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            include_object=_include,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
