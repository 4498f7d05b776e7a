"""Sources: where the rows to score come from (catalog files, Bandcamp link files, Spotify playlists)."""

from scorer.sources.catalog import read_catalog
from scorer.sources.linkfile import links_table, read_links

__all__ = ["links_table", "read_catalog", "read_links"]
