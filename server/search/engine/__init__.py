"""The parts of Whoosh that Kith does its own way, reading and writing Whoosh's own files.

Whoosh stays the index format, the query language, the merge policy and the fallback for anything
unusual. What is replaced, and why:

- **Matching** (`matches.py`, `bitmaps.py`). Whoosh finds matches by walking a tree of matchers one
  document at a time, and knows the total and the facets only after scoring and loading every match.
  Here a query is also evaluated as set algebra over per-term bitmaps, so the exact total is a popcount
  and each facet value a popcount against its own bitmap (`facets.py`), whatever the number of matches.
- **Ranking** (`ranking.py`, `arrays.py`, `blocks.py`). Whoosh scores candidates one at a time in
  Python; here each segment's known matches are scored at once with numpy, reproducing Whoosh's BM25F
  scores bit for bit and its order of results. Whoosh's default top-k collector also drops documents
  that belong in the top k; this ranking does not.
- **Postings on disk** (`postings.py`). Whoosh keeps postings in compressed pickled blocks with the
  positions interleaved, costly to decode for a common word; each segment gets one more file with its
  longer lists as plain arrays, read with one call.
- **Writing segments** (`segments.py`, `termpool.py`, `analysis.py`). Whoosh's writer sorts one tuple
  per posting at commit and analyzes text through a stream of token objects; here postings are grouped
  per term as documents arrive and text is analyzed a word at a time through a cache. The files written
  are the ones Whoosh writes, so either writer's segments can be read by both.

Because these modules read Whoosh's private structures (codec classes, block pickles, matcher
attributes), the `whoosh-reloaded` version is pinned exactly; a new release needs the tests under
`tests/search` and `tests/unit/test_search_*` to pass before the pin moves. A query or a segment this
code does not handle falls back to Whoosh's own path, with the same results.

The rest of `server.search` uses this package through `SearchEngine` (matches, facets and ranked pages
for the search service) and `KithSegmentWriter` with `analyze` (for the index writer).
"""

from .analysis import FastText, text_analyzer
from .facets import FACET_FIELDS, empty_facets
from .searching import Matches, SearchEngine
from .segments import PREPARED, KithSegmentWriter, analyze

__all__ = [
    "FACET_FIELDS",
    "PREPARED",
    "FastText",
    "KithSegmentWriter",
    "Matches",
    "SearchEngine",
    "analyze",
    "empty_facets",
    "text_analyzer",
]
