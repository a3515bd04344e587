"""What every run gets with no setup, wired in as these modules are imported: the console
story (``flowkit.logging``) and the run store (``flowkit.store``) subscribe to the event
bus, and the limits kept in the store (``concurrency._store``) become the engine's
shared limits.

The modules that make runs (``flows``, ``tasks``) import this one, so that a program that
imports only them gets it all; a process-pool worker, which imports only the engine,
gets none of it.
"""

from . import logging as logging
from . import store as store
from .concurrency import _store as concurrency_store

__all__ = ["concurrency_store", "logging", "store"]
