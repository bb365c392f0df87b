"""Error responses declared on routes, so the OpenAPI document lists them."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from server.errors import PROBLEM_JSON, Problem

_DESCRIPTIONS = {
    400: "Malformed request (for example invalid JSON)",
    401: "Missing, unknown, revoked or expired bearer token",
    403: "The token's user or scope may not do this",
    404: "No such resource",
    409: "Conflict with the current state",
    410: "Gone",
    412: "If-Match does not match the current ETag",
    413: "Request body larger than 1 MB",
    422: "Validation failed; `errors` lists the fields",
    429: "Rate limited; `Retry-After` gives the seconds to wait",
    500: "Unexpected server error",
    502: "A peer this request needed did not answer as it should",
    503: "Not ready",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    # Any route can meet a malformed or invalid parameter, and any can fail unexpectedly.
    codes = tuple(sorted({400, 422, 500, *codes}))
    return {
        code: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[code],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for code in codes
    }


READ = problems(400, 422)
WRITE = problems(400, 401, 403, 404, 413, 422)
