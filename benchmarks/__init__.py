"""Reproducible benchmarks: ``python -m benchmarks.run --suite quick`` (see ``benchmarks/RESULTS.md``)."""
