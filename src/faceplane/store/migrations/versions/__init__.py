"""The revisions, a linear chain named 0001, 0002, ...; Alembic reads them by file."""
