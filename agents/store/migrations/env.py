"""Alembic environment: runs on the connection handed in by Store.migrate, or on TRIAGE_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from agents.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    # batch mode (copy and move a table) only where ALTER TABLE cannot: SQLite; PostgreSQL alters in place
    batch = connection.dialect.name == "sqlite"
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=batch)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=(url or "sqlite").startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from pathlib import Path

    from agents.store.tickets import database_url, make_engine

    url = os.environ.get("TRIAGE_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url or database_url(Path(os.environ.get("TRIAGE_DATA_DIR", "data"))))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
