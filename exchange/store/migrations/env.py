"""Alembic environment: runs against the engine the hub hands in (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from exchange.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
