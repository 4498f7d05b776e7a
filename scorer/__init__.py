"""scorer: predict the music genre of albums from their cover art."""

__version__ = "0.1.0"
