"""The hub's storage: tables, repositories and migrations.

Importing the package registers every table on :data:`exchange.store.schema.metadata`,
including those defined beside ``schema`` (release controls, matching), so Alembic, the tests
and every other reader of the metadata see one complete schema.
"""

from exchange.store import match_tables as match_tables
from exchange.store import release_tables as release_tables
