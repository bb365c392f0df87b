"""Full-text search over guides and mentorship offers.

The API and the search page search through `backend`'s interface, answered by the embedded Whoosh index
(`whoosh`, the default) or by PostgreSQL's own full text search (`postgres`, see `postgres.py`). For the
Whoosh index the app turns entries into `SearchDocument`s; the worker feeds them to the one
`IndexWriterQueue` (or `rebuild`s from scratch); `SearchService.search` reads it. The database stays the
source of truth: the index can always be rebuilt. What reads and writes Whoosh's files directly (matching,
ranking, facets, segment writing) lives in `engine`; the modules here use its interface.
"""

from .documents import SearchDocument, markdown_to_text
from .query import QUERY_FIELDS, QueryError
from .service import SearchItem, SearchResults, SearchService
from .storage import IndexUnavailable, SearchIndex, index_ok, rebuild
from .writer import IndexWriterQueue

__all__ = [
    "QUERY_FIELDS",
    "IndexUnavailable",
    "IndexWriterQueue",
    "QueryError",
    "SearchDocument",
    "SearchItem",
    "SearchIndex",
    "SearchResults",
    "SearchService",
    "index_ok",
    "markdown_to_text",
    "rebuild",
]
