"""Alembic environment for tradestore, in the shape of Alembic's async template.

The URL comes from ``-x url=…``, else ``TRADESTORE_DATABASE_URL``, else the embedded
default. Code that already holds a connection passes it as ``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from tradestore.engine import build_engine
from tradestore.models import Base
from tradestore.urls import resolve

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    return resolve(given).render_as_string(hide_password=False)


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    sqlite = (connection.dialect.name if connection is not None else resolve(url).get_backend_name()) == "sqlite"
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=sqlite,  # SQLite alters tables by copying them
        literal_binds=connection is None,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit the SQL to stdout instead of running it."""
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Run the migrations on a fresh engine built the way tradestore builds them."""
    engine = build_engine(resolve(_url()), pool_size=1, max_overflow=0, echo=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(run_migrations_online())
