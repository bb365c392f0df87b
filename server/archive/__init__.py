"""A community's portable archive: export it from one instance, import it on another (docs/export-format.md)."""
