"""A document as it arrives: decoded, a JSON object, and shallow enough to walk safely."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import msgspec

from server.federation.vocab.types import MAX_DEPTH, VocabError
from server.federation.vocab.values import _json_type


def load_document(data: object) -> Mapping[str, Any]:
    """The JSON object `data` decodes to, refused (VocabError) when it is not one or is nested too deeply."""
    if isinstance(data, bytes | bytearray | memoryview | str):
        try:
            data = msgspec.json.decode(data)
        except RecursionError:
            raise VocabError(f"the document is nested deeper than {MAX_DEPTH} levels") from None
        except (msgspec.DecodeError, ValueError) as exc:  # ValueError: str with lone surrogates
            raise VocabError(f"the document is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(data, Mapping):
        raise VocabError(f"the document must be a JSON object, not {_json_type(data)}")
    _check_depth(data)
    return data


def _check_depth(document: Mapping[str, Any]) -> None:
    # Iterative, so that neither deep nor self-referencing input can exhaust the stack.
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise VocabError(f"the document is nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, Mapping) else cast(list[object], value)
        stack.extend((c, depth + 1) for c in children if isinstance(c, Mapping | list))
