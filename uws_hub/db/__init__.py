"""The uws database: models, engine/session helpers and Alembic migrations."""
