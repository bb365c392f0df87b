"""postgres search: vectors hold Kith's own analysis, written by the app; the words spelling suggests from

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 07:00:00.000000

The `postgres` search backend now analyses text as the `whoosh` one does (issue 17): the app computes each
entry's lexemes with Kith's analyzer when the entry is written, in the write's own transaction
(`server/search/vectors.py`), so the trigger of migration 0012 and the text search configuration it read
(`search_config`) go. `search_vector_words` holds the words of public titles and tags, where spelling
suggestions look for respellings. Every vector is computed again here; a partial index finds the rows written
without one yet. PostgreSQL only, as 0012.
"""

from collections.abc import Sequence

from alembic import op

from server.search.vectors import rewrite_all

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, tags column's "|a|b|" key, summary expression, body column), as in 0012
_TABLES = (
    ("guides", "tags_key", "NEW.summary", "body_markdown"),
    ("mentorship_offers", "topics_key", "''", "description_markdown"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, *_ in _TABLES:
        op.execute(f"DROP TRIGGER {table}_search_vector ON {table}")
        op.execute(f"DROP FUNCTION {table}_search_vector()")
    op.execute("DROP TABLE search_config")
    # "C": byte order, so that the words beginning with a letter are one range of the primary key.
    op.execute(
        'CREATE TABLE search_vector_words (field text NOT NULL, word text COLLATE "C" NOT NULL, '
        "PRIMARY KEY (field, word))"
    )
    rewrite_all(op.get_bind())
    for table, *_ in _TABLES:
        # The rows a batch has just written, whose vectors the first of its changes writes.
        op.execute(f"CREATE INDEX ix_{table}_search_vector_missing ON {table} (id) WHERE search_vector IS NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE search_vector_words")
    for table, *_ in _TABLES:
        op.execute(f"DROP INDEX ix_{table}_search_vector_missing")
    op.execute(
        "CREATE TABLE search_config (id boolean PRIMARY KEY DEFAULT true CHECK (id), language regconfig NOT NULL)"
    )
    op.execute("INSERT INTO search_config (id, language) VALUES (true, 'simple')")
    for table, tags, summary, body in _TABLES:
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
        op.execute(f"""
            CREATE TRIGGER {table}_search_vector BEFORE INSERT OR UPDATE OF title, {tags},
              {"summary, " if table == "guides" else ""}{body}, search_vector
            ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_search_vector()
        """)  # fmt: skip
        op.execute(f"UPDATE {table} SET search_vector = NULL")
