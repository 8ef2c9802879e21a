"""What every package shares and no domain owns.

One module per idea, each imported by its own path (``kernel.orm``, ``kernel.db``,
...): the declarative base and its UTC column type, ids, keyset cursors, the
domain error base, the database engine and the migration runner.

NOTE: this package imports no other package of the project, and this file
re-exports nothing: a caller that only needs ``kernel.ids`` does not pay for
SQLAlchemy and Alembic.
"""
