"""Sources: where the rows to score come from (catalog files now; Spotify and link files later)."""

from .catalog import read_catalog

__all__ = ["read_catalog"]
