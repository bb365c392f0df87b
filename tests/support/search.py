"""Settings for tests that run the indexing step themselves."""

from __future__ import annotations

from pathlib import Path

from server.search import SearchIndex
from server.search.indexing import index_path
from server.settings import Settings


def indexing_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings on `database_url` with a data dir in `tmp_path` holding an empty, current index (no rebuild)."""
    settings = Settings(
        base_url="http://127.0.0.1:8000", instance_name="Kith Test", data_dir=tmp_path / "data",
        database_url=database_url, secret_key="test-secret",
    )  # fmt: skip
    SearchIndex(index_path(settings)).close()
    return settings
