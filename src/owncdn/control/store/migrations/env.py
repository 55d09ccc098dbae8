"""Alembic environment: online only, on the connection `Store.migrate()` passes in."""

from alembic import context

from owncdn.control.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("owncdn migrations run through Store.migrate(), on an open connection")

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
