"""postgres search: a weighted tsvector on guides and offers, kept current by a trigger, with GIN indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 04:45:00.000000

For the `postgres` search backend (`[search] backend = "postgres"`). PostgreSQL only: on SQLite this
migration does nothing (the `whoosh` backend is the only one there).

`search_vector` is computed by a BEFORE trigger, so it is written in the same transaction as the entry: an
entry is searchable the moment its write commits. Title and tags weigh A, summary B, body C. A trigger rather
than a generated column because the text search configuration (`[search] language`) is chosen per instance: it
is kept in the one-row `search_config` table, which both the trigger and the queries read, so the vectors and
the queries always agree; `kith reindex` sets it and recomputes every vector.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, tags column's "|a|b|" key, summary expression, body column)
_TABLES = (
    ("guides", "tags_key", "NEW.summary", "body_markdown"),
    ("mentorship_offers", "topics_key", "''", "description_markdown"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE search_config (id boolean PRIMARY KEY DEFAULT true CHECK (id), language regconfig NOT NULL)"
    )
    op.execute("INSERT INTO search_config (id, language) VALUES (true, 'simple')")
    for table, tags, summary, body in _TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN search_vector tsvector")
        op.execute(f"""
            CREATE FUNCTION {table}_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE cfg regconfig := (SELECT language FROM search_config);
            BEGIN
              NEW.search_vector :=
                setweight(to_tsvector(cfg, coalesce(NEW.title, '')), 'A') ||
                setweight(to_tsvector(cfg, replace(coalesce(NEW.{tags}, ''), '|', ' ')), 'A') ||
                setweight(to_tsvector(cfg, coalesce({summary}, '')), 'B') ||
                setweight(to_tsvector(cfg, coalesce(NEW.{body}, '')), 'C');
              RETURN NEW;
            END $$
        """)  # fmt: skip
        # Also on an update of search_vector itself: that is how a rebuild recomputes every row.
        op.execute(f"""
            CREATE TRIGGER {table}_search_vector BEFORE INSERT OR UPDATE OF title, {tags},
              {"summary, " if table == "guides" else ""}{body}, search_vector
            ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_search_vector()
        """)  # fmt: skip
        op.execute(f"UPDATE {table} SET search_vector = NULL")
        op.execute(f"CREATE INDEX ix_{table}_search_vector ON {table} USING gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, *_ in _TABLES:
        op.execute(f"DROP INDEX ix_{table}_search_vector")
        op.execute(f"DROP TRIGGER {table}_search_vector ON {table}")
        op.execute(f"DROP FUNCTION {table}_search_vector()")
        op.execute(f"ALTER TABLE {table} DROP COLUMN search_vector")
    op.execute("DROP TABLE search_config")
