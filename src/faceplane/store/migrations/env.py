"""Alembic's environment: migrations run on the connection Faceplane hands in.

`faceplane.store.schema` opens the connection, takes the migration lock and puts the
connection in `config.attributes["connection"]`; everything here runs inside that one
transaction. There is no alembic.ini and no offline (SQL script) mode.
"""

from __future__ import annotations

from alembic import context

from faceplane.store.db import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError(
        "Faceplane runs its migrations on its own connection: use `faceplane db upgrade`."
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters most things by copying the table: batch mode does that for op.* calls.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
