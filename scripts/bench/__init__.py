"""The benchmark's measures, one module each; `scripts/benchmark.py` is the entry point."""
