"""Write the OpenAPI document the app generates: `python -m server.openapi_export PATH`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from litestar.serialization import encode_json

from server.app import create_app
from server.settings import Settings


def openapi_document() -> str:
    # The document depends only on the routes, never on where or how an instance runs.
    app = create_app(Settings(database_url="sqlite+aiosqlite://", secret_key="openapi"))
    document = json.loads(encode_json(app.openapi_schema.to_schema()))
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(openapi_document(), encoding="utf-8")
