"""Sinks: where scored rows land."""

from scorer.sinks.parquet import ParquetSink, read_metadata

__all__ = ["ParquetSink", "read_metadata"]
