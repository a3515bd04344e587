"""``flowkit bench``: measure flowkit against the plain implementation of each workload."""

__all__: list[str] = []
