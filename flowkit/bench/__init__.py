"""``flowkit bench``: measure flowkit against the plain implementation of each workload."""
