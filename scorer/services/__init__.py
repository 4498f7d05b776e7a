"""HTTP service clients: Spotify, Deezer (playlists as :class:`~scorer.services.tracks.Track` rows) and
MusicBrainz with the Cover Art Archive (labelled covers for :mod:`scorer.datasets`)."""
