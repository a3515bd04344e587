"""Results: where values are stored, the cache of them, and cache policies. Knows no run."""
