"""A run from Pending to its final state: creating it, its attempts, hooks, caching,
inputs, returned states, futures and its nursery."""
