"""The package version, apart from ``scorer/__init__`` so that low modules read it without the lazy exports."""

__version__ = "0.1.0"
