"""Benchmarks: rerunnable measurements behind the figures quoted in the README and the notes."""
